// `wattwise measure [options] -- COMMAND [ARGS...]`: measures the energy of any process.
#include <memory>

#include "cli/commands.h"
#include "cli/validators.h"
#include "wattwise/energy/measure.h"

namespace ww::cli {

Command measure_command(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "measure",
      "Run a command and measure its energy: GPU (NVML), CPU (RAPL or TDP estimate), RAM; prints "
      "J, kWh and gCO2e and writes power_trace.csv, emissions.csv and metrics.json");
  auto options = std::make_shared<energy::MeasureOptions>();
  auto gpus = std::make_shared<std::string>("all");
  sub->add_option("--interval", options->interval_ms, "sampling interval in ms")
      ->capture_default_str()
      ->check(integer_in({1, experiment::limits::kIntervalMs.max}, "the power sampling interval in milliseconds"));
  sub->add_option("--out", options->out_dir,
                  "run folder (default: runs/<UTC time>_measure, never an existing one)");
  sub->add_option("--gpus", *gpus, "GPU indices to meter, e.g. 0,1; 'all' or 'none'")
      ->capture_default_str();
  sub->add_option("--country", options->country,
                  "grid carbon intensity region: ISO 3166-1 alpha-3 code (DEU, USA) or region "
                  "(World, EU); default World");
  sub->add_option("--pue", options->pue, "data-centre power usage effectiveness (default 1.0)");
  sub->add_option("--intensity", options->intensity_g_per_kwh,
                  "grid carbon intensity in gCO2e/kWh (overrides --country's table value)");
  sub->add_option("--idle-baseline", options->idle_baseline_s,
                  "seconds of idle power to measure first; the summary adds net energy");
  sub->add_option("--cpu-tdp", options->cpu_tdp_w,
                  "CPU TDP in W for all packages together (when RAPL is unreadable)");
  sub->add_option("--project", options->project_name, "project_name in emissions.csv")
      ->capture_default_str();
  sub->add_option("command", options->command, "the command to run and its arguments, after --")
      ->required();
  // After "--" every word, even one that looks like a flag, belongs to the command, in order.
  return {sub, [options, gpus] {
            if (*gpus != "all") options->gpus = energy::parse_gpu_list(*gpus);
            return energy::run_measure(*options);
          }};
}

}  // namespace ww::cli
