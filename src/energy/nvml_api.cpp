#include "nvml_api.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>

namespace ww::energy::detail::nvml {
namespace {

template <typename Fn>
void bind(void* handle, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
}

}  // namespace

Api::~Api() {
  if (shutdown != nullptr) shutdown();
  if (handle != nullptr) dlclose(handle);
}

std::string Api::describe(Return code) const {
  const char* text = error_string != nullptr ? error_string(code) : nullptr;
  return std::string(text != nullptr ? text : "NVML error") + " (" + std::to_string(code) + ")";
}

std::unique_ptr<Api> load(const std::string& path, std::string* why_not) {
  std::string library = path;
  if (library.empty()) {
    const char* env = std::getenv("WW_NVML_LIBRARY");
    library = env != nullptr && *env != '\0' ? env : "libnvidia-ml.so.1";
  }
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    *why_not = "no NVML: cannot load " + library + (error != nullptr ? std::string(" (") + error + ")" : "");
    return nullptr;
  }
  auto api = std::make_unique<Api>();
  api->handle = handle;
  api->path = library;
  bind(handle, "nvmlInit_v2", api->init);
  bind(handle, "nvmlErrorString", api->error_string);
  bind(handle, "nvmlDeviceGetCount_v2", api->device_get_count);
  bind(handle, "nvmlDeviceGetHandleByIndex_v2", api->device_get_handle_by_index);
  bind(handle, "nvmlDeviceGetName", api->device_get_name);
  bind(handle, "nvmlDeviceGetTotalEnergyConsumption", api->device_get_total_energy_consumption);
  bind(handle, "nvmlDeviceGetPowerUsage", api->device_get_power_usage);
  bind(handle, "nvmlDeviceGetUtilizationRates", api->device_get_utilization_rates);
  bind(handle, "nvmlDeviceGetMemoryInfo", api->device_get_memory_info);
  bind(handle, "nvmlDeviceGetClockInfo", api->device_get_clock_info);
  bind(handle, "nvmlDeviceGetTemperature", api->device_get_temperature);
  bind(handle, "nvmlDeviceGetEnforcedPowerLimit", api->device_get_enforced_power_limit);
  bind(handle, "nvmlDeviceGetHandleByPciBusId_v2", api->device_get_handle_by_pci_bus_id);
  bind(handle, "nvmlDeviceGetIndex", api->device_get_index);
  bind(handle, "nvmlDeviceGetPciInfo_v3", api->device_get_pci_info);
  Return (*shutdown_fn)() = nullptr;
  bind(handle, "nvmlShutdown", shutdown_fn);
  if (api->init == nullptr || shutdown_fn == nullptr || api->device_get_count == nullptr ||
      api->device_get_handle_by_index == nullptr) {
    *why_not = "no NVML: " + library + " lacks nvmlInit_v2/nvmlShutdown/nvmlDeviceGetCount_v2/" +
               "nvmlDeviceGetHandleByIndex_v2";
    return nullptr;  // ~Api closes the handle; shutdown is still null so it is not called
  }
  const Return status = api->init();
  if (status != kSuccess) {
    *why_not = "no NVML: nvmlInit failed: " + api->describe(status);
    return nullptr;
  }
  api->shutdown = shutdown_fn;  // only now, so we shut down exactly what we initialized
  return api;
}

}  // namespace ww::energy::detail::nvml
