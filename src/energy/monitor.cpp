#include "wattwise/energy/monitor.h"

#include <pthread.h>
#include <ctime>
#include <signal.h>
#include <sys/utsname.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "sources.h"
#include "wattwise/core/error.h"
#include "wattwise/energy/emissions.h"
#include "wattwise/energy/integrate.h"
#include "wattwise/energy/tables.h"

namespace ww::energy {

using detail::Mode;
using detail::Source;
using detail::Tick;

const char* device_kind_name(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::gpu: return "gpu";
    case DeviceKind::cpu: return "cpu";
    case DeviceKind::ram: return "ram";
  }
  return "?";
}

namespace {

std::string format_number(double value) {
  if (!std::isfinite(value)) return "";
  char text[64];
  const auto result = std::to_chars(text, text + sizeof(text), value);
  return std::string(text, result.ptr);
}

std::string format_watts(double watts) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", watts);
  return text;
}

std::string format_milliseconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.3g ms", seconds * 1e3);
  return text;
}

HostInfo probe_host(const std::string& proc_root) {
  HostInfo host;
  struct utsname names {};
  if (uname(&names) == 0)
    host.os = std::string(names.sysname) + "-" + names.release + "-" + names.machine;
  std::string text, error;
  std::set<std::string> packages;
  if (detail::read_small_file(proc_root + "/cpuinfo", &text, &error)) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string key = line.substr(0, colon);
      while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
      std::string value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.erase(0, 1);
      if (key == "processor") ++host.cpu_count;
      if (key == "model name" && host.cpu_model.empty()) host.cpu_model = value;
      if (key == "physical id") packages.insert(value);
    }
  }
  if (host.cpu_count == 0) host.cpu_count = static_cast<int>(std::thread::hardware_concurrency());
  if (host.cpu_model.empty()) host.cpu_model = "unknown CPU";
  host.cpu_packages = std::max<int>(1, static_cast<int>(packages.size()));
  double total = 0, available = 0;
  if (detail::read_meminfo(proc_root, &total, &available)) host.ram_total_gib = total;
  return host;
}

// Water usage effectiveness, litres per kWh: CodeCarbon's default (0: no figure for the site), so
// water_consumed is 0 unless a site's WUE is known (docs/ENERGY.md).
constexpr double kWaterUsageEffectiveness = 0.0;

struct RaplZone {
  std::string dir;
  std::string name;  // "package-0", "dram"
  uint64_t max_range_uj = 0;
};

}  // namespace

struct EnergyMonitor::Impl {
  // Running sums of what the sampler reads each tick besides energy (utilisation, memory in use):
  // a window's means are the differences between its edges.
  struct Usage {
    double cpu_percent = 0, gpu_percent = 0, ram_gib = 0;
    int64_t cpu_ticks = 0, gpu_ticks = 0, ram_ticks = 0;
  };
  struct WindowStart {
    double t_s = 0;
    std::vector<double> joules;
    std::vector<Mode> modes;
    std::vector<double> watts;  // power read directly at the edge (NaN where the source has none)
    Usage usage;
  };
  mutable std::mutex usage_mutex;
  Usage usage;  // since start(), guarded by usage_mutex
  struct Warning {
    double t_s;
    std::string text;
  };

  EnergyOptions options;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  CarbonFactors carbon;
  HostInfo host;
  std::shared_ptr<detail::nvml::Api> nvml_api;
  std::vector<std::unique_ptr<Source>> sources;
  std::string gpu_absent_reason;
  std::map<std::string, std::string> gpu_bus_ids;  // source id ("gpu0") -> PCI bus id

  mutable std::mutex warnings_mutex;
  std::vector<Warning> warnings;

  mutable std::mutex windows_mutex;  // guards the name -> start map only; meters are lock-free
  std::map<std::string, WindowStart> windows;

  // Sampler.
  std::thread sampler;
  std::atomic<int64_t> sampler_cpu_ns{0};  // CPU time the sampler thread has used
  std::mutex sampler_mutex;
  std::condition_variable sampler_wake;
  bool stop_requested = false;
  bool started = false;
  bool stopped = false;
  std::atomic<int64_t> samples{0};
  std::FILE* trace = nullptr;
  uint64_t previous_busy = 0, previous_total = 0;
  double last_utilization = detail::kNaN;

  bool has_baseline = false;
  double baseline_w[3] = {0, 0, 0};

  double now_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  void warn(const std::string& text) {
    {
      std::lock_guard<std::mutex> lock(warnings_mutex);
      warnings.push_back({now_s(), text});
    }
    if (options.on_warning) {
      options.on_warning(text);
    } else {
      std::fprintf(stderr, "wattwise: warning: %s\n", text.c_str());
    }
  }

