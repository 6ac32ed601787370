#pragma once
// Raw memory on a device. CPU memory is 64-byte aligned host memory; CUDA memory comes from
// cudaMalloc (only when the library is built with CUDA; otherwise asking for it is a clear error).
#include <cstddef>

#include "wattwise/core/device.h"

namespace ww::detail {

void* device_alloc(size_t bytes, Device device);
void device_free(void* ptr, Device device);
void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void device_zero(void* ptr, size_t bytes, Device device);

// The CUDA stream of the current device that every wattwise kernel, library call and copy uses
// (a cudaStream_t; created on first use). Copies and fills are ordered with the kernels by being on
// it; copies to the host wait for it.
void* cuda_stream();

}  // namespace ww::detail
