#pragma once
// Shared plumbing of the CUDA kernels: error checks that throw ww::Error with the call and the
// CUDA message, the stream every kernel launches on, and grid sizing.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "wattwise/core/error.h"

namespace ww::kernels::cuda {

// Throws ww::Error("CUDA error in <what>: <message>").
void check(cudaError_t status, const char* what);
// After a launch: the launch error (bad configuration) and, in debug builds, the kernel's own.
void check_launch(const char* kernel);

// The stream all wattwise kernels and library calls on the current device use (one per device,
// created on first use). Work is ordered on it; host code synchronises only where it reads results.
cudaStream_t stream();

inline unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

// Whether p is a multiple of `bytes` (vector loads and stores need their width).
inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace ww::kernels::cuda
