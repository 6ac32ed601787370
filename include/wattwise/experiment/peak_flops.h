#pragma once
// The dense matmul peak of a device, for MFU (model FLOPs utilisation): NVIDIA's datasheet figures
// of the GPUs wattwise runs on, by the name the driver reports and the training precision. Other
// devices (CPUs among them) have none here: give the rate (train.peak_tflops, bench --peak-tflops).
#include <optional>
#include <string>

namespace ww::experiment {

struct PeakRate {
  double tflops = 0;   // dense, one device
  std::string source;  // where the figure comes from
};

// `precision` as train.precision: bf16 and fp16 (tensor cores), tf32, fp32 (CUDA cores: cuBLAS
// without TF32, what wattwise's fp32 runs).
std::optional<PeakRate> known_peak_tflops(const std::string& device_name, const std::string& precision);

}  // namespace ww::experiment
