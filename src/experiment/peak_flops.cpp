#include "wattwise/experiment/peak_flops.h"

#include <cstdio>

namespace ww::experiment {

namespace {

struct KnownGpu {
  const char* model;     // what the datasheet calls it
  double fp32, tf32, half;  // dense TFLOPS: FP32, TF32 tensor, BF16/FP16 tensor
};

// NVIDIA datasheets (dense, without sparsity).
constexpr KnownGpu kH100Sxm = {"H100 SXM", 66.9, 494.7, 989.4};
constexpr KnownGpu kH100Pcie = {"H100 PCIe", 51.2, 378.0, 756.0};
constexpr KnownGpu kH200 = {"H200 SXM", 66.9, 494.7, 989.4};
constexpr KnownGpu kA100 = {"A100", 19.5, 156.0, 312.0};

bool contains(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

const KnownGpu* gpu_of(const std::string& name) {
  if (contains(name, "H200")) return &kH200;
  if (contains(name, "H100")) return contains(name, "PCIe") ? &kH100Pcie : &kH100Sxm;  // "H100 80GB HBM3" is the SXM part
  if (contains(name, "A100")) return &kA100;
  return nullptr;
}

}  // namespace

std::optional<PeakRate> known_peak_tflops(const std::string& device_name, const std::string& precision) {
  const KnownGpu* gpu = gpu_of(device_name);
  if (!gpu) return std::nullopt;
  double tflops = 0;
  std::string kind;
  if (precision == "bf16" || precision == "fp16") tflops = gpu->half, kind = "dense BF16/FP16 tensor";
  else if (precision == "tf32") tflops = gpu->tf32, kind = "dense TF32 tensor";
  else if (precision == "fp32") tflops = gpu->fp32, kind = "FP32";
  else return std::nullopt;
  char text[160];
  std::snprintf(text, sizeof text, "NVIDIA %s datasheet: %.1f %s TFLOPS", gpu->model, tflops, kind.c_str());
  return PeakRate{tflops, text};
}

}  // namespace ww::experiment
