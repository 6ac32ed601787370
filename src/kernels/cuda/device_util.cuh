#pragma once
// Device-side helpers shared by the CUDA kernel files: grid-stride loops, deterministic block
// reductions, the input-error record (see input_errors.h), and the element types of activations
// (float, __half, __nv_bfloat16: loaded as float, stored with round-to-nearest-even).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/common.h"
#include "kernels/cuda/input_errors.h"
#include "wattwise/core/dtype.h"

namespace ww::kernels::cuda {

// Every kernel computes in float (or double): 16-bit values are widened on load and rounded once
// on store.
__device__ __forceinline__ float load_float(float x) { return x; }
__device__ __forceinline__ float load_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float load_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T store_float(float x);
template <>
__device__ __forceinline__ float store_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half store_float<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 store_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// V consecutive elements as floats, in 4-, 8- or 16-byte loads (two or more for 32 bytes and up;
// V = 1: a plain load). p must be aligned to min(V·sizeof(T), 16) bytes.
template <int V, typename T>
__device__ __forceinline__ void load_floats(const T* p, float (&out)[V]) {
  constexpr int bytes = V * int(sizeof(T));
  if constexpr (V == 1) {
    out[0] = load_float(*p);
  } else if constexpr (bytes > 16) {
    static_assert(bytes % 16 == 0, "load_floats: a multiple of 16 bytes");
    constexpr int P = 16 / int(sizeof(T));
#pragma unroll
    for (int q = 0; q < V / P; ++q) {
      float part[P];
      load_floats<P>(p + q * P, part);
#pragma unroll
      for (int v = 0; v < P; ++v) out[q * P + v] = part[v];
    }
  } else {
    static_assert(bytes == 4 || bytes == 8 || bytes == 16, "load_floats: 4, 8 or 16 bytes");
    using Raw = std::conditional_t<bytes == 16, uint4, std::conditional_t<bytes == 8, uint2, uint32_t>>;
    const Raw raw = *reinterpret_cast<const Raw*>(p);
    T element[V];
    memcpy(element, &raw, sizeof(raw));
#pragma unroll
    for (int v = 0; v < V; ++v) out[v] = load_float(element[v]);
  }
}

// Stores V floats rounded to T (sizes and alignment as for load_floats).
template <int V, typename T>
__device__ __forceinline__ void store_floats(T* p, const float (&in)[V]) {
  constexpr int bytes = V * int(sizeof(T));
  if constexpr (V == 1) {
    *p = store_float<T>(in[0]);
  } else if constexpr (bytes > 16) {
    static_assert(bytes % 16 == 0, "store_floats: a multiple of 16 bytes");
    constexpr int P = 16 / int(sizeof(T));
#pragma unroll
    for (int q = 0; q < V / P; ++q) {
      float part[P];
#pragma unroll
      for (int v = 0; v < P; ++v) part[v] = in[q * P + v];
      store_floats<P>(p + q * P, part);
    }
  } else {
    static_assert(bytes == 4 || bytes == 8 || bytes == 16, "store_floats: 4, 8 or 16 bytes");
    using Raw = std::conditional_t<bytes == 16, uint4, std::conditional_t<bytes == 8, uint2, uint32_t>>;
    T element[V];
#pragma unroll
    for (int v = 0; v < V; ++v) element[v] = store_float<T>(in[v]);
    Raw raw;
    memcpy(&raw, element, sizeof(raw));
    *reinterpret_cast<Raw*>(p) = raw;
  }
}

// Calls f(T{}) with T the element type of an activation dtype (f32, f16, bf16); anything else is
// an error naming `what`. Host code: f launches kernel<T>.
template <typename F>
void dispatch_activation(DType dtype, const char* what, F&& f) {
  switch (dtype) {
    case DType::F32: f(float{}); return;
    case DType::F16: f(__half{}); return;
    case DType::BF16: f(__nv_bfloat16{}); return;
    default: fail(what, ": no CUDA kernel for dtype ", dtype_name(dtype), " (expected f32, f16 or bf16)");
  }
}

constexpr int kThreads = 256;  // block size of every kernel here (a multiple of 32)

// Blocks for a grid-stride loop over n items (capped: the loop covers the rest).
inline unsigned grid_for(int64_t n) {
  const unsigned blocks = blocks_for(n, kThreads);
  return blocks < 65536u ? blocks : 65536u;
}

#define WW_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// 16 bytes global → shared, asynchronously (cp.async, compute capability 8.0 and up); zero-filled
// when !valid (src is then not read). Both addresses 16-byte aligned. Older targets (someone's
// -DCMAKE_CUDA_ARCHITECTURES=75) copy synchronously, so commit and wait have nothing to do there.
__device__ inline void cp_async16(void* smem, const void* src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  *static_cast<uint4*>(smem) = valid ? *static_cast<const uint4*>(src) : make_uint4(0, 0, 0, 0);
#else
  const uint32_t address = uint32_t(__cvta_generic_to_shared(smem));
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(src), "r"(bytes));
#endif
}
__device__ inline void cp_async_commit() {
#if !(defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800)
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ inline void cp_async_wait() {
#if !(defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

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

// Writes the first error into the input-error record (input_errors.h) and keeps it: later ones are
// dropped.
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
