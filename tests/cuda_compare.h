#pragma once
// Helpers for test_cuda_*.cpp that compare a CUDA op with its CPU reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"

#ifdef WW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace ww::testing {

inline std::vector<float> random_normals(int64_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed, 11);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = scale * rng.normal();
  return v;
}

inline Tensor cpu_tensor(const std::vector<float>& values, const Shape& shape) {
  return Tensor::from_vector(values, shape);
}

// A GPU copy of a CPU tensor.
inline Tensor gpu_copy(const Tensor& cpu) { return cpu.to(Device::cuda(0)); }

// A GPU tensor filled with NaN, so elements a kernel fails to write show up.
inline Tensor gpu_poisoned(const Shape& shape) {
  std::vector<float> nan(size_t(shape_numel(shape)), std::numeric_limits<float>::quiet_NaN());
  return Tensor::from_vector(nan, shape).to(Device::cuda(0));
}

// Reads a tensor back after every queued kernel finished (and reports a kernel's own error).
inline std::vector<float> read_back(const Tensor& t) {
#ifdef WW_HAVE_CUDA
  cudaError_t status = cudaDeviceSynchronize();
  EXPECT_EQ(status, cudaSuccess) << cudaGetErrorString(status);
#endif
  return t.to_float_vector();
}

// |got − want| <= rtol·|want| + rtol·max|want| per element (a relative tolerance with an absolute
// floor at rtol of the tensor's scale for entries that cancel); NaN anywhere fails.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want,
                         const std::string& what, double rtol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0.0;
  for (float w : want) scale = std::max(scale, std::abs(double(w)));
  int reported = 0;
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rtol * std::abs(double(want[i])) + rtol * scale;
    if (!(std::abs(double(got[i]) - double(want[i])) <= tol)) {
      ++bad;
      if (reported++ < 5)
        ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i]
                      << " (tolerance " << tol << ")";
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << got.size() << " elements out of tolerance";
}

}  // namespace ww::testing
