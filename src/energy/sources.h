#pragma once
// The meters behind EnergyMonitor (private to src/energy). Each Source keeps a cumulative energy in
// joules since it was first sampled. The sampler thread is its only writer and publishes a
// Snapshot through a seqlock, so readers on other threads (begin_window/end_window) never take a
// lock and never wait for the sampler: they read the snapshot and, where the device has an energy
// counter, read that counter directly and add the difference.
#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "nvml_api.h"
#include "wattwise/energy/monitor.h"

namespace ww::energy::detail {

// How a source currently measures. Modes only move forward (a counter that fails falls back to
// integrating power; a device that stops answering is lost).
enum class Mode : uint64_t { counter = 0, integrate = 1, lost = 2 };

struct Snapshot {
  double t_s = 0;           // monitor time of the sample
  double cumulative_j = 0;  // energy since the source was first sampled
  double power_w = 0;       // power at t_s (sampled, or counter delta / interval)
  // Counter mode: the last counter reading and the energy at that reading. Between readings
  // (counter_every > 1) cumulative_j advances by integrated power for the trace, while joules_at()
  // reads the counter directly against this anchor, so window figures stay exact.
  uint64_t raw = 0;
  double anchor_j = 0;
  double anchor_t_s = 0;
  Mode mode = Mode::counter;
};

// Single-writer seqlock: the writer never blocks; a reader retries only if it raced a write.
class SnapshotCell {
 public:
  void store(const Snapshot& snapshot);
  Snapshot load() const;

 private:
  std::atomic<uint64_t> sequence_{0};
  std::atomic<uint64_t> words_[7] = {};
};

// What one sampler tick knows about the whole machine (read once per tick, shared by sources).
struct Tick {
  double t_s = 0;
  double cpu_utilization = std::numeric_limits<double>::quiet_NaN();  // 0..1 since last tick
  double ram_used_gib = std::numeric_limits<double>::quiet_NaN();
};

using WarnFn = std::function<void(const std::string&)>;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

class Source {
 public:
  Source(std::string id, DeviceKind kind, std::string device_name, Mode initial_mode,
         double joules_per_count, uint64_t counter_range);
  virtual ~Source() = default;

  const std::string id;           // "gpu0", "cpu:package-0", "cpu", "ram"
  const DeviceKind kind;
  const std::string device_name;  // "NVIDIA H100 80GB HBM3", CPU model, "RAM"

  // Sampler thread only: reads the device, advances the integral, publishes a snapshot. The first
  // call only sets the starting point. Failures are reported through `warn` and degrade the mode.
  // read_counter forces a counter reading on this tick (the first and last ticks of a trace).
  void sample(const Tick& tick, const WarnFn& warn, bool read_counter = false);
  // Any thread, lock-free: cumulative joules at monitor time t_s.
  double joules_at(double t_s) const;
  Snapshot snapshot() const { return cell_.load(); }

  // How the figure is obtained in `mode`, for provenance ("measured: ..." / "estimated: ...").
  virtual std::string describe(Mode mode) const = 0;
  virtual bool measured(Mode mode) const = 0;
  double lost_at_s() const { return lost_at_s_.load(std::memory_order_relaxed); }
  // Whether the source ever integrated power (false if it went from its counter straight to lost).
  bool integrated() const { return integrated_.load(std::memory_order_relaxed); }

  // Extra trace columns (e.g. a GPU's utilisation, memory, clock, temperature).
  virtual std::vector<std::string> extra_columns() const { return {}; }
  std::vector<double> extras() const;  // last values, NaN when unknown (sampler thread)
  // Read the energy counter on every n-th tick only (power, which is cheap, on every tick): on an
  // H100, nvmlDeviceGetTotalEnergyConsumption costs ~3.8 ms of CPU per call, the others ~1 us.
  void set_counter_every(int n) { counter_every_ = n < 1 ? 1 : n; }

  // How often the energy counter actually changes. NVML's updates in steps some tens of ms apart,
  // so a window shorter than a few steps cannot be read off it. probe_counter_period() polls the
  // counter (at most `limit_s`) and keeps the median interval between changes it saw promptly;
  // when it sees fewer than two changes the step is at least `limit_s`, which is kept. 0: never
  // probed.
  void probe_counter_period(double limit_s);
  double counter_update_period_s() const { return counter_period_s_.load(std::memory_order_relaxed); }
  // Power right now, read directly (any thread); false when the device gives no power reading.
  virtual bool read_power_now(double* watts) const {
    (void)watts;
    return false;
  }
  // The device's power limit in W (NaN when unknown): no window's average can physically exceed it.
  virtual double power_limit_w() const { return kNaN; }

