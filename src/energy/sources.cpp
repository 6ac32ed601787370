#include "sources.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>

#include "wattwise/energy/integrate.h"

namespace ww::energy::detail {

// ---- seqlock ---------------------------------------------------------------------------------

void SnapshotCell::store(const Snapshot& snapshot) {
  const uint64_t sequence = sequence_.load(std::memory_order_relaxed);
  sequence_.store(sequence + 1, std::memory_order_relaxed);  // odd: a write is in progress
  std::atomic_thread_fence(std::memory_order_release);
  words_[0].store(std::bit_cast<uint64_t>(snapshot.t_s), std::memory_order_relaxed);
  words_[1].store(std::bit_cast<uint64_t>(snapshot.cumulative_j), std::memory_order_relaxed);
  words_[2].store(std::bit_cast<uint64_t>(snapshot.power_w), std::memory_order_relaxed);
  words_[3].store(snapshot.raw, std::memory_order_relaxed);
  words_[4].store(static_cast<uint64_t>(snapshot.mode), std::memory_order_relaxed);
  words_[5].store(std::bit_cast<uint64_t>(snapshot.anchor_j), std::memory_order_relaxed);
  words_[6].store(std::bit_cast<uint64_t>(snapshot.anchor_t_s), std::memory_order_relaxed);
  sequence_.store(sequence + 2, std::memory_order_release);
}

Snapshot SnapshotCell::load() const {
  for (;;) {
    const uint64_t before = sequence_.load(std::memory_order_acquire);
    if (before & 1) continue;  // the writer is mid-store; it never blocks, so just retry
    Snapshot snapshot;
    snapshot.t_s = std::bit_cast<double>(words_[0].load(std::memory_order_relaxed));
    snapshot.cumulative_j = std::bit_cast<double>(words_[1].load(std::memory_order_relaxed));
    snapshot.power_w = std::bit_cast<double>(words_[2].load(std::memory_order_relaxed));
    snapshot.raw = words_[3].load(std::memory_order_relaxed);
    snapshot.mode = static_cast<Mode>(words_[4].load(std::memory_order_relaxed));
    snapshot.anchor_j = std::bit_cast<double>(words_[5].load(std::memory_order_relaxed));
    snapshot.anchor_t_s = std::bit_cast<double>(words_[6].load(std::memory_order_relaxed));
    std::atomic_thread_fence(std::memory_order_acquire);
    if (sequence_.load(std::memory_order_relaxed) == before) return snapshot;
  }
}

// ---- files -----------------------------------------------------------------------------------

bool read_small_file(const std::string& path, std::string* text, std::string* error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = path + ": " + std::strerror(errno);
    return false;
  }
  text->clear();
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = path + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    text->append(buffer, static_cast<size_t>(n));
    if (text->size() > (1u << 20)) break;  // procfs files we read are far smaller
  }
  ::close(fd);
  return true;
}

bool read_uint64_file(const std::string& path, uint64_t* value, std::string* error) {
  std::string text;
  if (!read_small_file(path, &text, error)) return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long parsed = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str() || errno != 0) {
    *error = path + ": not an unsigned integer";
    return false;
  }
  *value = parsed;
  return true;
}

bool read_cpu_jiffies(const std::string& proc_root, uint64_t* busy, uint64_t* total) {
  std::string text, error;
  if (!read_small_file(proc_root + "/stat", &text, &error)) return false;
  std::istringstream in(text);
  std::string label;
  in >> label;
  if (label != "cpu") return false;
  // user nice system idle iowait irq softirq steal (guest times are already inside user/nice)
  uint64_t fields[8] = {};
  for (uint64_t& field : fields)
    if (!(in >> field)) return false;
  uint64_t sum = 0;
  for (uint64_t field : fields) sum += field;
  *total = sum;
  *busy = sum - fields[3] - fields[4];
  return true;
}

bool read_meminfo(const std::string& proc_root, double* total_gib, double* available_gib) {
  std::string text, error;
  if (!read_small_file(proc_root + "/meminfo", &text, &error)) return false;
  std::istringstream in(text);
  std::string key;
  double kib = 0;
  std::string unit;
  bool have_total = false, have_available = false;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemTotal:") {
      *total_gib = kib / (1024.0 * 1024.0);
      have_total = true;
    } else if (key == "MemAvailable:") {
      *available_gib = kib / (1024.0 * 1024.0);
      have_available = true;
    }
  }
  return have_total && have_available;
}

std::string format_seconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f s", seconds);
  return text;
}

// ---- Source ----------------------------------------------------------------------------------

Source::Source(std::string id_, DeviceKind kind_, std::string device_name_, Mode initial_mode,
               double joules_per_count, uint64_t counter_range)
    : id(std::move(id_)),
      kind(kind_),
      device_name(std::move(device_name_)),
      joules_per_count_(joules_per_count),
      counter_range_(counter_range) {
  last_.mode = initial_mode;
  cell_.store(last_);
}

