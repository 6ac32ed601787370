// Quantized linear layers (ops/quantized.h) on the CPU: rounding rules, error bounds of the
// quantized GEMMs against f32, exact int32 accumulation, calibration; and every device against the
// CPU reference. Device tolerances (relative Frobenius error against the CPU reference, which is
// itself the CPU parameter's bits):
// - int8-weight, f32 activations: 1e-5 (both compute fp32 GEMMs of the same dequantised weight);
// - int8 (W8A8), f32: 1e-6 (identical int8 inputs and int32 sums; only the epilogue's rounding);
// - fp8, f32: 1e-3 (identical e4m3 operands; cuBLASLt's FP8 accumulation order and precision differ
//   from sgemm's, still 30× below the quantization error itself, ~3.7e-2);
// - f16 activations: 1e-2 (the output is rounded to f16).
// Whole quantized models: tests/test_quantized.cpp and tests/test_cuda_quantized.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#ifdef WW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#include "kernels/quantized.h"
#include "ops/op_test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/linear.h"
#include "wattwise/ops/quantized.h"

namespace ww {
namespace {

using ops::QuantMethod;
using testing::expect_error;

std::vector<float> gaussian(size_t n, float stddev, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal() * stddev;
  return v;
}

double relative_frobenius(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += double(got[i] - want[i]) * double(got[i] - want[i]);
    den += double(want[i]) * double(want[i]);
  }
  return std::sqrt(num / den);
}

Tensor workspace_for(const ops::QuantizedLinear& q, int64_t N) {
  return Tensor::empty({int64_t(ops::quantized_linear_workspace_bytes(q, N, DType::F32, Device::cpu()))}, DType::U8);
}

std::vector<float> quantized_forward(const ops::QuantizedLinear& q, const Tensor& x, const Tensor& bias) {
  const int64_t N = x.size(0);
  Tensor out = Tensor::empty({N, q.out_features()}, DType::F32);
  ops::quantized_linear_forward(out, x, q, bias, workspace_for(q, N));
  return out.to_float_vector();
}

// Every finite E4M3 value, by brute force from the format's definition (bias 7, 3 mantissa bits).
std::vector<float> e4m3_grid() {
  std::vector<float> grid;
  for (int e = 0; e < 16; ++e)
    for (int m = 0; m < 8; ++m) {
      if (e == 15 && m == 7) continue;  // NaN
      grid.push_back(e == 0 ? std::ldexp(float(m) / 8.0f, -6) : std::ldexp(1.0f + float(m) / 8.0f, e - 7));
    }
  return grid;
}

TEST(Fp8, EncodesKnownValuesAndRoundsToNearestEven) {
  EXPECT_EQ(ops::float_to_fp8_e4m3(0.0f), 0x00);
  EXPECT_EQ(ops::float_to_fp8_e4m3(1.0f), 0x38);
  EXPECT_EQ(ops::float_to_fp8_e4m3(-2.0f), 0xC0);
  EXPECT_EQ(ops::float_to_fp8_e4m3(448.0f), 0x7E);
  EXPECT_EQ(ops::float_to_fp8_e4m3(1e6f), 0x7E);  // saturates
  EXPECT_EQ(ops::float_to_fp8_e4m3(-1e6f), 0xFE);
  EXPECT_EQ(ops::float_to_fp8_e4m3(std::ldexp(1.0f, -9)), 0x01);  // smallest subnormal
  EXPECT_EQ(ops::float_to_fp8_e4m3(std::ldexp(1.0f, -10)), 0x00);  // tie → even (0)
  EXPECT_EQ(ops::float_to_fp8_e4m3(std::ldexp(3.0f, -10)), 0x02);  // tie → even (2 · 2^-9)
  EXPECT_EQ(ops::float_to_fp8_e4m3(1.0625f), 0x38);                // tie between 1 and 1.125 → 1
  EXPECT_EQ(ops::float_to_fp8_e4m3(1.1875f), 0x3A);                // tie between 1.125 and 1.25 → 1.25
  EXPECT_EQ(ops::float_to_fp8_e4m3(std::numeric_limits<float>::quiet_NaN()) & 0x7F, 0x7F);
  EXPECT_TRUE(std::isnan(ops::fp8_e4m3_to_float(0x7F)));
  // Every byte but NaN decodes to a grid value and encodes back to itself.
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7F) == 0x7F) continue;
    const float v = ops::fp8_e4m3_to_float(uint8_t(b));
    EXPECT_EQ(ops::float_to_fp8_e4m3(v), b == 0x80 ? 0x80 : b) << "byte " << b;
  }
  // Random values round to the nearest grid value (ties are measure-zero here).
  const std::vector<float> grid = e4m3_grid();
  Rng rng(3);
  for (int i = 0; i < 20000; ++i) {
    const float x = std::ldexp(rng.uniform(), int(rng.uniform() * 20) - 11) * (i % 2 ? 1 : -1);
    float best = grid[0];
    for (float g : grid)
      if (std::fabs(g - std::fabs(x)) < std::fabs(best - std::fabs(x))) best = g;
    ASSERT_EQ(std::fabs(ops::fp8_e4m3_to_float(ops::float_to_fp8_e4m3(x))), best) << "x = " << x;
  }
}