  void setup_gpus() {
    if (!options.use_nvml) {
      gpu_absent_reason = "NVML disabled";
      return;
    }
    if (options.gpus && options.gpus->empty()) {
      gpu_absent_reason = "no GPU selected";
      return;
    }
    std::string why_not;
    std::unique_ptr<detail::nvml::Api> loaded = detail::nvml::load(options.nvml_library, &why_not);
    if (!loaded) {
      gpu_absent_reason = why_not;
      if (options.gpus) warn("GPUs were selected but there is " + why_not);
      return;
    }
    nvml_api = std::move(loaded);
    unsigned count = 0;
    const detail::nvml::Return status = nvml_api->device_get_count(&count);
    if (status != detail::nvml::kSuccess) {
      gpu_absent_reason = "nvmlDeviceGetCount failed: " + nvml_api->describe(status);
      warn(gpu_absent_reason);
      return;
    }
    std::vector<int> indices;
    std::map<int, std::string> bus_id_of;  // the bus ids the caller named, in its spelling
    if (options.gpus) {
      indices = *options.gpus;
      for (int index : indices)
        if (index < 0 || static_cast<unsigned>(index) >= count)
          fail("GPU index ", index, " does not exist: NVML sees ", count, " GPU(s) (indices 0..",
               static_cast<int>(count) - 1, ")");
    } else if (!options.gpu_pci_bus_ids.empty()) {
      indices = indices_of_bus_ids(options.gpu_pci_bus_ids, &bus_id_of);
      if (indices.empty())
        for (unsigned i = 0; i < count; ++i) indices.push_back(static_cast<int>(i));
    } else {
      for (unsigned i = 0; i < count; ++i) indices.push_back(static_cast<int>(i));
    }
    std::map<std::string, int> model_counts;
    for (int index : indices) {
      detail::nvml::Device device = nullptr;
      const auto got = nvml_api->device_get_handle_by_index(static_cast<unsigned>(index), &device);
      if (got != detail::nvml::kSuccess) {
        warn("gpu" + std::to_string(index) + ": nvmlDeviceGetHandleByIndex failed: " +
             nvml_api->describe(got) + "; not metered");
        continue;
      }
      char name[96] = "NVIDIA GPU";
      if (nvml_api->device_get_name != nullptr) nvml_api->device_get_name(device, name, sizeof(name));
      name[sizeof(name) - 1] = '\0';
      unsigned long long millijoules = 0;
      const bool has_counter =
          nvml_api->device_get_total_energy_consumption != nullptr &&
          nvml_api->device_get_total_energy_consumption(device, &millijoules) == detail::nvml::kSuccess;
      unsigned milliwatts = 0;
      const bool has_power = nvml_api->device_get_power_usage != nullptr &&
                             nvml_api->device_get_power_usage(device, &milliwatts) ==
                                 detail::nvml::kSuccess;
      if (!has_counter && !has_power) {
        warn("gpu" + std::to_string(index) + " (" + name +
             "): NVML reports neither an energy counter nor power; not metered");
        continue;
      }
      sources.push_back(std::make_unique<detail::NvmlGpuSource>(
          nvml_api, device, static_cast<unsigned>(index), name, has_counter, options.interval_ms));
      // Which GPU a figure is, across machines and CUDA_VISIBLE_DEVICES: its PCI bus id.
      std::string bus_id = bus_id_of.count(index) ? bus_id_of[index] : "";
      detail::nvml::PciInfo pci{};
      if (bus_id.empty() && nvml_api->device_get_pci_info != nullptr &&
          nvml_api->device_get_pci_info(device, &pci) == detail::nvml::kSuccess) {
        pci.bus_id_legacy[sizeof(pci.bus_id_legacy) - 1] = '\0';
        pci.bus_id[sizeof(pci.bus_id) - 1] = '\0';
        bus_id = pci.bus_id_legacy[0] != '\0' ? pci.bus_id_legacy : pci.bus_id;
      }
      if (!bus_id.empty()) gpu_bus_ids[sources.back()->id] = bus_id;
      sources.back()->set_counter_every(std::max(1, options.counter_period_ms / std::max(1, options.interval_ms)));
      ++model_counts[name];
    }
    for (const auto& [model, n] : model_counts) {
      if (!host.gpu_model.empty()) host.gpu_model += ", ";
      host.gpu_model += std::to_string(n) + " x " + model;
      host.gpu_count += n;
    }
    if (host.gpu_count == 0 && gpu_absent_reason.empty())
      gpu_absent_reason = count == 0 ? "NVML sees no GPU" : "no GPU could be metered";
  }

