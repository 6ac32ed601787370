#include "cli/commands.h"
#include "wattwise/experiment/report.h"

namespace ww::cli {

Command report_command(CLI::App& app) {
  auto o = std::make_shared<experiment::ReportOptions>();
  CLI::App* cmd = app.add_subcommand("report", "Self-contained HTML report (tables, plots, frontier, savings) of runs");
  cmd->add_option("run_dirs", o->run_dirs, "Run folders (sweeps, training runs)")->required();
  cmd->add_option("-o,--output", o->output, "report.html to write (default: RUN_DIR/report.html for one run, else a new run folder)");
  cmd->add_option("--runs-dir", o->runs_dir, "Folder that receives the new run folder (several runs)")->capture_default_str();
  return {cmd, [o] {
            experiment::run_report(*o);
            return 0;
          }};
}

}  // namespace ww::cli