TEST(Int8, PerChannelRoundTripIsWithinHalfAStep) {
  const int64_t OC = 24, IC = 40;
  std::vector<float> w = gaussian(size_t(OC * IC), 0.05f, 1);
  for (int64_t i = 0; i < IC; ++i) w[size_t(5 * IC + i)] = 0.0f;  // an all-zero channel
  for (int64_t i = 0; i < IC; ++i) w[size_t(7 * IC + i)] *= 100.0f;  // a channel 100× larger
  ops::QuantizedLinear q = ops::quantize_linear(Tensor::from_vector(w, {OC, IC}), QuantMethod::Int8Weight);
  ASSERT_EQ(q.weight.dtype(), DType::I8);
  ASSERT_EQ(q.weight_scale.numel(), OC);
  std::vector<float> back = ops::dequantized_weight(q).to_float_vector();
  const float* scales = q.weight_scale.data<float>();
  for (int64_t o = 0; o < OC; ++o) {
    float amax = 0;
    for (int64_t i = 0; i < IC; ++i) amax = std::max(amax, std::fabs(w[size_t(o * IC + i)]));
    EXPECT_FLOAT_EQ(scales[o], o == 5 ? 1.0f : amax / 127.0f) << "channel " << o;
    for (int64_t i = 0; i < IC; ++i) {
      const size_t k = size_t(o * IC + i);
      EXPECT_LE(std::fabs(back[k] - w[k]), scales[o] / 2 * (1 + 1e-6f)) << "channel " << o << " input " << i;
      EXPECT_GE(q.weight.data<int8_t>()[k], -127);
    }
  }
}

TEST(Calibration, ObserverKeepsTheLargestMagnitudeAndScalesFollow) {
  ops::AbsMaxObserver observer(Device::cpu());
  observer.observe(Tensor::from_vector(std::vector<float>{0.5f, -1.5f, 1.0f}, {3}));
  observer.observe(Tensor::from_vector(std::vector<float>{-6.35f, 2.0f}, {2}));
  observer.observe(Tensor::from_vector(std::vector<float>{3.0f}, {1}));
  EXPECT_FLOAT_EQ(observer.absmax(), 6.35f);
  EXPECT_EQ(observer.tensors_observed(), 3);
  const Tensor w = Tensor::from_vector(gaussian(64, 1.0f, 2), {8, 8});
  EXPECT_FLOAT_EQ(ops::quantize_linear(w, QuantMethod::Int8, observer.absmax()).input_scale_value, 6.35f / 127);
  EXPECT_FLOAT_EQ(ops::quantize_linear(w, QuantMethod::Fp8, observer.absmax()).input_scale_value, 6.35f / 448);
  EXPECT_FLOAT_EQ(ops::quantize_linear(w, QuantMethod::Int8, 0.0f).input_scale_value, 1.0f);  // all-zero input
  observer.observe(Tensor::from_vector(std::vector<float>{std::nanf("")}, {1}));
  EXPECT_TRUE(std::isnan(observer.absmax()));
  expect_error([&] { ops::quantize_linear(w, QuantMethod::Int8, observer.absmax()); }, {"non-finite"});
}

