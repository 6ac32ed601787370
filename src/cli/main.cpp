// The `wattwise` command: parses arguments and calls one library function per subcommand. Every
// ww::Error becomes one line on stderr and exit code 1; usage errors exit with 2.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>
#include <string_view>

#include "cli/commands.h"
#include "kernels/cpu/blas_setup.h"
#include "wattwise/core/error.h"
#include "wattwise/dist/world.h"
#include "wattwise/experiment/run_dir.h"

namespace {

// "wattwise: error" and, in a distributed job (where every rank reports its own), the rank
// unless the message starts with it.
std::string error_prefix(const char* message) {
  if (std::string_view(message).starts_with("rank ")) return "wattwise: error";
  try {
    const ww::dist::World world = ww::dist::world_from_environment();
    if (world.distributed()) return "wattwise: error (rank " + std::to_string(world.rank) + ")";
  } catch (const ww::Error&) {
  }
  return "wattwise: error";
}

}  // namespace

int main(int argc, char** argv) {
  ww::kernels::cpu::reexec_with_fast_runtime_if_needed(argv);
  CLI::App app{"wattwise: fine-tune and serve transformers with energy as a first-class metric"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "wattwise 0.1.0");
  std::vector<ww::cli::Command> commands = {
      // one line per subcommand (keep sorted)
      ww::cli::ablate_command(app),
      ww::cli::bench_command(app),
      ww::cli::eval_command(app),
      ww::cli::generate_command(app),
      ww::cli::init_model_command(app),
      ww::cli::launch_command(app),
      ww::cli::measure_command(app),
      ww::cli::pareto_command(app),
      ww::cli::predict_command(app),
      ww::cli::report_command(app),
      ww::cli::serve_command(app),
      ww::cli::sweep_command(app),
      ww::cli::tokenize_command(app),
      ww::cli::train_command(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    for (auto& command : commands) {
      if (!command.app->parsed()) continue;
      // A file-size limit (ulimit -f) would kill us with SIGXFSZ mid-write, leaving a temporary
      // file and no message; ignored, the write fails with EFBIG and the atomic writers clean up and
      // report it like a full disk. `measure` does this itself, keeping the default for its command.
      if (command.app->get_name() != "measure") std::signal(SIGXFSZ, SIG_IGN);
      // Ctrl-C or a kill mid-run removes the run folder being written (`measure` forwards signals
      // to its command instead; `train` keeps its own handling; `serve` drains and exits 0).
      if (command.app->get_name() != "measure" && command.app->get_name() != "train" &&
          command.app->get_name() != "launch" && command.app->get_name() != "serve")
        ww::experiment::install_interrupt_cleanup();
      return command.run();
    }
  } catch (const ww::Error& e) {
    std::fprintf(stderr, "%s: %s\n", error_prefix(e.what()).c_str(), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wattwise: unexpected error: %s\n", e.what());
    return 1;
  }
  return 2;
}
