#pragma once
// Shared by tests/ops/<op>_test.cpp: random inputs, tensors on either device in any activation
// dtype, comparisons, and the device × dtype parameter of the TEST_P tests.
//
// The parameterised tests run an op on each of {cpu, f32}, {cuda, f32}, {cuda, f16} and {cuda, bf16}
// with the CPU reference (the f32 CPU kernel on the same inputs, rounded to the dtype first) as the
// expected value; a cuda parameter skips with the reason when the build or machine has no GPU.
// Tolerance, per tensor: |got − want| <= rtol·|want| + rtol·max|want| (relative, with an absolute
// floor at rtol of the tensor's scale for entries that cancel), rtol by parameter:
//   cpu f32   0      the same kernel on the same inputs: the same bits (aliasing forms included);
//   cuda f32  1e-5   float arithmetic in another order (parallel reductions, fused multiply-adds, the
//                    GPU's libm): a few units of 2^-24 per operation, summed over the short chains of
//                    these ops, stays well inside 1e-5 of the tensor's scale;
//   16-bit    1e-2   both sides read the same rounded inputs and compute in float; the GPU rounds its
//                    output once to 16 bits (2^-9 relative for bf16, 2^-12 for f16) and multi-kernel
//                    ops round intermediates too: a few bf16 roundings fit 1e-2.
// Parameter gradients and statistics are f32 whatever the activation dtype; their own tolerances
// (DeviceDtypeTest::param_grad_rtol, f32_rtol) say why.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include <omp.h>

#include "cuda_compare.h"
#include "cuda_test_util.h"
#include "test_util.h"
#include "wattwise/core/dtype.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/elementwise.h"

#ifdef WW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace ww::testing {

constexpr double kRtol = 1e-5;           // fp32
constexpr double kRtol16 = 1e-2;         // 16-bit activations
constexpr double kRtolParamGrad = 1e-4;  // f32 parameter gradients summed from 16-bit activations
inline const DType kHalfTypes[] = {DType::F16, DType::BF16};

// ---- random inputs ----------------------------------------------------------------------------

// Normal values (stream 7): the CPU reference tests.
inline std::vector<float> random_values(int64_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed, 7);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = scale * rng.normal();
  return v;
}

inline Tensor random_tensor(const Shape& shape, uint64_t seed, float scale = 1.0f) {
  return Tensor::from_vector(random_values(shape_numel(shape), seed, scale), shape);
}

// shift + scale · normal (stream 11), f32 on the CPU.
inline Tensor random_cpu(const Shape& shape, uint64_t seed, float scale = 1.0f, float shift = 0.0f) {
  Rng rng(seed, 11);
  std::vector<float> v(size_t(shape_numel(shape)));
  for (float& x : v) x = shift + scale * rng.normal();
  return Tensor::from_vector(v, shape);
}

inline std::vector<int32_t> random_ids(int64_t n, int64_t limit, uint64_t seed) {
  Rng rng(seed, 3);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = int32_t(rng.below(uint64_t(limit)));
  return ids;
}

// Ragged padding: row b has a random number of real tokens in [0, T] (row 1 none, when B > 1).
inline std::vector<int32_t> ragged_mask(int64_t B, int64_t T, uint64_t seed) {
  Rng rng(seed, 5);
  std::vector<int32_t> mask(size_t(B * T), 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t length = b == 1 ? 0 : 1 + int64_t(rng.below(uint64_t(T)));
    for (int64_t t = 0; t < length; ++t) mask[size_t(b * T + t)] = 1;
  }
  return mask;
}

inline Tensor ints_cpu(const std::vector<int32_t>& values, const Shape& shape) {
  return Tensor::from_vector(values, shape);
}

struct RowsCols {
  int64_t rows, cols;
};
// Several shapes, none a multiple of anything; the last one is big enough to take the OpenMP path.
inline const std::vector<RowsCols> kShapes = {{1, 1}, {7, 13}, {37, 67}, {3, 768}, {129, 257}};

// ---- tensors on either device -------------------------------------------------------------------

// Tensor::to and copy_from use cudaMemcpy (the legacy stream), the kernels their own non-blocking
// stream: synchronise the device around every transfer.
inline void sync_device() {
#ifdef WW_HAVE_CUDA
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
#endif
}

inline Tensor to_gpu(const Tensor& cpu) {
  sync_device();
  Tensor gpu = cpu.to(Device::cuda(0));
  sync_device();
  return gpu;
}

inline Tensor gpu_ints(const std::vector<int32_t>& values, const Shape& shape) {
  return to_gpu(Tensor::from_vector(values, shape));
}