TEST(Int8, GemmAccumulatesExactlyInInt32) {
  // Sums up to 127·127·4096 ≈ 6.6e7 > 2^24: fp32 accumulation would round them, int32 does not.
  const int64_t N = 3, IC = 4096, OC = 5;
  std::vector<int8_t> a(static_cast<size_t>(N * IC)), b(static_cast<size_t>(OC * IC));
  Rng rng(9);
  for (auto& v : a) v = int8_t(int(rng.uniform() * 255) - 127);
  for (auto& v : b) v = int8_t(int(rng.uniform() * 255) - 127);
  for (int64_t i = 0; i < IC; ++i) a[size_t(i)] = 127, b[size_t(i)] = 127;  // one all-maximal dot product
  std::vector<int32_t> acc(static_cast<size_t>(N * OC));
  kernels::cpu::int8_gemm_int32(acc.data(), a.data(), b.data(), N, IC, OC);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      int64_t want = 0;
      for (int64_t i = 0; i < IC; ++i) want += int64_t(a[size_t(n * IC + i)]) * b[size_t(o * IC + i)];
      EXPECT_EQ(acc[size_t(n * OC + o)], want) << n << "," << o;
    }
  EXPECT_EQ(acc[0], 127 * 127 * 4096);
}

TEST(Int8, W8A8OnIntegerDataIsExact) {
  // Integer weights whose rows reach ±127 and integer inputs reaching ±127 have scale 1 exactly:
  // the layer's output is the exact integer product plus the bias.
  const int64_t N = 4, IC = 96, OC = 6;
  Rng rng(4);
  std::vector<float> w(static_cast<size_t>(OC * IC)), x(static_cast<size_t>(N * IC)), bias(static_cast<size_t>(OC));
  for (auto& v : w) v = float(int(rng.uniform() * 255) - 127);
  for (auto& v : x) v = float(int(rng.uniform() * 255) - 127);
  for (int64_t o = 0; o < OC; ++o) w[size_t(o * IC)] = 127, bias[size_t(o)] = float(o) - 2.5f;
  x[0] = -127;
  ops::QuantizedLinear q = ops::quantize_linear(Tensor::from_vector(w, {OC, IC}), QuantMethod::Int8, 127.0f);
  std::vector<float> out = quantized_forward(q, Tensor::from_vector(x, {N, IC}), Tensor::from_vector(bias, {OC}));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      int64_t sum = 0;
      for (int64_t i = 0; i < IC; ++i) sum += int64_t(x[size_t(n * IC + i)]) * int64_t(w[size_t(o * IC + i)]);
      EXPECT_EQ(out[size_t(n * OC + o)], float(sum) + bias[size_t(o)]) << n << "," << o;
    }
}

