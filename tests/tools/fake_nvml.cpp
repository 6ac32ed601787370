// A stand-in for libnvidia-ml.so.1 with scripted values, so the NVML paths of the energy meters
// (and scripts that use pynvml) can be tested on machines without a GPU. Point WW_NVML_LIBRARY at
// it, or put it on LD_LIBRARY_PATH under the name libnvidia-ml.so.1.
//
// Every GPU draws a constant power; its energy counter is offset + power x CLOCK_MONOTONIC time,
// so two processes reading it agree, like the real counter. Scripted by environment variables,
// read at nvmlInit:
//   WW_FAKE_NVML_INIT_FAIL=1             nvmlInit fails (driver not loaded)
//   WW_FAKE_NVML_GPUS=N                  number of GPUs (default 1)
//   WW_FAKE_NVML_POWER_W=W               power of every GPU (default 250)
//   WW_FAKE_NVML_ENERGY=unsupported      no total-energy counter (NOT_SUPPORTED)
//   WW_FAKE_NVML_ENERGY_FAIL_AFTER_S=T   the energy counter fails T s after nvmlInit
//   WW_FAKE_NVML_LOST_WHEN=PATH          every device call answers GPU_IS_LOST once PATH exists
//                                        (a test decides the moment, whatever the machine's load)
//   WW_FAKE_NVML_ENERGY_OFFSET_MJ=X      counter value at monotonic time 0 (test 2^64 wrap-around)
//   WW_FAKE_NVML_COUNTER_STEP_MS=T       the counter changes every T ms only, like a real one (it
//                                        shows the energy up to the last multiple of T)
//   WW_FAKE_NVML_POWER_LIMIT_W=W         the enforced power limit (default 700)
// GPU i is found by the PCI bus id 0000:1i:00.0 (bus 0x10 + i), as nvmlDeviceGetHandleByPciBusId, and
// nvmlDeviceGetPciInfo_v3 gives that id back.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace {

constexpr int kSuccess = 0, kInvalidArgument = 2, kNotSupported = 3, kNotFound = 6, kDriverNotLoaded = 9,
              kGpuIsLost = 15, kUnknown = 999;

struct FakeDevice {
  int index;
};

FakeDevice g_devices[16];
int g_gpu_count = 1;
double g_power_w = 250;
bool g_energy_supported = true;
double g_energy_fail_after_s = -1;
char g_lost_when[4096] = "";
unsigned long long g_offset_mj = 0;
double g_counter_step_s = 0;
double g_power_limit_w = 700;
double g_init_time_s = 0;

double monotonic_s() {
  timespec now {};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

double env_double(const char* name, double fallback) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0' ? std::strtod(text, nullptr) : fallback;
}

bool lost() { return g_lost_when[0] != '\0' && access(g_lost_when, F_OK) == 0; }

int check(FakeDevice* device) {
  if (device == nullptr) return kInvalidArgument;
  return lost() ? kGpuIsLost : kSuccess;
}

}  // namespace