// A tensor whose every element is NaN (all bits set is NaN in f32, f16 and bf16), so elements a
// kernel fails to write show up.
inline Tensor poisoned(const Shape& shape, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  if (t.nbytes() == 0) return t;
  if (device.is_cpu()) {
    std::memset(t.raw(), 0xFF, t.nbytes());
    return t;
  }
#ifdef WW_HAVE_CUDA
  EXPECT_EQ(cudaMemset(t.raw(), 0xFF, t.nbytes()), cudaSuccess);
#endif
  sync_device();
  return t;
}
inline Tensor poisoned_cpu(const Shape& shape) { return poisoned(shape, DType::F32, Device::cpu()); }
inline Tensor poisoned_gpu(const Shape& shape) { return poisoned(shape, DType::F32, Device::cuda(0)); }
inline Tensor gpu_poisoned(const Shape& shape, DType dtype) { return poisoned(shape, dtype, Device::cuda(0)); }

// An f32 CPU tensor holding `cpu`'s values rounded to `dtype` (nearest even): what a `dtype` tensor
// made from them holds, as the CPU reference's input.
inline Tensor rounded(const Tensor& cpu, DType dtype) {
  if (dtype == DType::F32) return cpu.to(Device::cpu());
  Tensor narrow = Tensor::empty(cpu.shape(), dtype), back = Tensor::empty(cpu.shape(), DType::F32);
  ops::cast(narrow, cpu);
  ops::cast(back, narrow);
  return back;
}
inline Tensor rounded_cpu(const Tensor& cpu, DType dtype) { return rounded(cpu, dtype); }

// A GPU tensor of `dtype` holding `cpu`'s values (16-bit: rounded to nearest even).
inline Tensor gpu_as(const Tensor& cpu, DType dtype) {
  Tensor wide = to_gpu(cpu);
  if (dtype == DType::F32) return wide;
  Tensor narrow = Tensor::empty(cpu.shape(), dtype, Device::cuda(0));
  ops::cast(narrow, wide);
  sync_device();
  return narrow;
}

// A tensor's values as floats, after every queued kernel finished.
inline std::vector<float> read(const Tensor& t) {
  if (t.device().is_cuda()) sync_device();
  return t.to_float_vector();
}
inline std::vector<float> from_gpu(const Tensor& gpu) { return read(gpu); }

inline std::string label(const std::string& op, DType dtype, const Shape& shape) {
  return op + " (" + std::string(dtype_name(dtype)) + ", shape " + shape_str(shape) + ")";
}

// ---- comparisons --------------------------------------------------------------------------------

inline std::vector<double> as_double(const Tensor& t) {
  std::vector<float> f = t.to_float_vector();
  return std::vector<double>(f.begin(), f.end());
}

// |got − want| <= rtol·|want| + rtol·max|want| + atol per element; NaN anywhere fails. Reports the
// first five elements out of tolerance and the count.
inline void expect_close(const Tensor& got_tensor, const Tensor& want_tensor, const std::string& what,
                         double rtol = kRtol, double atol = 0.0) {
  const std::vector<float> got = read(got_tensor), want = read(want_tensor);
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0.0;
  for (float w : want) scale = std::max(scale, double(std::abs(w)));
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rtol * std::abs(double(want[i])) + rtol * scale + atol;
    if (!(std::abs(double(got[i]) - double(want[i])) <= tol) && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i] << " (tolerance " << tol
                    << ")";
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << got.size() << " elements out of tolerance";
}

// The same against a double-precision reference.
inline void expect_close(const Tensor& got_tensor, const std::vector<double>& want, const std::string& what,
                         double rtol = kRtol) {
  std::vector<float> got = got_tensor.to_float_vector();
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0.0;
  for (double w : want) scale = std::max(scale, std::abs(w));
  int reported = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rtol * std::abs(want[i]) + rtol * scale;
    if (!(std::abs(double(got[i]) - want[i]) <= tol) && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i] << " (tolerance " << tol
                    << ")";
  }
}

inline void expect_same_bits(const Tensor& got_tensor, const Tensor& want_tensor, const std::string& what) {
  const std::vector<float> got = read(got_tensor), want = read(want_tensor);
  ASSERT_EQ(got.size(), want.size()) << what;
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i] << " (expected identical bits)";
  EXPECT_EQ(bad, 0) << what;
}

inline bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Central finite differences in double of a scalar function of `x`.
inline std::vector<double> numeric_gradient(std::vector<double> x,
                                            const std::function<double(const std::vector<double>&)>& f,
                                            double h = 1e-5) {
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = f(x);
    x[i] = keep - h;
    const double down = f(x);
    x[i] = keep;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Runs fn with a given number of OpenMP threads, restoring the previous count.
inline void with_threads(int threads, const std::function<void()>& fn) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  fn();
  omp_set_num_threads(before);
}

