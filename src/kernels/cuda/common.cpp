#include "kernels/cuda/common.h"

#include <mutex>
#include <vector>

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

cudaStream_t stream() {
  static std::mutex mutex;
  static std::vector<cudaStream_t> streams;
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(mutex);
  if (int(streams.size()) <= device) streams.resize(size_t(device) + 1, nullptr);
  if (!streams[size_t(device)]) check(cudaStreamCreateWithFlags(&streams[size_t(device)], cudaStreamNonBlocking), "cudaStreamCreate");
  return streams[size_t(device)];
}

}  // namespace ww::kernels::cuda