bool Source::read_counter(uint64_t*, std::string* error) const {
  *error = "no energy counter";
  return false;
}

std::string Source::counter_failed_message(double t_s, const std::string& error) const {
  return id + ": energy counter failed at " + format_seconds(t_s) + " (" + error +
         "); integrating sampled power from here on";
}

std::string Source::lost_message(double t_s, const std::string& error) const {
  return id + ": stopped answering at " + format_seconds(t_s) + " (" + error +
         "); its energy after that is not counted";
}

std::vector<double> Source::extras() const { return extras_; }

void Source::sample(const Tick& tick, const WarnFn& warn, bool force_counter) {
  Snapshot next = last_;
  next.t_s = tick.t_s;
  const double dt = primed_ ? tick.t_s - last_.t_s : 0.0;
  std::string error, counter_error;
  if (next.mode == Mode::counter) {
    const bool counter_tick = force_counter || !primed_ || ticks_ % counter_every_ == 0;
    double watts = 0;
    std::string power_error;
    if (!counter_tick && read_power(Mode::counter, tick, &watts, &power_error)) {
      // Between counter readings: the trace's running total follows the sampled power.
      next.cumulative_j += 0.5 * (last_.power_w + watts) * dt;
      next.power_w = watts;
    } else {
      uint64_t raw = 0;
      if (read_counter(&raw, &error)) {
        double joules = 0;
        if (primed_) joules = static_cast<double>(counter_delta(last_.raw, raw, counter_range_)) *
                              joules_per_count_;
        next.anchor_j = last_.anchor_j + joules;
        next.cumulative_j = next.anchor_j;
        next.raw = raw;
        const double since_anchor = primed_ ? tick.t_s - last_.anchor_t_s : 0.0;
        next.anchor_t_s = tick.t_s;
        if (read_power(Mode::counter, tick, &watts, &power_error)) {
          next.power_w = watts;
        } else {
          next.power_w = since_anchor > 0 ? joules / since_anchor : 0.0;
        }
      } else {
        counter_error = error;
        next.mode = Mode::integrate;
        next.cumulative_j = last_.cumulative_j;
      }
    }
  }
  if (next.mode == Mode::integrate) {
    double watts = 0;
    if (read_power(Mode::integrate, tick, &watts, &error)) {
      // Trapezoid between the last sample and this one (continuous with any counter history).
      // When the counter has just failed, the last power may be a counter delta over the interval
      // before the last reading, which says nothing about the gap since: the gap takes the
      // fallback's power alone.
      if (primed_) next.cumulative_j += (counter_error.empty() ? 0.5 * (last_.power_w + watts) : watts) * dt;
      next.power_w = watts;
      integrated_.store(true, std::memory_order_relaxed);
      if (!counter_error.empty()) warn(counter_failed_message(tick.t_s, counter_error));
    } else {
      // When the counter and the power both fail in one tick the device is gone: one warning.
      warn(lost_message(tick.t_s, error));
      lost_at_s_.store(tick.t_s, std::memory_order_relaxed);
      next.mode = Mode::lost;
      next.power_w = 0;
    }
  }
  if (next.mode == Mode::lost) {
    extras_.assign(extra_columns().size(), kNaN);
  } else {
    extras_.assign(extra_columns().size(), kNaN);
    read_extras(&extras_);
  }
  primed_ = true;
  ++ticks_;
  last_ = next;
  cell_.store(next);
}