 protected:
  // Thread-safe direct read of the energy counter (counter mode). false + error on failure.
  virtual bool read_counter(uint64_t* raw, std::string* error) const;
  // Power right now in `mode`; false + error when it cannot be had.
  virtual bool read_power(Mode mode, const Tick& tick, double* watts, std::string* error) = 0;
  virtual void read_extras(std::vector<double>* values) { (void)values; }
  // The warnings for a failing counter / a lost device.
  virtual std::string counter_failed_message(double t_s, const std::string& error) const;
  virtual std::string lost_message(double t_s, const std::string& error) const;

  std::vector<double> extras_;

 private:
  double joules_per_count_;
  uint64_t counter_range_;
  SnapshotCell cell_;
  Snapshot last_;  // sampler-thread copy of the last published snapshot
  bool primed_ = false;
  int counter_every_ = 1;
  int64_t ticks_ = 0;
  std::atomic<double> lost_at_s_{kNaN};
  std::atomic<bool> integrated_{false};
  std::atomic<double> counter_period_s_{0};
};

// One GPU through NVML: total-energy counter when supported, else trapezoid over sampled power.
class NvmlGpuSource : public Source {
 public:
  NvmlGpuSource(std::shared_ptr<nvml::Api> api, nvml::Device device, unsigned index,
                std::string name, bool has_energy_counter, int interval_ms);
  std::string describe(Mode mode) const override;
  bool measured(Mode) const override { return true; }
  std::vector<std::string> extra_columns() const override;
  bool read_power_now(double* watts) const override;
  double power_limit_w() const override { return power_limit_w_; }

 protected:
  bool read_counter(uint64_t* raw, std::string* error) const override;
  bool read_power(Mode mode, const Tick& tick, double* watts, std::string* error) override;
  void read_extras(std::vector<double>* values) override;
  std::string counter_failed_message(double t_s, const std::string& error) const override;
  std::string lost_message(double t_s, const std::string& error) const override;

 private:
  std::shared_ptr<nvml::Api> api_;
  nvml::Device device_;
  bool had_energy_counter_;
  int interval_ms_;
  double power_limit_w_ = kNaN;
  mutable std::atomic<double> counter_failed_at_s_{kNaN};
};

// An estimate integrated over time: power = model(tick). Used for the CPU (TDP x utilisation) and
// memory (W per GiB in use) when no counter can be read.
class EstimateSource : public Source {
 public:
  EstimateSource(std::string id, DeviceKind kind, std::string device_name,
                 std::function<bool(const Tick&, double*, std::string*)> model,
                 std::string description);
  std::string describe(Mode mode) const override;
  bool measured(Mode) const override { return false; }

 protected:
  bool read_power(Mode mode, const Tick& tick, double* watts, std::string* error) override;

 private:
  std::function<bool(const Tick&, double*, std::string*)> model_;
  std::string description_;
};

// One powercap RAPL zone (a CPU package or DRAM): energy_uj counter with wrap at
// max_energy_range_uj. If the counter fails mid-run it falls back to `fallback` (an estimate).
class RaplSource : public Source {
 public:
  RaplSource(std::string id, DeviceKind kind, std::string device_name, std::string zone_dir,
             std::string zone_name, uint64_t max_range_uj,
             std::function<bool(const Tick&, double*, std::string*)> fallback,
             std::string fallback_description);
  std::string describe(Mode mode) const override;
  bool measured(Mode mode) const override { return mode == Mode::counter; }

 protected:
  bool read_counter(uint64_t* raw, std::string* error) const override;
  bool read_power(Mode mode, const Tick& tick, double* watts, std::string* error) override;
  std::string counter_failed_message(double t_s, const std::string& error) const override;

 private:
  std::string zone_dir_;
  std::string zone_name_;
  std::function<bool(const Tick&, double*, std::string*)> fallback_;
  std::string fallback_description_;
  mutable std::atomic<double> failed_at_s_{kNaN};
};

// Reads a whole small file (sysfs, procfs) with one open/read/close: safe from any thread.
bool read_small_file(const std::string& path, std::string* text, std::string* error);
bool read_uint64_file(const std::string& path, uint64_t* value, std::string* error);

// /proc/stat: busy and total jiffies of the "cpu" line.
bool read_cpu_jiffies(const std::string& proc_root, uint64_t* busy, uint64_t* total);
// /proc/meminfo: MemTotal and MemAvailable in GiB.
bool read_meminfo(const std::string& proc_root, double* total_gib, double* available_gib);

std::string format_seconds(double seconds);  // "12.3 s"

}  // namespace ww::energy::detail
