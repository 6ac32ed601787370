#pragma once
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

}  // namespace ww
