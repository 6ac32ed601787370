#pragma once
// Energy bookkeeping of one run folder: starts the monitor (power_trace.csv in the folder), measures
// named phases ("training", "evaluation_3", "inference"), and at the end appends the run's row to
// emissions.csv and returns the "energy" object of metrics.json.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/core/device.h"
#include "wattwise/energy/monitor.h"

namespace ww::experiment {

struct EnergySettings {
  int interval_ms = 100;
  std::string country;
  double pue = 1.0;
  double carbon_intensity = -1;  // < 0: from the shipped table
  double idle_baseline_s = 0;    // > 0: measure idle power first, report net energy too
  Device device = Device::cpu();  // a GPU's queued work is waited for at every phase's edges
  // The power trace's file name in the run folder (a resumed training run writes power_trace_2.csv,
  // ...: each session's trace starts its clock and cumulative columns at 0).
  std::string trace_file = "power_trace.csv";
  // The GPUs to meter, by PCI bus id (a data-parallel job's GPUs on this machine). Empty: the GPU
  // `device` is, found by its bus id (CUDA_VISIBLE_DEVICES renumbers CUDA's devices, not NVML's);
  // a CPU run meters every GPU NVML sees.
  std::vector<std::string> gpu_pci_bus_ids;
};

// The defaults on `device` (whose queued work each phase's edges wait for).
inline EnergySettings energy_settings_for(Device device) {
  EnergySettings settings;
  settings.device = device;
  return settings;
}

// The monitor's options for `settings`, its power trace written to `trace_path`.
energy::EnergyOptions energy_options_of(const EnergySettings& settings, const std::string& trace_path);

class RunEnergy {
 public:
  RunEnergy(const std::filesystem::path& run_dir, const EnergySettings& settings, const std::string& run_name);
  // A resumed run: `energy` ({"phases", "total"}, as finish() or so_far() gave them) is what earlier
  // sessions measured. A phase of the same name and the total then report the sum of before and
  // now; emissions.csv still gets this session's own row.
  void add_earlier(const nlohmann::json& energy);
  void begin(const std::string& phase);
  // Ends a phase; `samples` (examples processed in it, this session) adds J per sample. Returns the
  // phase's JSON (summed with an earlier session's phase of that name).
  nlohmann::json end(const std::string& phase, int64_t samples);
  // {"phases", "total"} up to now without ending anything: the ended phases, every open one so far
  // (with `samples` of this session) and the whole run so far (`samples` too), summed with earlier
  // sessions. What a training checkpoint records.
  nlohmann::json so_far(int64_t samples);
  // Ends the whole-run window, stops the sampler, appends this session's row to emissions.csv.
  // {"phases": {...}, "total": {...}}, summed with earlier sessions; `samples` of this session.
  nlohmann::json finish(int64_t samples);
  // A job on several machines: the other machines' reports (gather_machine_reports in
  // job_energy.h), replacing the previous ones. Their energy is added to the total and to `phase`
  // (the one their session spans: "training") in end(), so_far() and finish(), and their hardware
  // to emissions.csv's row. Their sources are named "<host>/<source>" ("node1/gpu0").
  void set_other_machines(std::vector<nlohmann::json> reports, const std::string& phase);
  // This session's whole-run window of this machine alone (to_json's form), set by finish().
  const nlohmann::json& own_session_total() const { return own_session_total_; }
  const std::string& trace_file() const { return trace_file_; }
  const energy::EnergyMonitor& monitor() const { return *monitor_; }
  // For windows that are not phases of metrics.json (a sweep's per-pass windows).
  energy::EnergyMonitor& monitor() { return *monitor_; }

 private:
  std::filesystem::path run_dir_;
  std::string run_name_;
  std::unique_ptr<energy::EnergyMonitor> monitor_;
  nlohmann::json phases_ = nlohmann::json::object();
  std::vector<std::string> open_;  // phases begun and not ended, in order
  nlohmann::json earlier_;         // earlier sessions' {"phases", "total"} (null: none)
  std::vector<nlohmann::json> others_;  // the other machines' reports
  std::string others_phase_;
  nlohmann::json own_session_total_;
  std::string trace_file_;
  bool finished_ = false;
  // `window` (this machine's, of `phase`; "total" for the whole run) with the other machines' added.
  nlohmann::json with_other_machines(nlohmann::json window, const std::string& phase) const;
};

// The sum of two energy windows of metrics.json (to_json's form) measured one after the other: a
// session before a resumption and the one after it. Durations, joules, kWh, gCO2e and samples add;
// averages are recomputed; sources are matched by id (measured only when both were; provenances
// joined when they differ); notes are concatenated; name, carbon factors and baseline power are
// the later window's. A null `before` gives `after`.
nlohmann::json add_energy_windows(const nlohmann::json& before, const nlohmann::json& after);

// The sum of two energy windows measured side by side on two machines: `own` (the run's machine)
// and `other`'s on `host`. Joules add, kWh and gCO2e are recomputed from the sum with `own`'s carbon
// factors, averages are over `own`'s duration; `other`'s sources join as "<host>/<source>" and its
// notes as "<host>: <note>"; idle baselines (when both have one) add.
nlohmann::json add_machine_window(const nlohmann::json& own, const nlohmann::json& other, const std::string& host);

// One-line summary for the terminal: "energy: 12.3 J (GPU 10.1 measured, CPU 2.0 estimated, RAM 0.2 estimated), 3.4e-06 kWh, 0.0015 gCO2e".
std::string energy_summary_line(const nlohmann::json& phase);

}  // namespace ww::experiment
