#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace ww {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device&) const = default;
  std::string str() const;  // "cpu", "cuda:0"
};

// "cpu", "cuda", "cuda:1", or "auto" (the first GPU when one is visible, else the CPU); throws
// ww::Error for anything else, and for a GPU index that is not there.
Device parse_device(std::string_view text);

// GPUs this process can use (0 when the build has no CUDA or no driver/GPU is present).
int cuda_device_count();
// The PCI bus id of CUDA device `index` ("0000:3B:00.0"): how NVML finds the GPU a run uses
// whatever CUDA_VISIBLE_DEVICES renumbered. "" when it cannot be told.
std::string cuda_pci_bus_id(int index);

// Bytes that can still be allocated on `device` now: the host's MemAvailable (/proc/meminfo), or
// the GPU's free memory. SIZE_MAX when it cannot be told.
size_t available_memory(Device device);

// Waits until every piece of work queued on `device` has finished (nothing to wait for on the CPU);
// throws ww::Error naming the device when the GPU reports a failure.
void synchronize(Device device);

// Throws ww::Error when GPU `index` cannot run this build's kernels (compute capability below 8.0:
// the build carries sm_90a code and compute_80 PTX), naming the GPU and its capability.
void check_cuda_device_supported(int index);

// Bytes of memory wattwise's tensors, arenas and parameters hold on a device now, and the most
// they held since the last reset_peak_memory (library workspaces such as cuBLAS's not included).
struct MemoryStats {
  size_t current = 0, peak = 0;
};
MemoryStats memory_stats(Device device);
void reset_peak_memory(Device device);

}  // namespace ww
