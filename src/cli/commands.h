#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace ww::cli {

// A subcommand: its CLI11 parser and what runs when it was chosen (returns the exit code).
struct Command {
  CLI::App* app;
  std::function<int()> run;
};

// One function per subcommand, each in its own cmd_<name>.cpp: registers the flags, returns the runner.
Command ablate_command(CLI::App& app);
Command bench_command(CLI::App& app);
Command eval_command(CLI::App& app);
Command generate_command(CLI::App& app);
Command init_model_command(CLI::App& app);
Command launch_command(CLI::App& app);
Command measure_command(CLI::App& app);
Command pareto_command(CLI::App& app);
Command predict_command(CLI::App& app);
Command report_command(CLI::App& app);
Command serve_command(CLI::App& app);
Command sweep_command(CLI::App& app);
Command tokenize_command(CLI::App& app);
Command train_command(CLI::App& app);

}  // namespace ww::cli