void Source::probe_counter_period(double limit_s) {
  if (snapshot().mode != Mode::counter) return;
  std::string error;
  uint64_t last = 0;
  if (!read_counter(&last, &error)) return;  // the sampler reports a failing counter
  using clock = std::chrono::steady_clock;
  const auto begin = clock::now();
  auto seconds_since_begin = [&] { return std::chrono::duration<double>(clock::now() - begin).count(); };
  // Each change happened between the last poll that saw the old value and the first that saw the
  // new one. A starved poll widens that bracket; intervals between two narrow brackets are exact
  // within the bracket widths, so those decide when there are any.
  constexpr double kNarrow = 0.002;
  struct Change {
    double after_s, seen_s;
  };
  std::vector<Change> changes;
  double previous_poll_s = seconds_since_begin();
  int narrow_intervals = 0;
  while (narrow_intervals < 3 && seconds_since_begin() < limit_s) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
    uint64_t raw = 0;
    if (!read_counter(&raw, &error)) return;
    const double poll_s = seconds_since_begin();
    if (raw != last) {
      changes.push_back({previous_poll_s, poll_s});
      last = raw;
      const size_t n = changes.size();
      if (n >= 2 && changes[n - 1].seen_s - changes[n - 1].after_s <= kNarrow &&
          changes[n - 2].seen_s - changes[n - 2].after_s <= kNarrow)
        ++narrow_intervals;
    }
    previous_poll_s = poll_s;
  }
  std::vector<double> narrow, all;
  for (size_t k = 1; k < changes.size(); ++k) {
    const double interval = 0.5 * (changes[k].after_s + changes[k].seen_s) -
                            0.5 * (changes[k - 1].after_s + changes[k - 1].seen_s);
    all.push_back(interval);
    if (changes[k].seen_s - changes[k].after_s <= kNarrow && changes[k - 1].seen_s - changes[k - 1].after_s <= kNarrow)
      narrow.push_back(interval);
  }
  std::vector<double>& use = narrow.empty() ? all : narrow;
  double step = limit_s;  // fewer than two changes seen: the step is at least the whole probe
  if (!use.empty()) {
    std::nth_element(use.begin(), use.begin() + use.size() / 2, use.end());
    step = use[use.size() / 2];
  }
  counter_period_s_.store(step, std::memory_order_relaxed);
}

double Source::joules_at(double t_s) const {
  const Snapshot snapshot = cell_.load();
  switch (snapshot.mode) {
    case Mode::counter: {
      uint64_t raw = 0;
      std::string error;
      if (read_counter(&raw, &error))
        return snapshot.anchor_j +
               static_cast<double>(counter_delta(snapshot.raw, raw, counter_range_)) *
                   joules_per_count_;
      break;  // a failing direct read: extrapolate like an integrating source
    }
    case Mode::integrate:
      break;
    case Mode::lost:
      return snapshot.cumulative_j;
  }
  return snapshot.cumulative_j + snapshot.power_w * std::max(0.0, t_s - snapshot.t_s);
}

// ---- NVML GPU --------------------------------------------------------------------------------

NvmlGpuSource::NvmlGpuSource(std::shared_ptr<nvml::Api> api, nvml::Device device,
                             unsigned index, std::string name, bool has_energy_counter,
                             int interval_ms)
    : Source("gpu" + std::to_string(index), DeviceKind::gpu, std::move(name),
             has_energy_counter ? Mode::counter : Mode::integrate, 1e-3, 0),
      api_(std::move(api)),
      device_(device),
      had_energy_counter_(has_energy_counter),
      interval_ms_(interval_ms) {
  unsigned milliwatts = 0;
  if (api_->device_get_enforced_power_limit != nullptr &&
      api_->device_get_enforced_power_limit(device_, &milliwatts) == nvml::kSuccess && milliwatts > 0)
    power_limit_w_ = milliwatts / 1000.0;
}

bool NvmlGpuSource::read_power_now(double* watts) const {
  unsigned milliwatts = 0;
  if (api_->device_get_power_usage == nullptr ||
      api_->device_get_power_usage(device_, &milliwatts) != nvml::kSuccess)
    return false;
  *watts = milliwatts / 1000.0;
  return true;
}

bool NvmlGpuSource::read_counter(uint64_t* raw, std::string* error) const {
  if (api_->device_get_total_energy_consumption == nullptr) {
    *error = "nvmlDeviceGetTotalEnergyConsumption missing";
    return false;
  }
  unsigned long long millijoules = 0;
  const nvml::Return status = api_->device_get_total_energy_consumption(device_, &millijoules);
  if (status != nvml::kSuccess) {
    *error = "nvmlDeviceGetTotalEnergyConsumption: " + api_->describe(status);
    return false;
  }
  *raw = millijoules;
  return true;
}

bool NvmlGpuSource::read_power(Mode, const Tick&, double* watts, std::string* error) {
  if (api_->device_get_power_usage == nullptr) {
    *error = "nvmlDeviceGetPowerUsage missing";
    return false;
  }
  unsigned milliwatts = 0;
  const nvml::Return status = api_->device_get_power_usage(device_, &milliwatts);
  if (status != nvml::kSuccess) {
    *error = "nvmlDeviceGetPowerUsage: " + api_->describe(status);
    return false;
  }
  *watts = milliwatts / 1000.0;
  return true;
}

std::vector<std::string> NvmlGpuSource::extra_columns() const {
  return {"util_pct", "mem_used_mib", "sm_clock_mhz", "temp_c"};
}