  // NVML indices of the GPUs at these PCI bus ids, in order, without repeats; empty (after a
  // warning) when any cannot be found.
  std::vector<int> indices_of_bus_ids(const std::vector<std::string>& bus_ids, std::map<int, std::string>* bus_id_of) {
    std::vector<int> indices;
    if (nvml_api->device_get_handle_by_pci_bus_id == nullptr || nvml_api->device_get_index == nullptr) {
      warn("NVML cannot look GPUs up by PCI bus id (no nvmlDeviceGetHandleByPciBusId_v2/nvmlDeviceGetIndex): "
           "metering every GPU");
      return {};
    }
    for (const std::string& bus_id : bus_ids) {
      detail::nvml::Device device = nullptr;
      unsigned index = 0;
      detail::nvml::Return got = nvml_api->device_get_handle_by_pci_bus_id(bus_id.c_str(), &device);
      if (got == detail::nvml::kSuccess) got = nvml_api->device_get_index(device, &index);
      if (got != detail::nvml::kSuccess) {
        warn("the GPU at PCI bus " + bus_id + " is not found by NVML (" + nvml_api->describe(got) +
             "): metering every GPU");
        return {};
      }
      if (std::find(indices.begin(), indices.end(), int(index)) == indices.end()) indices.push_back(int(index));
      bus_id_of->emplace(int(index), bus_id);
    }
    return indices;
  }

  std::vector<RaplZone> find_rapl_zones() {
    std::vector<RaplZone> zones;
    if (!options.use_rapl) return zones;
    std::error_code error;
    std::filesystem::directory_iterator it(options.powercap_root, error);
    if (error) return zones;
    std::string first_failure;
    for (const auto& entry : it) {
      const std::string base = entry.path().filename().string();
      // The kernel exposes RAPL as the "intel-rapl" powercap control type on Intel and on AMD
      // (family 17h+); "amd-rapl" is accepted for kernels that name the AMD type separately.
      if (!base.starts_with("intel-rapl:") && !base.starts_with("amd-rapl:")) continue;
      RaplZone zone;
      zone.dir = entry.path().string();
      std::string text, why;
      if (!detail::read_small_file(zone.dir + "/name", &text, &why)) continue;
      while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
      zone.name = text;
      // Package and DRAM only: core/uncore are inside the package, psys overlaps everything.
      if (!zone.name.starts_with("package") && zone.name != "dram") continue;
      uint64_t value = 0;
      if (!detail::read_uint64_file(zone.dir + "/energy_uj", &value, &why)) {
        if (first_failure.empty()) first_failure = why;
        continue;
      }
      if (!detail::read_uint64_file(zone.dir + "/max_energy_range_uj", &zone.max_range_uj, &why))
        zone.max_range_uj = (uint64_t{1} << 32) - 1;  // the classic 32-bit counter width
      zones.push_back(zone);
    }
    if (!first_failure.empty())
      warn("RAPL energy counters are not readable (" + first_failure +
           "; reading them usually needs root): those figures are estimated instead");
    std::sort(zones.begin(), zones.end(),
              [](const RaplZone& a, const RaplZone& b) { return a.dir < b.dir; });
    return zones;
  }

  void setup_cpu_and_ram() {
    // The CPU estimate, also the fallback of a failing RAPL package counter.
    double tdp_total = 0;
    std::string tdp_text;
    const int packages = host.cpu_packages;
    if (options.cpu_tdp_w) {
      if (!(*options.cpu_tdp_w > 0)) fail("CPU TDP must be positive, got ", *options.cpu_tdp_w);
      tdp_total = *options.cpu_tdp_w;
      tdp_text = "TDP " + format_watts(tdp_total) + " W (user-given)";
    } else if (auto entry = lookup_cpu_tdp(host.cpu_model, options.cpu_tdp_table)) {
      tdp_total = entry->tdp_w * packages;
      tdp_text = "TDP " + (packages > 1 ? std::to_string(packages) + " x " : std::string()) +
                 format_watts(entry->tdp_w) + " W (" + entry->model + ", " + entry->source + ")";
    } else {
      tdp_total = kUnknownCpuTdpW * packages;
      tdp_text = "TDP " + (packages > 1 ? std::to_string(packages) + " x " : std::string()) +
                 format_watts(kUnknownCpuTdpW) + " W (CPU model '" + host.cpu_model +
                 "' not in resources/cpu_tdp.csv: CodeCarbon's default)";
    }
    const std::string cpu_estimate = "estimated: " + tdp_text + " x utilisation (at least " +
                                     format_watts(kCpuMinLoadFraction * 100) + "% of TDP)";
    const double ram_w_per_gib = options.ram_w_per_gib.value_or(kRamWattsPerGib);
    if (!(ram_w_per_gib >= 0)) fail("RAM power per GiB must be >= 0, got ", ram_w_per_gib);
    const std::string ram_estimate =
        "estimated: " + format_watts(ram_w_per_gib) + " W/GiB x memory in use" +
        (options.ram_w_per_gib ? std::string(" (user-given)")
                               : std::string(" (CodeCarbon v2: 3 W per 8 GB)"));

    auto cpu_model = [tdp_total](double share) {
      return [tdp_total, share](const Tick& tick, double* watts, std::string* error) {
        if (std::isnan(tick.cpu_utilization)) {
          *error = "CPU utilisation unknown (/proc/stat unreadable)";
          return false;
        }
        *watts = share * tdp_total * std::max(tick.cpu_utilization, kCpuMinLoadFraction);
        return true;
      };
    };
    auto ram_model = [ram_w_per_gib](double share) {
      return [ram_w_per_gib, share](const Tick& tick, double* watts, std::string* error) {
        if (std::isnan(tick.ram_used_gib)) {
          *error = "memory in use unknown (/proc/meminfo unreadable)";
          return false;
        }
        *watts = share * ram_w_per_gib * tick.ram_used_gib;
        return true;
      };
    };

    std::vector<RaplZone> package_zones, dram_zones;
    for (const RaplZone& zone : find_rapl_zones())
      (zone.name == "dram" ? dram_zones : package_zones).push_back(zone);

    if (package_zones.empty()) {
      sources.push_back(std::make_unique<detail::EstimateSource>(
          "cpu", DeviceKind::cpu, host.cpu_model, cpu_model(1.0), cpu_estimate));
    } else {
      const double share = 1.0 / static_cast<double>(package_zones.size());
      for (const RaplZone& zone : package_zones)
        sources.push_back(std::make_unique<detail::RaplSource>(
            "cpu:" + zone.name, DeviceKind::cpu, host.cpu_model, zone.dir, zone.name,
            zone.max_range_uj, cpu_model(share), cpu_estimate));
    }
    if (dram_zones.empty()) {
      sources.push_back(std::make_unique<detail::EstimateSource>(
          "ram", DeviceKind::ram, "RAM", ram_model(1.0), ram_estimate));
    } else {
      const double share = 1.0 / static_cast<double>(dram_zones.size());
      for (size_t i = 0; i < dram_zones.size(); ++i)
        sources.push_back(std::make_unique<detail::RaplSource>(
            "ram:dram-" + std::to_string(i), DeviceKind::ram, "RAM", dram_zones[i].dir, "dram",
            dram_zones[i].max_range_uj, ram_model(share), ram_estimate));
    }
  }

