#pragma once
// What the two fused attention implementations share (FlashAttention-2 style; the contract is in
// kernels/attention.h): the launch parameters, the attention dropout rule, key flags, lse units and
// the host-side setup, plus the entry points of the mma.sync kernels that the dispatch in
// flash_attention_wmma.cu calls.
//   flash_attention_wmma.cu: WMMA tensor-core tiles for f16/bf16 and FMA loops for f32, any head dim
//     that is a multiple of 8 up to 128, staged through shared memory; and the entry points.
//   flash_attention_mma.cu: raw mma.sync with register-resident fragments, f16/bf16 at head dims 32
//     and 64 (the fast path).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/attention.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/flash_lanes.h"
#include "wattwise/core/error.h"
#include "wattwise/core/rng.h"

namespace ww::kernels::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
// Hands out 128-byte aligned regions of dynamic shared memory (WMMA needs 32-byte alignment).
// With base 0 it only measures, so host and device share one layout description.
struct Carver {
  uintptr_t base;
  size_t used = 0;
  template <typename U>
  __host__ __device__ U* take(size_t count) {
    U* region = reinterpret_cast<U*>(base + used);
    used += (count * sizeof(U) + 127) / 128 * 128;
    return region;
  }
};

// ---- parameters ----------------------------------------------------------------------------

struct Params {
  int64_t seq_len, heads, head_dim, channels;  // channels C = heads · head_dim
  bool causal;
  float scale;       // 1/√D as the reference rounds it
  float scale_log2;  // scale · log2 e
  bool use_dropout;
  uint32_t threshold;     // attention_dropout_threshold(p): a byte below it drops the element
  float keep_scale;       // attention_dropout_keep_scale(p), 1 without dropout
  uint64_t blocks_per_row;  // ⌈T/16⌉ Philox blocks per probability row (core/rng.h)
  uint64_t seed, offset;
  const uint64_t* offset_base;  // null, or a device u64 added to offset (CUDA graphs)
  const int32_t* key_mask;  // [B,T] or null
};

// ---- dropout -------------------------------------------------------------------------------
// The attention rule of core/rng.h: element (row, key), row = (b·H + h)·T + i, is byte key % 16 of
// Philox block row·⌈T/16⌉ + key/16, kept when the byte is ≥ the threshold. Every helper below is
// that rule; they differ only in how lanes share the Philox calls.

// Block `block` of this launch's (seed, offset) stream (offset_base added when graphs replay).
__device__ inline Philox4 dropout_block(const Params& p, uint64_t block) {
  const uint64_t offset = p.offset + (p.offset_base ? *p.offset_base : 0);
  return philox_block(p.seed, offset, block);
}

// flags[j] = 1 iff key key0 + j exists and is a real token. Returns whether this thread set any,
// so that a __syncthreads_or tells the CTA whether the tile has a real key at all.
__device__ int load_key_flags(int* flags, const int32_t* key_mask, int64_t b, int64_t key0, int count,
                              int64_t seq_len) {
  int any = 0;
  for (int j = threadIdx.x; j < count; j += blockDim.x) {
    const int64_t key = key0 + j;
    flags[j] = key < seq_len && (key_mask == nullptr || key_mask[b * seq_len + key] != 0);
    any |= flags[j];
  }
  return any;
}

// lse in base-2 units for recomputing P = exp2(S·scale·log2 e − lse2); +inf for rows that do not
// exist or have no real key, so their P is exactly 0.
__device__ inline float lse_base2(const float* lse, int64_t row, int64_t seq_len, int64_t i) {
  if (i >= seq_len) return INFINITY;
  const float value = lse[row * seq_len + i];
  return value == -INFINITY ? INFINITY : value * kLog2e;
}

// ---- host side -----------------------------------------------------------------------------

Params make_params(const int32_t* key_mask, const AttentionConfig& config) {
  Params p{};
  p.seq_len = config.seq_len;
  p.heads = config.num_heads;
  p.head_dim = config.head_dim;
  p.channels = config.num_heads * config.head_dim;
  p.causal = config.causal;
  p.scale = float(1.0 / std::sqrt(double(config.head_dim)));  // as the reference (HF) rounds it
  p.scale_log2 = p.scale * kLog2e;
  p.use_dropout = config.dropout_p > 0.0f;
  p.threshold = attention_dropout_threshold(config.dropout_p);
  p.keep_scale = p.use_dropout ? attention_dropout_keep_scale(config.dropout_p) : 1.0f;
  p.blocks_per_row = uint64_t((config.seq_len + 15) / 16);
  p.seed = config.seed;
  p.offset = config.offset;
  p.offset_base = config.offset_base;
  p.key_mask = key_mask;
  return p;
}

// Opts the kernel in to `bytes` of dynamic shared memory (above the 48 KiB default).
template <typename Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes, const char* name) {
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)), name);
}

dim3 grid_for(int64_t rows_per_cta, const AttentionConfig& config) {
  return dim3(unsigned((config.seq_len + rows_per_cta - 1) / rows_per_cta), unsigned(config.num_heads),
              unsigned(config.batch));
}

// The element types the mma.sync kernels take.
template <typename T>
constexpr bool kMmaType = std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

}  // namespace

// The mma.sync implementation's entry points (flash_attention_mma.cu), instantiated for T = __half
// and __nv_bfloat16 and D = 32 and 64.
// Whether the mma.sync kernels run this forward (f16/bf16 with head dim exactly 32 or 64 on sm_80+).
bool use_mma_path(const AttentionConfig& config);
// Whether they run this backward (see flash_attention_mma.cu for why head dim 32 does not yet).
bool use_mma_backward(const AttentionConfig& config);
template <typename T, int D>
void forward_mma_for_dim(void* out, float* lse, const void* qkv, const int32_t* key_mask,
                         const AttentionConfig& config);
// dQ, dK, dV; delta as flash_delta_kernel leaves it.
template <typename T, int D>
void backward_mma_for_dim(T* dqkv, const T* qkv, const T* dout, const float* lse, const float* delta,
                          const int32_t* key_mask, const AttentionConfig& config);

}  // namespace ww::kernels::cuda
