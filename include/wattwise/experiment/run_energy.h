#pragma once
// Energy bookkeeping of one run folder: starts the monitor (power_trace.csv in the folder), measures
// named phases ("training", "evaluation_3", "inference"), and at the end appends the run's row to
// emissions.csv and returns the "energy" object of metrics.json.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

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
};

// The defaults on `device` (whose queued work each phase's edges wait for).
inline EnergySettings energy_settings_for(Device device) {
  EnergySettings settings;
  settings.device = device;
  return settings;
}

class RunEnergy {
 public:
  RunEnergy(const std::filesystem::path& run_dir, const EnergySettings& settings, const std::string& run_name);
  void begin(const std::string& phase);
  // Ends a phase; `samples` (examples processed) adds J per sample. Returns the phase's JSON.
  nlohmann::json end(const std::string& phase, int64_t samples);
  // Ends the whole-run window, stops the sampler, appends emissions.csv. {"phases": {...}, "total": {...}}
  nlohmann::json finish(int64_t samples);
  const energy::EnergyMonitor& monitor() const { return *monitor_; }
  // For windows that are not phases of metrics.json (a sweep's per-pass windows).
  energy::EnergyMonitor& monitor() { return *monitor_; }

 private:
  std::filesystem::path run_dir_;
  std::string run_name_;
  std::unique_ptr<energy::EnergyMonitor> monitor_;
  nlohmann::json phases_ = nlohmann::json::object();
  bool finished_ = false;
};

// One-line summary for the terminal: "energy: 12.3 J (GPU 10.1 measured, CPU 2.0 estimated, RAM 0.2 estimated), 3.4e-06 kWh, 0.0015 gCO2e".
std::string energy_summary_line(const nlohmann::json& phase);

}  // namespace ww::experiment