extern "C" {

int nvmlInit_v2() {
  const char* fail = std::getenv("WW_FAKE_NVML_INIT_FAIL");
  if (fail != nullptr && std::strcmp(fail, "1") == 0) return kDriverNotLoaded;
  g_gpu_count = static_cast<int>(env_double("WW_FAKE_NVML_GPUS", 1));
  if (g_gpu_count < 0) g_gpu_count = 0;
  if (g_gpu_count > 16) g_gpu_count = 16;
  for (int i = 0; i < 16; ++i) g_devices[i].index = i;
  g_power_w = env_double("WW_FAKE_NVML_POWER_W", 250);
  const char* energy = std::getenv("WW_FAKE_NVML_ENERGY");
  g_energy_supported = energy == nullptr || std::strcmp(energy, "unsupported") != 0;
  g_energy_fail_after_s = env_double("WW_FAKE_NVML_ENERGY_FAIL_AFTER_S", -1);
  const char* lost_when = std::getenv("WW_FAKE_NVML_LOST_WHEN");
  std::strncpy(g_lost_when, lost_when != nullptr ? lost_when : "", sizeof(g_lost_when) - 1);
  const char* offset = std::getenv("WW_FAKE_NVML_ENERGY_OFFSET_MJ");
  g_offset_mj = offset != nullptr ? std::strtoull(offset, nullptr, 10) : 0;
  g_counter_step_s = env_double("WW_FAKE_NVML_COUNTER_STEP_MS", 0) / 1000.0;
  g_power_limit_w = env_double("WW_FAKE_NVML_POWER_LIMIT_W", 700);
  g_init_time_s = monotonic_s();
  return kSuccess;
}
int nvmlInit() { return nvmlInit_v2(); }
int nvmlInitWithFlags(unsigned) { return nvmlInit_v2(); }
int nvmlShutdown() { return kSuccess; }

const char* nvmlErrorString(int result) {
  switch (result) {
    case kSuccess: return "Success";
    case kInvalidArgument: return "Invalid Argument";
    case kNotSupported: return "Not Supported";
    case kNotFound: return "Not Found";
    case kDriverNotLoaded: return "Driver Not Loaded";
    case kGpuIsLost: return "GPU is lost";
    default: return "Unknown Error";
  }
}

int nvmlDeviceGetCount_v2(unsigned* count) {
  *count = static_cast<unsigned>(g_gpu_count);
  return kSuccess;
}
int nvmlDeviceGetCount(unsigned* count) { return nvmlDeviceGetCount_v2(count); }

int nvmlDeviceGetHandleByIndex_v2(unsigned index, FakeDevice** device) {
  if (index >= static_cast<unsigned>(g_gpu_count)) return kInvalidArgument;
  *device = &g_devices[index];
  return kSuccess;
}
int nvmlDeviceGetHandleByIndex(unsigned index, FakeDevice** device) {
  return nvmlDeviceGetHandleByIndex_v2(index, device);
}

// GPU i sits at PCI bus 0x10 + i of domain 0 (any of NVML's accepted spellings).
int nvmlDeviceGetHandleByPciBusId_v2(const char* bus_id, FakeDevice** device) {
  if (bus_id == nullptr || device == nullptr) return kInvalidArgument;
  unsigned domain = 0, bus = 0, slot = 0, function = 0;
  if (std::sscanf(bus_id, "%x:%x:%x.%x", &domain, &bus, &slot, &function) != 4) {
    domain = 0;  // bus:device.function
    if (std::sscanf(bus_id, "%x:%x.%x", &bus, &slot, &function) != 3) return kInvalidArgument;
  }
  const int index = int(bus) - 0x10;
  if (domain != 0 || slot != 0 || function != 0 || index < 0 || index >= g_gpu_count) return kNotFound;
  *device = &g_devices[index];
  return kSuccess;
}

int nvmlDeviceGetIndex(FakeDevice* device, unsigned* index) {
  if (device == nullptr || index == nullptr) return kInvalidArgument;
  *index = unsigned(device->index);
  return kSuccess;
}

struct PciInfo {
  char bus_id_legacy[16];
  unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
  char bus_id[32];
};
int nvmlDeviceGetPciInfo_v3(FakeDevice* device, PciInfo* pci) {
  if (int status = check(device)) return status;
  if (pci == nullptr) return kInvalidArgument;
  *pci = PciInfo{};
  pci->bus = unsigned(0x10 + device->index);
  std::snprintf(pci->bus_id_legacy, sizeof pci->bus_id_legacy, "0000:%02X:00.0", pci->bus);
  std::snprintf(pci->bus_id, sizeof pci->bus_id, "00000000:%02X:00.0", pci->bus);
  return kSuccess;
}

int nvmlDeviceGetName(FakeDevice* device, char* name, unsigned length) {
  if (int status = check(device)) return status;
  std::strncpy(name, "Fake NVIDIA GPU", length);
  if (length > 0) name[length - 1] = '\0';
  return kSuccess;
}

int nvmlDeviceGetTotalEnergyConsumption(FakeDevice* device, unsigned long long* millijoules) {
  if (int status = check(device)) return status;
  if (!g_energy_supported) return kNotSupported;
  double now = monotonic_s();
  if (g_energy_fail_after_s >= 0 && now - g_init_time_s >= g_energy_fail_after_s) return kUnknown;
  if (g_counter_step_s > 0) now = static_cast<double>(static_cast<long long>(now / g_counter_step_s)) * g_counter_step_s;
  // Unsigned addition wraps modulo 2^64 like a real 64-bit counter would.
  *millijoules = g_offset_mj + static_cast<unsigned long long>(g_power_w * now * 1000.0);
  return kSuccess;
}

int nvmlDeviceGetPowerUsage(FakeDevice* device, unsigned* milliwatts) {
  if (int status = check(device)) return status;
  *milliwatts = static_cast<unsigned>(g_power_w * 1000.0);
  return kSuccess;
}

struct Utilization { unsigned gpu, memory; };
int nvmlDeviceGetUtilizationRates(FakeDevice* device, Utilization* utilization) {
  if (int status = check(device)) return status;
  utilization->gpu = 97;
  utilization->memory = 40;
  return kSuccess;
}

struct Memory { unsigned long long total, free, used; };
int nvmlDeviceGetMemoryInfo(FakeDevice* device, Memory* memory) {
  if (int status = check(device)) return status;
  memory->total = 80ULL << 30;
  memory->used = 10ULL << 30;
  memory->free = memory->total - memory->used;
  return kSuccess;
}

int nvmlDeviceGetClockInfo(FakeDevice* device, unsigned, unsigned* mhz) {
  if (int status = check(device)) return status;
  *mhz = 1980;
  return kSuccess;
}

int nvmlDeviceGetEnforcedPowerLimit(FakeDevice* device, unsigned* milliwatts) {
  if (int status = check(device)) return status;
  *milliwatts = static_cast<unsigned>(g_power_limit_w * 1000.0);
  return kSuccess;
}

int nvmlDeviceGetTemperature(FakeDevice* device, unsigned, unsigned* celsius) {
  if (int status = check(device)) return status;
  *celsius = 55;
  return kSuccess;
}

}  // extern "C"
