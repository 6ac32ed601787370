#pragma once
// Fused (FlashAttention-2 style) multi-head self-attention on CUDA: the semantics of the reference
// kernels (kernels/cpu/attention.h: packed qkv layout, key-padding and causal masks, the attention
// dropout rule of core/rng.h) without materialising the T×T matrix.
// Elements are f32, f16 or bf16 (`dtype`; qkv, out, dout and dqkv share it); lse and delta are
// f32. Device pointers, 16-byte aligned, launched on stream(). The op layer
// (src/ops/attention.cpp) checks shapes; these functions check only what the kernels need.
#include <cstdint>

#include "kernels/cpu/attention.h"
#include "wattwise/core/dtype.h"

namespace ww::kernels::cuda {

// Head dims the fused kernels handle: multiples of 8 up to 128 (32 and 64 are the fast paths).
bool flash_attention_supports_head_dim(int64_t head_dim);

// out [B,T,C] overwritten; lse [B,H,T] receives the natural log-sum-exp of each query row's
// masked, scaled scores, or -inf for a row with no real key (whose output is 0).
void flash_attention_forward(void* out, float* lse, const void* qkv, const int32_t* key_mask,
                             const cpu::AttentionConfig& config, DType dtype);

// dqkv [B,T,3C] overwritten; delta [B,H,T] is workspace (receives Σ_d dO·O).
void flash_attention_backward(void* dqkv, float* delta, const void* dout, const void* qkv,
                              const void* out, const float* lse, const int32_t* key_mask,
                              const cpu::AttentionConfig& config, DType dtype);

}  // namespace ww::kernels::cuda
