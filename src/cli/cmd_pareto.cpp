#include "cli/commands.h"
#include "wattwise/experiment/pareto.h"

namespace ww::cli {

Command pareto_command(CLI::App& app) {
  auto o = std::make_shared<experiment::ParetoOptions>();
  CLI::App* cmd = app.add_subcommand("pareto", "Pareto frontier across earlier sweep and training runs");
  cmd->add_option("run_dirs", o->run_dirs, "Run folders (sweeps: pareto.csv; training runs: metrics.json)")->required();
  cmd->add_option("--objectives", o->objectives,
                  "METRIC:min|max,... (default: accuracy:max,joules_per_example:min,latency_p50_ms:min; with a training "
                  "run accuracy:max,training_kwh:min)");
  cmd->add_option("--runs-dir", o->runs_dir, "Folder that receives the new run folder (pareto.csv)")->capture_default_str();
  return {cmd, [o] {
            experiment::run_pareto(*o);
            return 0;
          }};
}

}  // namespace ww::cli