// ---- the device × dtype parameter ------------------------------------------------------------

struct DeviceDtype {
  Device device;
  DType dtype;
};

inline std::vector<DeviceDtype> all_devices_and_dtypes() {
  return {{Device::cpu(), DType::F32},
          {Device::cuda(0), DType::F32},
          {Device::cuda(0), DType::F16},
          {Device::cuda(0), DType::BF16}};
}
inline std::vector<DeviceDtype> f32_devices() { return {{Device::cpu(), DType::F32}, {Device::cuda(0), DType::F32}}; }
inline std::vector<DeviceDtype> cuda_dtypes() {
  return {{Device::cuda(0), DType::F32}, {Device::cuda(0), DType::F16}, {Device::cuda(0), DType::BF16}};
}

// "cpu_f32", "cuda_bf16", ...
inline std::string device_dtype_string(const DeviceDtype& p) {
  return std::string(p.device.is_cuda() ? "cuda" : "cpu") + "_" + std::string(dtype_name(p.dtype));
}
inline std::string device_dtype_name(const ::testing::TestParamInfo<DeviceDtype>& info) {
  return device_dtype_string(info.param);
}
// How gtest prints the parameter (test listings, ctest names).
inline void PrintTo(const DeviceDtype& p, std::ostream* os) { *os << device_dtype_string(p); }

// Base of the parameterised op tests: the op runs on device() in dtype(); inputs are made on the
// CPU in f32 and handed over with put() (rounded to the dtype); the CPU reference runs on
// reference_input() copies of them.
class DeviceDtypeTest : public ::testing::TestWithParam<DeviceDtype> {
 protected:
  void SetUp() override {
    if (on_cuda()) WW_REQUIRE_CUDA();
  }

  Device device() const { return GetParam().device; }
  DType dtype() const { return GetParam().dtype; }
  bool on_cuda() const { return device().is_cuda(); }
  bool is_16bit() const { return dtype() != DType::F32; }

  // `cpu`'s values rounded to dtype(), as an f32 CPU tensor: the CPU reference's input.
  Tensor reference_input(const Tensor& cpu) const { return ww::testing::rounded(cpu, dtype()); }
  // The parameter's tensor holding `cpu`'s values: dtype() on device() (16-bit: rounded).
  Tensor put(const Tensor& cpu) const { return on_cuda() ? gpu_as(cpu, dtype()) : reference_input(cpu); }
  // An f32 tensor on device(): parameters, their gradients, statistics and losses.
  Tensor put_f32(const Tensor& cpu) const { return on_cuda() ? to_gpu(cpu) : cpu.to(Device::cpu()); }
  Tensor put_ints(const std::vector<int32_t>& values, const Shape& shape) const {
    return put_f32(Tensor::from_vector(values, shape));
  }
  // NaN-filled outputs (see poisoned()).
  Tensor nan_tensor(const Shape& shape) const { return ww::testing::poisoned(shape, dtype(), device()); }
  Tensor nan_f32(const Shape& shape) const { return ww::testing::poisoned(shape, DType::F32, device()); }

  std::string what(const std::string& op, const Shape& shape) const {
    return label(op, dtype(), shape) + " on " + device().str();
  }

  // The CPU parameter must give the reference's bits (it is the reference); a GPU parameter must be
  // within gpu_rtol (and atol) of it.
  void expect_matches(const Tensor& got, const Tensor& want, const std::string& what, double gpu_rtol,
                      double atol = 0.0) const {
    if (on_cuda()) expect_close(got, want, what, gpu_rtol, atol);
    else expect_same_bits(got, want, what);
  }

  // Activations against the CPU reference (see the top of this file).
  double rtol() const { return !on_cuda() ? 0.0 : is_16bit() ? kRtol16 : kRtol; }
  // f32 results computed from the same inputs (statistics, losses): the fp32 tolerance on every
  // GPU dtype, exact on the CPU.
  double f32_rtol() const { return on_cuda() ? kRtol : 0.0; }
  // f32 parameter gradients accumulated from 16-bit activations: sums of many products in float in
  // another order than the CPU's, each product exact, so well inside 1e-4.
  double param_grad_rtol() const { return !on_cuda() ? 0.0 : is_16bit() ? kRtolParamGrad : kRtol; }
};

}  // namespace ww::testing

// Instantiates a DeviceDtypeTest fixture over `params` (all_devices_and_dtypes(), f32_devices(), ...).
#define WW_INSTANTIATE_DEVICE_DTYPE_TEST(Fixture, params) \
  INSTANTIATE_TEST_SUITE_P(Each, Fixture, ::testing::ValuesIn(params), ::ww::testing::device_dtype_name)
