#pragma once
// Device-side helpers shared by the CUDA kernel files: grid-stride loops, deterministic block
// reductions and the input-error record (see elementwise.h).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/common.h"
#include "kernels/cuda/elementwise.h"

namespace ww::kernels::cuda {

constexpr int kThreads = 256;  // block size of every kernel here (a multiple of 32)

// Blocks for a grid-stride loop over n items (capped: the loop covers the rest).
inline unsigned grid_for(int64_t n) {
  const unsigned blocks = blocks_for(n, kThreads);
  return blocks < 65536u ? blocks : 65536u;
}

#define WW_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// Sum over the block; every thread gets the total. The order of additions is fixed (warp
// butterflies, then warps in order), so results are deterministic. Every thread must call it.
template <typename T>
__device__ T block_sum(T value) {
  __shared__ T partial[32];
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
  __syncthreads();  // a previous call's readers are done with `partial`
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = value;
  __syncthreads();
  T total = 0;
  for (unsigned w = 0; w < (blockDim.x + 31) / 32; ++w) total += partial[w];
  return total;
}

__device__ inline float block_max(float value) {
  __shared__ float partial[32];
  for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  __syncthreads();
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = value;
  __syncthreads();
  float result = partial[0];
  for (unsigned w = 1; w < (blockDim.x + 31) / 32; ++w) result = fmaxf(result, partial[w]);
  return result;
}

// The input-error record: [kind, row, position, value, limit]; kind 0 = no error.
enum InputErrorKind : int { kNoError = 0, kBadWordId = 1, kBadTokenType = 2, kBadMaskValue = 3, kBadLabel = 4 };
constexpr int kInputErrorFields = 5;

// The current device's record (device memory, zeroed on creation).
int* input_error_record();

// Keeps the first error only.
__device__ inline void record_input_error(int* record, int kind, int64_t row, int64_t position, int value,
                                          int64_t limit) {
  if (atomicCAS(record, 0, kind) == 0) {
    record[1] = int(row);
    record[2] = int(position);
    record[3] = value;
    record[4] = int(limit);
  }
}

// After a launch that may record input errors: the launch check, and in debug builds the record.
inline void check_launch_and_inputs(const char* kernel) {
  check_launch(kernel);
#ifndef NDEBUG
  raise_input_errors();
#endif
}

}  // namespace ww::kernels::cuda
