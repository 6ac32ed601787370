#include "kernels/cuda/common.h"

#include "core/device_memory.h"

namespace ww::kernels::cuda {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail("CUDA error in ", what, ": ", cudaGetErrorString(status));
}

void check_launch(const char* kernel) {
  check(cudaGetLastError(), kernel);
#ifndef NDEBUG
  check(cudaStreamSynchronize(stream()), kernel);
#endif
}

cudaStream_t stream() { return static_cast<cudaStream_t>(ww::detail::cuda_stream()); }

}  // namespace ww::kernels::cuda