  Tick make_tick(double t_s) {
    Tick tick;
    tick.t_s = t_s;
    uint64_t busy = 0, total = 0;
    if (detail::read_cpu_jiffies(options.proc_root, &busy, &total)) {
      if (total > previous_total && busy >= previous_busy) {
        last_utilization = static_cast<double>(busy - previous_busy) /
                           static_cast<double>(total - previous_total);
      } else if (std::isnan(last_utilization)) {
        last_utilization = 0;  // no jiffy elapsed yet: nothing measured to be busy
      }
      previous_busy = busy;
      previous_total = total;
      tick.cpu_utilization = std::clamp(last_utilization, 0.0, 1.0);
    }
    double total_gib = 0, available_gib = 0;
    if (detail::read_meminfo(options.proc_root, &total_gib, &available_gib))
      tick.ram_used_gib = std::max(0.0, total_gib - available_gib);
    return tick;
  }

  void add_usage(const Tick& tick) {
    double gpu_sum = 0;
    int gpus = 0;
    for (const auto& source : sources) {
      if (source->kind != DeviceKind::gpu) continue;
      const std::vector<std::string> names = source->extra_columns();
      const std::vector<double> values = source->extras();
      for (size_t i = 0; i < names.size() && i < values.size(); ++i)
        if (names[i] == "util_pct" && std::isfinite(values[i])) gpu_sum += values[i], ++gpus;
    }
    std::lock_guard<std::mutex> lock(usage_mutex);
    if (std::isfinite(tick.cpu_utilization)) usage.cpu_percent += 100 * tick.cpu_utilization, ++usage.cpu_ticks;
    if (std::isfinite(tick.ram_used_gib)) usage.ram_gib += tick.ram_used_gib, ++usage.ram_ticks;
    if (gpus > 0) usage.gpu_percent += gpu_sum / gpus, ++usage.gpu_ticks;
  }

  Usage usage_now() const {
    std::lock_guard<std::mutex> lock(usage_mutex);
    return usage;
  }

  std::vector<std::string> trace_columns() const {
    std::vector<std::string> columns = {"time_s", "unix_time_s"};
    for (const auto& source : sources) {
      if (source->kind != DeviceKind::gpu) continue;
      columns.push_back(source->id + "_power_w");
      columns.push_back(source->id + "_energy_j");
      for (const auto& extra : source->extra_columns()) columns.push_back(source->id + "_" + extra);
    }
    for (const char* column : {"cpu_power_w", "cpu_energy_j", "cpu_util_pct", "ram_power_w",
                               "ram_energy_j", "ram_used_gib"})
      columns.push_back(column);
    return columns;
  }

