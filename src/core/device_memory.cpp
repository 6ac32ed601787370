#include "core/device_memory.h"

#include <cstdlib>
#include <cstring>

#include "wattwise/core/error.h"

#ifdef WW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace ww {

int cuda_device_count() {
#ifdef WW_HAVE_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
#else
  return 0;
#endif
}

}  // namespace ww

namespace ww::detail {

namespace {
#ifdef WW_HAVE_CUDA
void check_cuda(cudaError_t status, const char* what, size_t bytes = 0) {
  if (status == cudaSuccess) return;
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    throw OutOfMemoryError(detail::concat("out of GPU memory allocating ", bytes, " bytes (",
                                          bytes / double(1 << 20), " MiB); try a smaller batch, "
                                          "activation checkpointing or a lower precision"), bytes);
  }
  fail("CUDA error in ", what, ": ", cudaGetErrorString(status));
}
#endif

#ifndef WW_HAVE_CUDA
[[noreturn]] void no_cuda() {
  fail("this wattwise build has no CUDA backend (configure with -DWW_CUDA=ON on a machine with nvcc)");
}
#endif
}  // namespace

void* device_alloc(size_t bytes, Device device) {
  if (device.is_cpu()) {
    size_t rounded = (bytes + 255) / 256 * 256;  // matches Arena::kAlignment
    void* p = std::aligned_alloc(256, rounded == 0 ? 256 : rounded);
    if (!p) throw OutOfMemoryError(detail::concat("out of host memory allocating ", bytes, " bytes"), bytes);
    return p;
  }
#ifdef WW_HAVE_CUDA
  check_cuda(cudaSetDevice(device.index), "cudaSetDevice");
  void* p = nullptr;
  check_cuda(cudaMalloc(&p, bytes == 0 ? 256 : bytes), "cudaMalloc", bytes);
  return p;
#else
  no_cuda();
#endif
}

void device_free(void* ptr, Device device) {
  if (!ptr) return;
  if (device.is_cpu()) {
    std::free(ptr);
    return;
  }
#ifdef WW_HAVE_CUDA
  cudaFree(ptr);  // never throws from a destructor path
#endif
}

void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memmove(dst, src, bytes);
    return;
  }
#ifdef WW_HAVE_CUDA
  // Kernels run on wattwise's non-blocking streams (kernels/cuda/common.h), which the legacy-stream
  // cudaMemcpy neither waits for nor, for pageable uploads, finishes before returning: synchronize
  // around it so a copy sees every earlier kernel's writes and later kernels see the copy.
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize (before cudaMemcpy)");
  check_cuda(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault), "cudaMemcpy");
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize (after cudaMemcpy)");
#else
  no_cuda();
#endif
}

void device_zero(void* ptr, size_t bytes, Device device) {
  if (bytes == 0) return;
  if (device.is_cpu()) {
    std::memset(ptr, 0, bytes);
    return;
  }
#ifdef WW_HAVE_CUDA
  // As device_copy: ordered against the kernels on wattwise's non-blocking streams.
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize (before cudaMemset)");
  check_cuda(cudaMemset(ptr, 0, bytes), "cudaMemset");
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize (after cudaMemset)");
#else
  no_cuda();
#endif
}

}  // namespace ww::detail