void NvmlGpuSource::read_extras(std::vector<double>* values) {
  if (api_->device_get_utilization_rates != nullptr) {
    nvml::Utilization utilization{};
    if (api_->device_get_utilization_rates(device_, &utilization) == nvml::kSuccess)
      (*values)[0] = utilization.gpu;
  }
  if (api_->device_get_memory_info != nullptr) {
    nvml::Memory memory{};
    if (api_->device_get_memory_info(device_, &memory) == nvml::kSuccess)
      (*values)[1] = static_cast<double>(memory.used) / (1024.0 * 1024.0);
  }
  if (api_->device_get_clock_info != nullptr) {
    unsigned mhz = 0;
    if (api_->device_get_clock_info(device_, nvml::kClockSm, &mhz) == nvml::kSuccess)
      (*values)[2] = mhz;
  }
  if (api_->device_get_temperature != nullptr) {
    unsigned celsius = 0;
    if (api_->device_get_temperature(device_, nvml::kTemperatureGpu, &celsius) == nvml::kSuccess)
      (*values)[3] = celsius;
  }
}

std::string NvmlGpuSource::counter_failed_message(double t_s, const std::string& error) const {
  counter_failed_at_s_.store(t_s, std::memory_order_relaxed);  // atomic: read by describe()
  return id + " (" + device_name + "): NVML total energy counter failed at " +
         format_seconds(t_s) + " (" + error +
         "); falling back to integrating sampled power";
}

std::string NvmlGpuSource::lost_message(double t_s, const std::string& error) const {
  return id + " (" + device_name + ") stopped answering NVML at " + format_seconds(t_s) + " (" +
         error + "); its energy after that is not counted";
}

std::string NvmlGpuSource::describe(Mode mode) const {
  switch (mode) {
    case Mode::counter:
      return "measured: nvml total energy counter";
    case Mode::integrate: {
      std::string text = "measured: nvml power samples every " + std::to_string(interval_ms_) +
                         " ms, trapezoid integration";
      if (!had_energy_counter_) return text + " (no energy counter on this GPU)";
      const double failed_at = counter_failed_at_s_.load(std::memory_order_relaxed);
      if (!std::isnan(failed_at))
        text += " (after the energy counter failed at " + format_seconds(failed_at) + ")";
      return text;
    }
    case Mode::lost:
      return "GPU lost at " + format_seconds(lost_at_s()) + ": energy after that not counted";
  }
  return "";
}

// ---- estimates -------------------------------------------------------------------------------

EstimateSource::EstimateSource(std::string id_, DeviceKind kind_, std::string device_name_,
                               std::function<bool(const Tick&, double*, std::string*)> model,
                               std::string description)
    : Source(std::move(id_), kind_, std::move(device_name_), Mode::integrate, 0, 0),
      model_(std::move(model)),
      description_(std::move(description)) {}

bool EstimateSource::read_power(Mode, const Tick& tick, double* watts, std::string* error) {
  return model_(tick, watts, error);
}

std::string EstimateSource::describe(Mode mode) const {
  if (mode == Mode::lost)
    return "estimate inputs unreadable from " + format_seconds(lost_at_s()) +
           ": energy after that not counted";
  return description_;
}

// ---- RAPL ------------------------------------------------------------------------------------

RaplSource::RaplSource(std::string id_, DeviceKind kind_, std::string device_name_,
                       std::string zone_dir, std::string zone_name, uint64_t max_range_uj,
                       std::function<bool(const Tick&, double*, std::string*)> fallback,
                       std::string fallback_description)
    : Source(std::move(id_), kind_, std::move(device_name_), Mode::counter, 1e-6, max_range_uj),
      zone_dir_(std::move(zone_dir)),
      zone_name_(std::move(zone_name)),
      fallback_(std::move(fallback)),
      fallback_description_(std::move(fallback_description)) {}

bool RaplSource::read_counter(uint64_t* raw, std::string* error) const {
  return read_uint64_file(zone_dir_ + "/energy_uj", raw, error);
}

bool RaplSource::read_power(Mode mode, const Tick& tick, double* watts, std::string* error) {
  if (mode == Mode::counter) {
    *error = "RAPL gives energy, not power";
    return false;  // power comes from the counter delta
  }
  return fallback_(tick, watts, error);
}

std::string RaplSource::counter_failed_message(double t_s, const std::string& error) const {
  failed_at_s_.store(t_s, std::memory_order_relaxed);
  return id + ": RAPL energy counter failed at " + format_seconds(t_s) + " (" + error +
         "); estimating from here on (" + fallback_description_ + ")";
}

std::string RaplSource::describe(Mode mode) const {
  switch (mode) {
    case Mode::counter:
      return "measured: RAPL powercap energy counter (" + zone_name_ + ")";
    case Mode::integrate:
      return fallback_description_ + " (after the RAPL counter failed at " +
             format_seconds(failed_at_s_.load(std::memory_order_relaxed)) + ")";
    case Mode::lost:
      return "RAPL and its fallback failed at " + format_seconds(lost_at_s()) +
             ": energy after that not counted";
  }
  return "";
}

}  // namespace ww::energy::detail