// The three methods against the f32 GEMM on Gaussian data (inputs N(0,1), weights N(0,0.05)),
// inputs calibrated by max-abs on the same data. Bounds are about 2× the measured errors
// (docs/QUANTIZATION.md lists them).
TEST(QuantizedGemm, ErrorAgainstF32IsWithinTheStatedBounds) {
  const int64_t N = 96, IC = 256, OC = 192;
  const std::vector<float> xv = gaussian(size_t(N * IC), 1.0f, 11), wv = gaussian(size_t(OC * IC), 0.05f, 12),
                           bv = gaussian(size_t(OC), 0.1f, 13);
  const Tensor x = Tensor::from_vector(xv, {N, IC}), w = Tensor::from_vector(wv, {OC, IC}),
               bias = Tensor::from_vector(bv, {OC});
  Tensor ref = Tensor::empty({N, OC}, DType::F32);
  ops::linear_forward(ref, x, w, bias);
  const std::vector<float> want = ref.to_float_vector();
  float amax = 0;
  for (float v : xv) amax = std::max(amax, std::fabs(v));
  struct Case {
    QuantMethod method;
    double bound;
  };
  for (const Case& c : {Case{QuantMethod::Int8Weight, 1e-2}, Case{QuantMethod::Int8, 3e-2}, Case{QuantMethod::Fp8, 6e-2}}) {
    ops::QuantizedLinear q = ops::quantize_linear(w, c.method, amax);
    const double error = relative_frobenius(quantized_forward(q, x, bias), want);
    std::printf("%-12s relative Frobenius error vs f32: %.3e (bound %.0e)\n", ops::quant_method_name(c.method), error,
                c.bound);
    EXPECT_LT(error, c.bound) << ops::quant_method_name(c.method);
    EXPECT_GT(error, 1e-5) << ops::quant_method_name(c.method) << ": suspiciously exact (not quantized?)";
  }
}

TEST(QuantizedGemm, Fp8EqualsTheF32GemmOfRoundedOperands) {
  const int64_t N = 10, IC = 48, OC = 32;
  const std::vector<float> xv = gaussian(size_t(N * IC), 2.0f, 21), wv = gaussian(size_t(OC * IC), 0.1f, 22);
  const Tensor x = Tensor::from_vector(xv, {N, IC}), w = Tensor::from_vector(wv, {OC, IC});
  const float input_absmax = 5.0f;  // below the data's max: larger inputs saturate at 448 · scale
  ops::QuantizedLinear q = ops::quantize_linear(w, QuantMethod::Fp8, input_absmax);
  Tensor x_rounded = Tensor::empty({N, IC}, DType::F32);
  ops::fp8_round(x_rounded, x, q.input_scale_value);
  for (float v : x_rounded.to_float_vector()) EXPECT_LE(std::fabs(v), input_absmax * (1 + 1e-6f));
  Tensor ref = Tensor::empty({N, OC}, DType::F32);
  ops::linear_forward(ref, x_rounded, ops::dequantized_weight(q), Tensor());
  const std::vector<float> got = quantized_forward(q, x, Tensor()), want = ref.to_float_vector();
  EXPECT_LT(relative_frobenius(got, want), 1e-6);
}

TEST(QuantizedGemm, BadArgumentsAreClearErrors) {
  const Tensor w = Tensor::from_vector(gaussian(64, 1.0f, 2), {8, 8});
  ops::QuantizedLinear q = ops::quantize_linear(w, QuantMethod::Int8, 1.0f);
  const Tensor x = Tensor::from_vector(gaussian(16, 1.0f, 3), {2, 8});
  Tensor out = Tensor::empty({2, 8}, DType::F32);
  expect_error([&] { ops::quantized_linear_forward(out, x, q, Tensor(), Tensor::empty({4}, DType::U8)); },
               {"quantized_linear_forward", "workspace"});
  expect_error([&] { ops::quantized_linear_forward(Tensor::empty({2, 7}, DType::F32), x, q, Tensor(), workspace_for(q, 2)); },
               {"quantized_linear_forward", "'out'"});
  ops::QuantizedLinear no_scale = q;
  no_scale.input_scale = Tensor();
  expect_error([&] { ops::quantized_linear_forward(out, x, no_scale, Tensor(), workspace_for(q, 2)); },
               {"calibrated input scale"});
  expect_error([&] { ops::check_quantization_supported(QuantMethod::Fp8, Device::cpu()); },
               {"fp8 needs compute capability 8.9+"});
}

// ---- every device against the CPU reference --------------------------------------------------

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

class QuantizedTest : public testing::DeviceDtypeTest {};