  // One sampler tick: read every meter, publish, append a trace row. Sampler thread (or start/stop
  // while the sampler is not running).
  void tick_all(bool read_counters = false) {
    const double t_s = now_s();
    const Tick tick = make_tick(t_s);
    auto warn_fn = [this](const std::string& text) { warn(text); };
    for (auto& source : sources) source->sample(tick, warn_fn, read_counters);
    samples.fetch_add(1, std::memory_order_relaxed);
    add_usage(tick);
    if (trace == nullptr) return;
    std::string row;
    auto add = [&row](double value) {
      row += ',';
      if (std::isfinite(value)) {
        char text[48];
        std::snprintf(text, sizeof(text), "%.3f", value);
        row += text;
      }
    };
    char head[64];
    const double unix_s = std::chrono::duration<double>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    std::snprintf(head, sizeof(head), "%.4f,%.3f", t_s, unix_s);
    row = head;
    double power[3] = {0, 0, 0}, energy[3] = {0, 0, 0};
    bool any[3] = {false, false, false};
    for (const auto& source : sources) {
      const detail::Snapshot snapshot = source->snapshot();
      const int k = static_cast<int>(source->kind);
      if (source->kind == DeviceKind::gpu) {
        add(snapshot.mode == Mode::lost ? detail::kNaN : snapshot.power_w);
        add(snapshot.cumulative_j);
        for (double value : source->extras()) add(value);
        continue;
      }
      power[k] += snapshot.power_w;
      energy[k] += snapshot.cumulative_j;
      any[k] = true;
    }
    const int cpu = static_cast<int>(DeviceKind::cpu), ram = static_cast<int>(DeviceKind::ram);
    add(any[cpu] ? power[cpu] : detail::kNaN);
    add(any[cpu] ? energy[cpu] : detail::kNaN);
    add(tick.cpu_utilization * 100.0);
    add(any[ram] ? power[ram] : detail::kNaN);
    add(any[ram] ? energy[ram] : detail::kNaN);
    add(tick.ram_used_gib);
    row += '\n';
    std::fwrite(row.data(), 1, row.size(), trace);
    // Flush about once a second so a crash loses little, without a syscall every tick.
    if (samples.load(std::memory_order_relaxed) % std::max(1, 1000 / options.interval_ms) == 0)
      std::fflush(trace);
  }

