#pragma once
// `wattwise sweep`: the cartesian product of inference knobs (encoder layers kept, max sequence
// length, precision, attention kernel, batch size, dynamic padding) evaluated on one data split,
// each configuration's accuracy, latency, throughput, energy, memory and carbon measured, and the
// Pareto frontier over them. Writes into its run folder: pareto.csv, metrics.json,
// power_trace.csv, emissions.csv, energy_accuracy_<axis>.{png,svg},
// energy_latency_<axis>.{png,svg} and report.html.
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "wattwise/core/device.h"

namespace ww::experiment {

struct SweepOptions {
  std::filesystem::path model_dir;
  std::filesystem::path data;
  std::string split = "dev";
  // The axes; an empty one is not swept (it keeps its default: the model's layers, max length
  // min(128, the model's positions), fp32, auto attention, batch 32, dynamic padding on). The
  // first value of every axis makes the baseline configuration.
  std::vector<int64_t> layers;
  std::vector<int64_t> max_lengths;
  std::vector<std::string> precisions;  // passed through to the execution options (fp32, fp16, ...)
  std::vector<std::string> attention;   // auto, fused, reference
  std::vector<int64_t> batch_sizes;
  std::vector<std::string> dynamic_padding;  // on, off
  bool skip_failed = false;  // a configuration that throws is recorded as skipped with the reason
  int repeats = 3;           // measured passes over the split per configuration (medians, spread)
  int warmup = 1;            // unmeasured passes first
  double min_seconds = 1.0;  // more measured passes until they last this long (stable energy figures)
  int64_t max_examples = 0;  // a stratified sample of N examples of the split (0: all)
  bool clean_html = false;
  Device device;
  std::string objectives;    // "" = accuracy:max,joules_per_example:min,latency_p50_ms:min
  std::filesystem::path runs_dir = "runs";
  std::string name = "sweep";
  // A TOML file (docs/SWEEPS.md) supplying any of the above; what `given` names (the options set
  // on the command line, by their TOML key) wins over the file.
  std::filesystem::path config;
  std::set<std::string> given;
  bool quiet = false;  // no per-configuration progress lines
  bool allow_nonfinite = false;  // load NaN/Inf weights with a warning instead of refusing them
};

// The axis names as pareto.csv columns, in product order (outermost first).
const std::vector<std::string>& sweep_axis_names();

// Fills `options` from a sweep TOML file, leaving the keys in options.given alone. Unknown keys
// and wrong types are errors naming the file and key.
void load_sweep_config(const std::filesystem::path& path, SweepOptions& options);

// Runs the sweep; returns the run folder. Errors before any measurement (bad model, data, axis
// values) leave no run folder.
std::filesystem::path run_sweep(SweepOptions options);

}  // namespace ww::experiment