// 768×768 (BERT-base), 48×64, and 30×22 (not a multiple of 4: the int8 fallback kernel; fp8 needs
// a GPU of compute capability 8.9+ and multiples of 16, and is skipped elsewhere). The weights are
// quantized on the parameter's device from the same f32 values.
TEST_P(QuantizedTest, LayersMatchTheCpuReference) {
  for (const Shape3 s : {Shape3{128, 768, 768}, Shape3{37, 64, 48}, Shape3{9, 30, 22}}) {
    const Tensor w = testing::cpu_tensor(testing::random_normals(s.OC * s.IC, 1, 0.05f), {s.OC, s.IC});
    const Tensor x = testing::cpu_tensor(testing::random_normals(s.N * s.IC, 2), {s.N, s.IC});
    const Tensor bias = testing::cpu_tensor(testing::random_normals(s.OC, 3, 0.1f), {s.OC});
    float amax = 0;
    for (float v : x.to_float_vector()) amax = std::max(amax, std::fabs(v));
    for (QuantMethod method : {QuantMethod::Int8Weight, QuantMethod::Int8, QuantMethod::Fp8}) {
      const std::string what = std::string(ops::quant_method_name(method)) + " N=" + std::to_string(s.N) +
                               " IC=" + std::to_string(s.IC) + " OC=" + std::to_string(s.OC) + " " +
                               std::string(dtype_name(dtype())) + " on " + device().str();
      SCOPED_TRACE(what);
      if (method == QuantMethod::Fp8 && (!on_cuda() || !fp8_supported() || s.IC % 16 || s.OC % 16)) continue;
      const ops::QuantizedLinear on_cpu = ops::quantize_linear(w, method, amax);
      const ops::QuantizedLinear on_device = ops::quantize_linear(w.to(device()), method, amax);
      const std::vector<float> want = run_layer(on_cpu, x, bias, Device::cpu(), DType::F32);
      const std::vector<float> got = run_layer(on_device, x, bias, device(), dtype());
      const double error = relative_frobenius(got, want);
      const double bound = !on_cuda() ? 0.0
                           : is_16bit() ? 1e-2
                           : method == QuantMethod::Int8Weight ? 1e-5
                           : method == QuantMethod::Int8 ? 1e-6
                                                        : 1e-3;
      if (on_cuda()) EXPECT_LT(error, bound) << what;
      else EXPECT_EQ(error, 0.0) << what;
      std::printf("%s: relative error against the CPU reference %.2e\n", what.c_str(), error);
    }
  }
}

WW_INSTANTIATE_DEVICE_DTYPE_TEST(QuantizedTest, (std::vector<testing::DeviceDtype>{{Device::cpu(), DType::F32},
                                                                                  {Device::cuda(0), DType::F32},
                                                                                  {Device::cuda(0), DType::F16}}));

// ---- CUDA ---------------------------------------------------------------------------------------

TEST(QuantizedCuda, ObserverMatchesTheCpu) {
  WW_REQUIRE_CUDA();
  const std::vector<float> values = testing::random_normals(100000, 4);
  ops::AbsMaxObserver cpu(Device::cpu()), gpu(Device::cuda(0));
  const Tensor host = testing::cpu_tensor(values, {100000});
  cpu.observe(host);
  gpu.observe(host.to(Device::cuda(0)));
  EXPECT_EQ(gpu.absmax(), cpu.absmax());
  Tensor half = Tensor::empty({100000}, DType::F16, Device::cuda(0));
  ops::cast(half, host.to(Device::cuda(0)));
  gpu.observe(half);
  EXPECT_NEAR(gpu.absmax(), cpu.absmax(), cpu.absmax() * 1e-3);
  gpu.observe(testing::cpu_tensor({1.0f, std::nanf("")}, {2}).to(Device::cuda(0)));
  EXPECT_TRUE(std::isnan(gpu.absmax()));
}

}  // namespace
}  // namespace ww
