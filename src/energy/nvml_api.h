#pragma once
// NVML, loaded at run time with dlopen so wattwise runs (without GPU figures) where the driver is
// absent. We declare the few types and entry points we use ourselves instead of including nvml.h:
// the library is never a build or link dependency. Values follow NVML's public ABI.
#include <memory>
#include <string>

namespace ww::energy::detail::nvml {

using Return = int;                  // nvmlReturn_t
using Device = struct nvmlDevice_st*;  // nvmlDevice_t

constexpr Return kSuccess = 0;
constexpr Return kErrorNotSupported = 3;
constexpr Return kErrorGpuIsLost = 15;
constexpr unsigned kClockSm = 1;          // nvmlClockType_t NVML_CLOCK_SM
constexpr unsigned kTemperatureGpu = 0;   // nvmlTemperatureSensors_t NVML_TEMPERATURE_GPU

struct Utilization {  // nvmlUtilization_t
  unsigned gpu;
  unsigned memory;
};
struct Memory {  // nvmlMemory_t (v1)
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct PciInfo {  // nvmlPciInfo_t (nvmlDeviceGetPciInfo_v3)
  char bus_id_legacy[16];  // "0000:3B:00.0", CUDA's spelling
  unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
  char bus_id[32];  // "00000000:3B:00.0"
};

// The loaded library: function pointers are null when a symbol is missing.
struct Api {
  void* handle = nullptr;
  std::string path;
  Return (*init)() = nullptr;  // nvmlInit_v2
  Return (*shutdown)() = nullptr;
  const char* (*error_string)(Return) = nullptr;
  Return (*device_get_count)(unsigned*) = nullptr;                  // nvmlDeviceGetCount_v2
  Return (*device_get_handle_by_index)(unsigned, Device*) = nullptr;  // ..._v2
  Return (*device_get_name)(Device, char*, unsigned) = nullptr;
  Return (*device_get_total_energy_consumption)(Device, unsigned long long*) = nullptr;  // mJ
  Return (*device_get_power_usage)(Device, unsigned*) = nullptr;                          // mW
  Return (*device_get_utilization_rates)(Device, Utilization*) = nullptr;
  Return (*device_get_memory_info)(Device, Memory*) = nullptr;
  Return (*device_get_clock_info)(Device, unsigned, unsigned*) = nullptr;  // MHz
  Return (*device_get_temperature)(Device, unsigned, unsigned*) = nullptr;  // deg C
  Return (*device_get_enforced_power_limit)(Device, unsigned*) = nullptr;   // mW
  // A GPU by its PCI bus id ("0000:3B:00.0", as CUDA names it) and its NVML index: how a CUDA
  // device (numbered under CUDA_VISIBLE_DEVICES and CUDA's own order) is found among NVML's.
  Return (*device_get_handle_by_pci_bus_id)(const char*, Device*) = nullptr;  // ..._v2
  Return (*device_get_index)(Device, unsigned*) = nullptr;
  Return (*device_get_pci_info)(Device, PciInfo*) = nullptr;  // ..._v3: a metered GPU's bus id

  ~Api();  // nvmlShutdown and dlclose
  std::string describe(Return code) const;  // "GPU is lost (15)"
};

// Loads NVML from `path` ("" = $WW_NVML_LIBRARY, else "libnvidia-ml.so.1") and initializes it.
// Returns null and sets `why_not` when the library is missing, lacks a required symbol, or
// nvmlInit fails.
std::unique_ptr<Api> load(const std::string& path, std::string* why_not);

}  // namespace ww::energy::detail::nvml
