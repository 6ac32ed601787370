#pragma once
// `wattwise measure -- COMMAND [ARGS...]`: runs any process under an EnergyMonitor, forwards
// SIGINT/SIGTERM/SIGHUP/SIGQUIT to its process group, prints a summary and writes power_trace.csv,
// emissions.csv and metrics.json into the run folder.
#include <optional>
#include <string>
#include <vector>

namespace ww::energy {

struct MeasureOptions {
  std::vector<std::string> command;      // argv of the process to run (required)
  int interval_ms = 100;
  std::string out_dir;                   // "" = runs/<UTC timestamp>_measure (never reused)
  std::optional<std::vector<int>> gpus;  // NVML indices; nullopt = all
  std::string country;                   // "" = World average
  std::optional<double> pue;
  std::optional<double> intensity_g_per_kwh;
  double idle_baseline_s = 0;
  std::optional<double> cpu_tdp_w;
  std::string project_name = "wattwise";
  std::string runs_root = "runs";        // parent of the default run folder
};

// Parses "0,2,3" into GPU indices; throws ww::Error naming the bad item.
std::vector<int> parse_gpu_list(const std::string& text);

// Runs the command in a process group of its own (signals forwarded to the group; from a
// terminal's foreground the group gets the terminal while it runs) and returns its exit code
// (128 + signal number if it was killed by a signal; 127 if it was not found, 126 if it could not
// be run). Throws ww::Error only for bad options or an --out folder it may not use, before the
// command runs; a failure to write the results is reported on stderr, and the run folder is
// removed, without changing the exit code.
int run_measure(const MeasureOptions& options);

}  // namespace ww::energy
