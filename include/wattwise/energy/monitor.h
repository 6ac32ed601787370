#pragma once
// EnergyMonitor: meters for every GPU (NVML), the CPU packages (RAPL or a TDP estimate) and memory
// (RAPL DRAM or an estimate per GB in use), a background sampler that writes power_trace.csv, and
// named measurement windows in the spirit of Zeus:
//
//   ww::energy::EnergyOptions options;
//   options.trace_path = run_dir + "/power_trace.csv";
//   options.country = "DEU";
//   ww::energy::EnergyMonitor monitor(options);
//   monitor.start();
//   monitor.begin_window("training");
//   ...                                   // the measured work never waits on the sampler
//   auto result = monitor.end_window("training");
//   metrics["energy"]["training"] = ww::energy::to_json(result, samples_seen);
//   monitor.stop();
//   monitor.append_emissions_csv(run_dir + "/emissions.csv", result, {"wattwise", run_id});
//
// Windows may nest and overlap; each reads the meters itself at its begin and end (an NVML or RAPL
// counter read directly where the device has one; otherwise the sampler's last published
// integral plus the last sampled power times the time since that sample). Every figure says how it
// was obtained ("measured: ..." or "estimated: ..."). Meter failures never throw: a failing NVML or
// RAPL call degrades to the next source with one warning.
//
// Short windows, as Zeus treats them: NVML's energy counter changes in steps some tens of ms apart
// (probed at start()), so a counter delta over d seconds covers anywhere between d - step and
// d + step of real time. A window shorter than kShortWindowSteps steps is instead estimated from the
// GPU's power read at its two edges (trapezoid x duration), flagged "estimated: short window".
// Whatever the source, no GPU figure exceeds the device's power limit x duration: a figure above
// it is not physical, so it is capped there and the window's notes say so. With
// EnergyOptions::synchronize set, both edges first wait for queued device work, so work is counted
// in the window that launched it.
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "wattwise/energy/carbon.h"

