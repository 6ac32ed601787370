#pragma once
// For test_cuda_*.cpp: skip (with the reason) when this build or machine has no usable GPU.
#include <gtest/gtest.h>

#ifdef WW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#include <string>

namespace ww::testing {

// Empty when a GPU is usable, else why not.
inline std::string cuda_unavailable_reason() {
#ifndef WW_HAVE_CUDA
  return "this build has no CUDA backend";
#else
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) return std::string("no CUDA device: ") + cudaGetErrorString(status);
  if (count == 0) return "no CUDA device visible";
  return "";
#endif
}

// The current GPU's streaming multiprocessor count (0 without a CUDA backend or a GPU), for tests
// that size a grid past the point where kernels change shape.
inline int cuda_multiprocessor_count() {
#ifndef WW_HAVE_CUDA
  return 0;
#else
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) return 0;
  return count;
#endif
}

}  // namespace ww::testing

#define WW_REQUIRE_CUDA()                                                              \
  do {                                                                                 \
    std::string why = ::ww::testing::cuda_unavailable_reason();                        \
    if (!why.empty()) GTEST_SKIP() << "CUDA test skipped: " << why;                    \
  } while (0)