  void sampler_loop() {
    // Signals are the application's business: never let one land on (and be lost in) this thread.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    const auto interval = std::chrono::milliseconds(options.interval_ms);
    auto next = std::chrono::steady_clock::now() + interval;
    std::unique_lock<std::mutex> lock(sampler_mutex);
    for (;;) {
      if (sampler_wake.wait_until(lock, next, [this] { return stop_requested; })) return;
      lock.unlock();
      tick_all();
      timespec cpu{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
      sampler_cpu_ns.store(int64_t(cpu.tv_sec) * 1000000000 + cpu.tv_nsec, std::memory_order_relaxed);
      lock.lock();
      next += interval;
      const auto now = std::chrono::steady_clock::now();
      if (next <= now) next = now + interval;  // fell behind (suspended?): skip, don't burst
    }
  }

  std::vector<double> read_powers() const {
    std::vector<double> watts(sources.size(), detail::kNaN);
    for (size_t i = 0; i < sources.size(); ++i) {
      double w = 0;
      if (sources[i]->read_power_now(&w)) watts[i] = w;
    }
    return watts;
  }

  std::vector<double> read_all(double t_s, std::vector<Mode>* modes) const {
    std::vector<double> joules(sources.size());
    modes->resize(sources.size());
    for (size_t i = 0; i < sources.size(); ++i) {
      (*modes)[i] = sources[i]->snapshot().mode;
      joules[i] = sources[i]->joules_at(t_s);
    }
    return joules;
  }
};

// ---- EnergyMonitor ---------------------------------------------------------------------------

EnergyMonitor::EnergyMonitor(EnergyOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  if (options.interval_ms < 1 || options.interval_ms > 3600 * 1000)
    fail("sampling interval must be 1..3600000 ms, got ", options.interval_ms);
  if (options.counter_period_ms < 1)
    fail("energy-counter period must be at least 1 ms, got ", options.counter_period_ms);
  if (!(options.idle_baseline_s >= 0) || options.idle_baseline_s > 3600)
    fail("idle baseline must be 0..3600 s, got ", options.idle_baseline_s);
  m.options = std::move(options);
  m.carbon = resolve_carbon_factors(m.options.country, m.options.intensity_g_per_kwh,
                                    m.options.pue);
  m.host = probe_host(m.options.proc_root);
  detail::read_cpu_jiffies(m.options.proc_root, &m.previous_busy, &m.previous_total);
  m.setup_gpus();
  m.setup_cpu_and_ram();
}

EnergyMonitor::~EnergyMonitor() {
  try {
    stop();
  } catch (...) {
    // A destructor must not throw; stop() only fails on trace I/O, already reported.
  }
}

void EnergyMonitor::start() {
  Impl& m = *impl_;
  if (m.started) return;
  if (!m.options.trace_path.empty()) {
    m.trace = std::fopen(m.options.trace_path.c_str(), "w");
    if (m.trace == nullptr)
      fail("cannot write the power trace ", m.options.trace_path, ": ", std::strerror(errno));
    const auto columns = m.trace_columns();
    std::string header;
    for (const auto& column : columns) header += (header.empty() ? "" : ",") + column;
    header += '\n';
    std::fwrite(header.data(), 1, header.size(), m.trace);
  }
  m.tick_all();  // the starting point of every integral and counter delta
  // How often each GPU's energy counter changes, all GPUs at once (each takes a few steps).
  {
    std::vector<std::thread> probes;
    for (auto& source : m.sources)
      if (source->kind == DeviceKind::gpu && source->snapshot().mode == Mode::counter)
        probes.emplace_back([&source, &m] { source->probe_counter_period(m.options.counter_probe_limit_s); });
    for (auto& probe : probes) probe.join();
  }
  m.started = true;
  m.sampler = std::thread([&m] { m.sampler_loop(); });
  if (m.options.idle_baseline_s > 0) {
    std::vector<Mode> modes;
    const double t_begin = m.now_s();
    const auto begin = m.read_all(t_begin, &modes);
    std::this_thread::sleep_for(std::chrono::duration<double>(m.options.idle_baseline_s));
    const double t_end = m.now_s();
    const auto end = m.read_all(t_end, &modes);
    for (size_t i = 0; i < m.sources.size(); ++i)
      m.baseline_w[static_cast<int>(m.sources[i]->kind)] += (end[i] - begin[i]) / (t_end - t_begin);
    m.has_baseline = true;
  }
}

void EnergyMonitor::stop() {
  Impl& m = *impl_;
  if (!m.started || m.stopped) return;
  {
    std::lock_guard<std::mutex> lock(m.sampler_mutex);
    m.stop_requested = true;
  }
  m.sampler_wake.notify_all();
  if (m.sampler.joinable()) m.sampler.join();
  m.tick_all(/*read_counters=*/true);  // the trace ends on exact counter readings
  m.stopped = true;
  if (m.trace != nullptr) {
    const bool ok = std::fflush(m.trace) == 0;
    std::fclose(m.trace);
    m.trace = nullptr;
    if (!ok) fail("writing the power trace ", m.options.trace_path, " failed");
  }
}

void EnergyMonitor::begin_window(const std::string& name) {
  Impl& m = *impl_;
  if (!m.started) fail("energy window '", name, "': begin_window() before the monitor's start()");
  if (m.options.synchronize) m.options.synchronize();
  Impl::WindowStart start;
  start.t_s = m.now_s();
  start.joules = m.read_all(start.t_s, &start.modes);
  start.watts = m.read_powers();
  start.usage = m.usage_now();
  std::lock_guard<std::mutex> lock(m.windows_mutex);
  if (!m.windows.emplace(name, std::move(start)).second)
    fail("energy window '", name, "' is already open (end it before beginning it again)");
}

bool EnergyMonitor::window_open(const std::string& name) const {
  std::lock_guard<std::mutex> lock(impl_->windows_mutex);
  return impl_->windows.count(name) != 0;
}

WindowResult EnergyMonitor::end_window(const std::string& name) { return measure_window(name, /*close=*/true); }

WindowResult EnergyMonitor::window_so_far(const std::string& name) { return measure_window(name, /*close=*/false); }

WindowResult EnergyMonitor::measure_window(const std::string& name, bool close) {
  Impl& m = *impl_;
  if (m.options.synchronize) m.options.synchronize();
  const double t_end = m.now_s();  // read the meters first: the bookkeeping below is not measured
  std::vector<Mode> end_modes;
  const std::vector<double> end_joules = m.read_all(t_end, &end_modes);
  const std::vector<double> end_watts = m.read_powers();
  Impl::WindowStart start;
  {
    std::lock_guard<std::mutex> lock(m.windows_mutex);
    auto it = m.windows.find(name);
    if (it == m.windows.end()) {
      std::string open;
      for (const auto& [open_name, unused] : m.windows) open += (open.empty() ? "" : ", ") + open_name;
      fail("energy window '", name, "' was never begun (open windows: ",
           open.empty() ? "none" : open, ")");
    }
    if (close) {
      start = std::move(it->second);
      m.windows.erase(it);
    } else {
      start = it->second;
    }
  }
  WindowResult result;
  result.name = name;
  result.duration_s = t_end - start.t_s;
  {
    const Impl::Usage end = m.usage_now();
    auto mean = [](double sum, int64_t ticks) { return ticks > 0 ? sum / double(ticks) : std::nan(""); };
    result.cpu_utilization_percent = mean(end.cpu_percent - start.usage.cpu_percent, end.cpu_ticks - start.usage.cpu_ticks);
    result.gpu_utilization_percent = mean(end.gpu_percent - start.usage.gpu_percent, end.gpu_ticks - start.usage.gpu_ticks);
    result.ram_used_gib = mean(end.ram_gib - start.usage.ram_gib, end.ram_ticks - start.usage.ram_ticks);
    if (m.host.ram_total_gib > 0) result.ram_utilization_percent = 100 * result.ram_used_gib / m.host.ram_total_gib;
  }
  const double duration = result.duration_s > 0 ? result.duration_s : 0;
  for (size_t i = 0; i < m.sources.size(); ++i) {
    const Source& source = *m.sources[i];
    SourceEnergy energy;
    energy.source = source.id;
    energy.kind = source.kind;
    energy.device_name = source.device_name;
    energy.joules = std::max(0.0, end_joules[i] - start.joules[i]);
    energy.avg_watts = duration > 0 ? energy.joules / duration : 0;
    energy.measured = true;
    for (auto mode = static_cast<uint64_t>(start.modes[i]);
         mode <= static_cast<uint64_t>(end_modes[i]); ++mode) {
      if (static_cast<Mode>(mode) == Mode::integrate && mode != static_cast<uint64_t>(start.modes[i]) &&
          !source.integrated())
        continue;  // went from its counter straight to lost: nothing was integrated
      if (static_cast<Mode>(mode) != Mode::lost && !source.measured(static_cast<Mode>(mode)))
        energy.measured = false;
      if (!energy.provenance.empty()) energy.provenance += "; then ";
      energy.provenance += source.describe(static_cast<Mode>(mode));
    }
    const double step = source.counter_update_period_s();
    if (step > 0 && duration < kShortWindowSteps * step && start.modes[i] == Mode::counter &&
        end_modes[i] == Mode::counter && std::isfinite(start.watts[i]) && std::isfinite(end_watts[i])) {
      energy.joules = 0.5 * (start.watts[i] + end_watts[i]) * duration;
      energy.measured = false;
      energy.provenance = "estimated: short window (" + format_milliseconds(duration) + " < " +
                          format_watts(kShortWindowSteps) + " x the energy counter's " +
                          format_milliseconds(step) + " step): power at both edges x duration";
    }
    const double limit = source.power_limit_w();
    if (std::isfinite(limit) && energy.joules > limit * duration) {
      const std::string note =
          source.id + ": " + format_watts(energy.joules / std::max(duration, 1e-12)) + " W average over " +
          format_milliseconds(duration) + " exceeds the " + format_watts(limit) +
          " W power limit (not physical): capped at the limit";
      energy.joules = limit * duration;
      energy.measured = false;
      energy.provenance += "; capped at the " + format_watts(limit) + " W power limit";
      result.notes.push_back(note);
    }
    energy.avg_watts = duration > 0 ? energy.joules / duration : 0;
    switch (source.kind) {
      case DeviceKind::gpu: result.gpu_joules += energy.joules; break;
      case DeviceKind::cpu: result.cpu_joules += energy.joules; break;
      case DeviceKind::ram: result.ram_joules += energy.joules; break;
    }
    result.sources.push_back(std::move(energy));
  }
  result.total_joules = result.gpu_joules + result.cpu_joules + result.ram_joules;
  result.kwh = joules_to_kwh(result.total_joules);
  result.carbon = m.carbon;
  result.gco2e = grams_co2e(result.kwh, m.carbon);
  result.avg_watts = duration > 0 ? result.total_joules / duration : 0;
  result.gpu_present = m.host.gpu_count > 0;
  result.gpu_absent_reason = m.gpu_absent_reason;
  if (m.has_baseline) {
    result.has_baseline = true;
    result.baseline_gpu_w = m.baseline_w[static_cast<int>(DeviceKind::gpu)];
    result.baseline_cpu_w = m.baseline_w[static_cast<int>(DeviceKind::cpu)];
    result.baseline_ram_w = m.baseline_w[static_cast<int>(DeviceKind::ram)];
    result.net_joules = result.total_joules -
                        (result.baseline_gpu_w + result.baseline_cpu_w + result.baseline_ram_w) *
                            duration;
  }
  {
    std::lock_guard<std::mutex> lock(m.warnings_mutex);
    for (const auto& warning : m.warnings)
      if (warning.t_s >= start.t_s && warning.t_s <= t_end) result.notes.push_back(warning.text);
  }
  return result;
}

void EnergyMonitor::append_emissions_csv(const std::string& path, const WindowResult& result,
                                         const RunInfo& run) const {
  const Impl& m = *impl_;
  const HostInfo& host = run.host ? *run.host : m.host;
  const double duration = result.duration_s;
  const double kg = result.gco2e / 1000.0;
  auto per_second = [duration](double value) { return duration > 0 ? value / duration : 0.0; };
  const bool iso3 = m.carbon.region_code.size() == 3 &&
                    std::all_of(m.carbon.region_code.begin(), m.carbon.region_code.end(),
                                [](char c) { return c >= 'A' && c <= 'Z'; });
  EmissionsRow row = {
      {"timestamp", utc_timestamp_now()},
      {"project_name", run.project_name},
      {"run_id", run.run_id.empty() ? random_uuid() : run.run_id},
      {"duration", format_number(duration)},
      {"emissions", format_number(kg)},
      {"emissions_rate", format_number(per_second(kg))},
      {"cpu_power", format_number(per_second(result.cpu_joules))},
      {"gpu_power", format_number(per_second(result.gpu_joules))},
      {"ram_power", format_number(per_second(result.ram_joules))},
      {"cpu_energy", format_number(joules_to_kwh(result.cpu_joules))},
      {"gpu_energy", format_number(joules_to_kwh(result.gpu_joules))},
      {"ram_energy", format_number(joules_to_kwh(result.ram_joules))},
      {"energy_consumed", format_number(result.kwh)},
      {"country_name", m.carbon.region_name},
      {"country_iso_code", iso3 ? m.carbon.region_code : ""},
      {"os", host.os},
      {"cpu_count", std::to_string(host.cpu_count)},
      {"cpu_model", host.cpu_model},
      {"gpu_count", std::to_string(host.gpu_count)},
      {"gpu_model", host.gpu_model},
      {"ram_total_size", format_number(host.ram_total_gib)},
      {"tracking_mode", "machine"},
      {"pue", format_number(m.carbon.pue)},
      // CodeCarbon's water: energy x WUE (L/kWh), whose default is 0 (no data for the site).
      {"water_consumed", format_number(result.kwh * kWaterUsageEffectiveness)},
      {"wue", format_number(kWaterUsageEffectiveness)},
      {"on_cloud", "N"},
  };
  auto add_if_known = [&row](const char* column, double value) {
    if (std::isfinite(value)) row[column] = format_number(value);
  };
  add_if_known("cpu_utilization_percent", result.cpu_utilization_percent);
  add_if_known("gpu_utilization_percent", result.gpu_utilization_percent);
  add_if_known("ram_utilization_percent", result.ram_utilization_percent);
  add_if_known("ram_used_gb", result.ram_used_gib);
  energy::append_emissions_csv(path, row);
}

const HostInfo& EnergyMonitor::host() const { return impl_->host; }
const CarbonFactors& EnergyMonitor::carbon() const { return impl_->carbon; }
int64_t EnergyMonitor::samples_taken() const { return impl_->samples.load(); }
double EnergyMonitor::sampler_cpu_seconds() const { return double(impl_->sampler_cpu_ns.load()) * 1e-9; }
bool EnergyMonitor::gpu_present() const { return impl_->host.gpu_count > 0; }
std::string EnergyMonitor::gpu_absent_reason() const { return impl_->gpu_absent_reason; }

std::map<std::string, std::string> EnergyMonitor::gpu_pci_bus_ids() const { return impl_->gpu_bus_ids; }

std::map<std::string, double> EnergyMonitor::counter_update_periods() const {
  std::map<std::string, double> periods;
  for (const auto& source : impl_->sources)
    if (source->counter_update_period_s() > 0) periods[source->id] = source->counter_update_period_s();
  return periods;
}

std::vector<std::string> EnergyMonitor::warnings() const {
  std::lock_guard<std::mutex> lock(impl_->warnings_mutex);
  std::vector<std::string> texts;
  for (const auto& warning : impl_->warnings) texts.push_back(warning.text);
  return texts;
}

// ---- JSON ------------------------------------------------------------------------------------

nlohmann::json to_json(const WindowResult& result, int64_t samples) {
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& source : result.sources) {
    sources.push_back({{"source", source.source},
                       {"device", device_kind_name(source.kind)},
                       {"name", source.device_name},
                       {"energy_j", source.joules},
                       {"avg_w", source.avg_watts},
                       {"measured", source.measured},
                       {"provenance", source.provenance}});
  }
  nlohmann::json json = {
      {"name", result.name},
      {"duration_s", result.duration_s},
      {"energy_j", result.total_joules},
      {"gpu_j", result.gpu_present ? nlohmann::json(result.gpu_joules) : nlohmann::json(nullptr)},
      {"cpu_j", result.cpu_joules},
      {"ram_j", result.ram_joules},
      {"kwh", result.kwh},
      {"gco2e", result.gco2e},
      {"avg_w", result.avg_watts},
      {"gpu_present", result.gpu_present},
      {"sources", sources},
      {"carbon",
       {{"intensity_g_per_kwh", result.carbon.intensity_g_per_kwh},
        {"pue", result.carbon.pue},
        {"region", result.carbon.region_code},
        {"region_name", result.carbon.region_name},
        {"year", result.carbon.year},
        {"provenance", result.carbon.provenance}}},
      {"notes", result.notes},
  };
  if (!result.gpu_present) json["gpu_absent_reason"] = result.gpu_absent_reason;
  if (samples > 0) {
    json["samples"] = samples;
    json["j_per_sample"] = result.total_joules / static_cast<double>(samples);
  }
  if (result.has_baseline) {
    json["baseline"] = {{"gpu_w", result.baseline_gpu_w},
                        {"cpu_w", result.baseline_cpu_w},
                        {"ram_w", result.baseline_ram_w},
                        {"net_energy_j", result.net_joules}};
  } else {
    json["baseline"] = nullptr;
  }
  return json;
}

}  // namespace ww::energy