namespace ww::energy {

struct EnergyOptions {
  int interval_ms = 100;                  // sampler period
  // How often the sampler reads a GPU's energy counter (power is read every tick; window edges
  // always read the counter directly). The read costs ~3.8 ms of CPU on an H100, the power ~1 us.
  int counter_period_ms = 2000;
  std::optional<std::vector<int>> gpus;   // NVML indices to meter; nullopt = all, {} = none
  // Or the GPUs to meter by PCI bus id (CUDA's cudaDeviceGetPCIBusId: the GPUs a run uses,
  // whatever CUDA_VISIBLE_DEVICES renumbered); used when `gpus` is not set. A bus id NVML does not
  // know is a warning, and then every GPU is metered (a figure too high rather than none).
  std::vector<std::string> gpu_pci_bus_ids;
  std::string trace_path;                 // power_trace.csv to write; "" = no trace file
  std::string country;                    // grid intensity code/name; "" = World average
  std::optional<double> pue;              // default 1.0
  std::optional<double> intensity_g_per_kwh;  // overrides the table
  double idle_baseline_s = 0;             // > 0: measure idle power this long in start()
  std::optional<double> cpu_tdp_w;        // all packages together; overrides the TDP table
  std::string cpu_tdp_table;              // extra CSV (model,tdp_w,source) consulted first
  std::optional<double> ram_w_per_gib;    // default kRamWattsPerGib
  std::string nvml_library;               // "" = $WW_NVML_LIBRARY, else "libnvidia-ml.so.1"
  bool use_nvml = true;
  bool use_rapl = true;
  std::string powercap_root = "/sys/class/powercap";  // tests point these at fake trees
  std::string proc_root = "/proc";
  // Where warnings go; default prints "wattwise: warning: ..." to stderr. Also kept in warnings().
  std::function<void(const std::string&)> on_warning;
  // Called at both edges of every window before the meters are read (Zeus's sync_execution): waits
  // for the device work queued so far. Empty: no synchronisation (CPU work is synchronous anyway).
  std::function<void()> synchronize;
  // Longest time start() spends finding how often each GPU's energy counter changes.
  double counter_probe_limit_s = 1.0;
};

// Below this many counter steps a window's GPU figure comes from edge power samples (the counter's
// error, up to one step, would exceed a quarter of the figure).
constexpr double kShortWindowSteps = 4.0;

// CodeCarbon v2's memory model: 3 W per 8 GB of RAM (from Crucial's "How much power does memory
// use?"), applied here to the memory in use (MemTotal - MemAvailable), in GiB as CodeCarbon counts.
constexpr double kRamWattsPerGib = 3.0 / 8.0;
// CodeCarbon's power for a CPU model it cannot find in its table (external/hardware.py).
constexpr double kUnknownCpuTdpW = 85.0;
// CodeCarbon's floor for the TDP x load estimate: a package draws at least 10% of TDP.
constexpr double kCpuMinLoadFraction = 0.10;

enum class DeviceKind { gpu, cpu, ram };
const char* device_kind_name(DeviceKind kind);  // "gpu", "cpu", "ram"

// One meter's share of a window.
struct SourceEnergy {
  std::string source;       // "gpu0", "cpu:package-0", "ram:dram-0", "cpu", "ram"
  DeviceKind kind = DeviceKind::gpu;
  std::string device_name;  // "NVIDIA H100 80GB HBM3", CPU model, "RAM"
  double joules = 0;
  double avg_watts = 0;
  bool measured = false;    // false: an estimate
  std::string provenance;   // "measured: nvml total energy counter", "estimated: TDP ..."
};

struct WindowResult {
  std::string name;
  double duration_s = 0;
  std::vector<SourceEnergy> sources;
  double gpu_joules = 0, cpu_joules = 0, ram_joules = 0, total_joules = 0;
  double kwh = 0;
  double gco2e = 0;  // kwh x PUE x intensity
  double avg_watts = 0;
  bool gpu_present = false;      // false: no GPU figure (reason in gpu_absent_reason)
  std::string gpu_absent_reason;
  // Idle baseline (when EnergyOptions::idle_baseline_s > 0): idle power and energy net of it.
  bool has_baseline = false;
  double baseline_gpu_w = 0, baseline_cpu_w = 0, baseline_ram_w = 0;
  double net_joules = 0;  // total_joules - baseline power x duration (may dip below 0 from noise)
  CarbonFactors carbon;
  std::vector<std::string> notes;  // warnings raised while the window was open
  // Means over the sampler's ticks inside the window (NaN when no tick read them): CPU utilisation
  // (all logical CPUs, %), the metered GPUs' utilisation (%), RAM in use (GiB) and as a share of the
  // machine's (%). CodeCarbon 3's emissions.csv columns.
  double cpu_utilization_percent = std::nan("");
  double gpu_utilization_percent = std::nan("");
  double ram_used_gib = std::nan("");
  double ram_utilization_percent = std::nan("");
};

// The metrics.json form of a window. samples > 0 adds "j_per_sample".
nlohmann::json to_json(const WindowResult& result, int64_t samples = 0);

// Static facts about the machine (also written to emissions.csv).
struct HostInfo {
  std::string os;          // "Linux-6.1.0-x86_64"
  std::string cpu_model;
  int cpu_count = 0;       // logical CPUs
  int cpu_packages = 0;
  int gpu_count = 0;       // GPUs metered
  std::string gpu_model;   // "1 x NVIDIA H100 80GB HBM3"
  double ram_total_gib = 0;
};

// What emissions.csv needs beyond the window itself.
struct RunInfo {
  std::string project_name = "wattwise";
  std::string run_id;  // "" = a fresh random UUID
  // The hardware the row covers when it is more than this monitor's machine (a job on several
  // machines: their CPUs, GPUs and memory together); null: this monitor's.
  const HostInfo* host = nullptr;
};

class EnergyMonitor {
 public:
  explicit EnergyMonitor(EnergyOptions options);  // finds meters; throws only for bad options
  ~EnergyMonitor();                               // stops the sampler
  EnergyMonitor(const EnergyMonitor&) = delete;
  EnergyMonitor& operator=(const EnergyMonitor&) = delete;

  void start();  // takes a first sample, measures the idle baseline if asked, starts the sampler
  void stop();   // stops the sampler after one last sample and closes the trace; idempotent

  // End windows before stop(): after it, meters without a counter are no longer sampled and a
  // window's end would be extrapolated from the last sample.
  void begin_window(const std::string& name);         // throws if `name` is already open
  WindowResult end_window(const std::string& name);   // throws if `name` was never begun
  // What end_window would return now, leaving the window open (a training checkpoint records the
  // energy so far of the phases still running).
  WindowResult window_so_far(const std::string& name);
  bool window_open(const std::string& name) const;

  // Appends one CodeCarbon-style row for `result` (see emissions.h).
  void append_emissions_csv(const std::string& path, const WindowResult& result,
                            const RunInfo& run) const;

  const HostInfo& host() const;
  const CarbonFactors& carbon() const;
  std::vector<std::string> warnings() const;  // every warning so far, in order
  int64_t samples_taken() const;
  // CPU time used by the sampler thread itself (its cost to the measured machine), start-up excluded.
  double sampler_cpu_seconds() const;              // sampler ticks (rows of power_trace.csv)
  bool gpu_present() const;
  std::string gpu_absent_reason() const;
  // Per metered source with a stepping energy counter ("gpu0", ...): its step in seconds, as
  // probed at start() (absent before start or for sources without such a counter).
  std::map<std::string, double> counter_update_periods() const;
  // Per metered GPU ("gpu0", ...): its PCI bus id (as EnergyOptions::gpu_pci_bus_ids named it,
  // else NVML's), absent where NVML cannot say.
  std::map<std::string, std::string> gpu_pci_bus_ids() const;

  struct Impl;

 private:
  WindowResult measure_window(const std::string& name, bool close);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ww::energy
