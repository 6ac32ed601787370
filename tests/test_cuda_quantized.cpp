// Quantized inference on CUDA against the CPU references (ops/quantized.h): the same quantized
// weights (made on the host for both devices), the same input rounding, int32 sums that must match
// exactly (whole quantized models: tests/models/sequence_classifier_quantize_test.cpp). Tolerances
// (relative Frobenius error, GPU vs CPU):
// - int8-weight, f32 activations: 1e-5 (both compute fp32 GEMMs of the same dequantised weight);
// - int8 (W8A8), f32: 1e-6 (identical int8 inputs and int32 sums; only the epilogue's rounding);
// - fp8, f32: 1e-3 (identical e4m3 operands; cuBLASLt's FP8 accumulation order and precision differ
//   from sgemm's, still 30× below the quantization error itself, ~3.7e-2);
// - f16 activations: 1e-2 (the output is rounded to f16).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cuda_compare.h"
#include "cuda_test_util.h"
#include "test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/quantized.h"
#ifdef WW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

using namespace ww;
using ops::QuantMethod;
using ww::testing::cpu_tensor;
using ww::testing::expect_error;
using ww::testing::random_normals;

namespace {

double relative_frobenius(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += double(got[i] - want[i]) * double(got[i] - want[i]);
    den += double(want[i]) * double(want[i]);
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

bool fp8_supported() {
#ifdef WW_HAVE_CUDA
  int device = 0;
  cudaDeviceProp props{};
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&props, device) != cudaSuccess) return false;
  return props.major * 10 + props.minor >= 89;
#else
  return false;
#endif
}

// The quantized layer's output on `device` for f32 inputs given in `dtype` there.
std::vector<float> run_layer(const ops::QuantizedLinear& q, const Tensor& x_cpu, const Tensor& bias_cpu, Device device,
                             DType dtype) {
  const int64_t N = x_cpu.size(0), OC = q.out_features();
  Tensor x = x_cpu, bias = bias_cpu;
  if (device.is_cuda()) {
    x = Tensor::empty(x_cpu.shape(), dtype, device);
    ops::cast(x, x_cpu.to(device));
    bias = Tensor::empty(bias_cpu.shape(), dtype, device);
    ops::cast(bias, bias_cpu.to(device));
  }
  Tensor out = Tensor::empty({N, OC}, dtype, device);
  Tensor workspace = Tensor::empty({int64_t(ops::quantized_linear_workspace_bytes(q, N, dtype, device))}, DType::U8, device);
  ops::quantized_linear_forward(out, x, q, bias, workspace);
  return out.to_float_vector();
}

struct Shape3 {
  int64_t N, IC, OC;
};

TEST(CudaQuantized, LayersMatchTheCpuReference) {
  WW_REQUIRE_CUDA();
  // 768×768 (BERT-base), 48×64, and 30×22 (not a multiple of 4: the int8 fallback kernel; fp8
  // needs multiples of 16 and is skipped there).
  for (const Shape3 s : {Shape3{128, 768, 768}, Shape3{37, 64, 48}, Shape3{9, 30, 22}}) {
    const Tensor w = cpu_tensor(random_normals(s.OC * s.IC, 1, 0.05f), {s.OC, s.IC});
    const Tensor x = cpu_tensor(random_normals(s.N * s.IC, 2), {s.N, s.IC});
    const Tensor bias = cpu_tensor(random_normals(s.OC, 3, 0.1f), {s.OC});
    float amax = 0;
    for (float v : x.to_float_vector()) amax = std::max(amax, std::fabs(v));
    for (QuantMethod method : {QuantMethod::Int8Weight, QuantMethod::Int8, QuantMethod::Fp8}) {
      const std::string what = std::string(ops::quant_method_name(method)) + " N=" + std::to_string(s.N) +
                               " IC=" + std::to_string(s.IC) + " OC=" + std::to_string(s.OC);
      SCOPED_TRACE(what);
      if (method == QuantMethod::Fp8 && (!fp8_supported() || s.IC % 16 || s.OC % 16)) continue;
      const ops::QuantizedLinear on_cpu = ops::quantize_linear(w, method, amax);
      const ops::QuantizedLinear on_gpu = ops::quantize_linear(w.to(Device::cuda(0)), method, amax);
      const std::vector<float> want = run_layer(on_cpu, x, bias, Device::cpu(), DType::F32);
      const double f32_error = relative_frobenius(run_layer(on_gpu, x, bias, Device::cuda(0), DType::F32), want);
      const double f32_bound = method == QuantMethod::Int8Weight ? 1e-5 : method == QuantMethod::Int8 ? 1e-6 : 1e-3;
      EXPECT_LT(f32_error, f32_bound) << what << " f32";
      const double f16_error = relative_frobenius(run_layer(on_gpu, x, bias, Device::cuda(0), DType::F16), want);
      EXPECT_LT(f16_error, 1e-2) << what << " f16";
      std::printf("%s: GPU vs CPU relative error f32 %.2e, f16 %.2e\n", what.c_str(), f32_error, f16_error);
    }
  }
}

TEST(CudaQuantized, ObserverMatchesTheCpu) {
  WW_REQUIRE_CUDA();
  const std::vector<float> values = random_normals(100000, 4);
  ops::AbsMaxObserver cpu(Device::cpu()), gpu(Device::cuda(0));
  const Tensor host = cpu_tensor(values, {100000});
  cpu.observe(host);
  gpu.observe(host.to(Device::cuda(0)));
  EXPECT_EQ(gpu.absmax(), cpu.absmax());
  Tensor half = Tensor::empty({100000}, DType::F16, Device::cuda(0));
  ops::cast(half, host.to(Device::cuda(0)));
  gpu.observe(half);
  EXPECT_NEAR(gpu.absmax(), cpu.absmax(), cpu.absmax() * 1e-3);
  gpu.observe(cpu_tensor({1.0f, std::nanf("")}, {2}).to(Device::cuda(0)));
  EXPECT_TRUE(std::isnan(gpu.absmax()));
}

}  // namespace
