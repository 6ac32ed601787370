#pragma once
#include <cstdint>

#include "wattwise/core/tensor.h"

namespace ww::ops {

// Multi-head scaled dot-product self-attention over a packed projection.
//   qkv      [B,T,3C]: columns [0,C) queries, [C,2C) keys, [2C,3C) values; head h owns columns
//            h·D..(h+1)·D of each block (D = C / num_heads), matching HF's query/key/value weights.
//   key_mask i32 [B,T]: 1 = real token, 0 = padding (HF attention_mask); undefined = all real.
//            Padded keys get zero probability; a query row with no real key outputs zeros.
//   causal   also masks keys after the query (GPT-2).
//   probs    [B,H,T,T]: softmax(QKᵀ/√D + mask) before dropout, saved for backward.
//   out      [B,T,C]: heads concatenated.
// Attention-probability dropout follows core/rng.h's attention rule under (seed, offset): one
// Philox byte per element of row (b·H+h)·T+i, so p is rounded to a multiple of 1/256 (0.1 acts as
// 26/256) and kept values are scaled by 256/(256 − round(256·p)); every path (CPU, CUDA reference,
// fused) draws the same mask. The optional offset_base is added to offset as in dropout_forward
// (include/wattwise/ops/dropout.h).
// Dtypes: qkv, out, probs (and dout, dqkv, scratch) share one activation dtype: f32, or on a cuda
// device also f16 or bf16 (GEMMs with fp32 accumulation, softmax math in fp32; TF32 for f32 GEMMs
// when ops::allow_tf32()).
void attention_forward(const Tensor& out, const Tensor& probs, const Tensor& qkv,
                       const Tensor& key_mask, int64_t num_heads, bool causal, float dropout_p,
                       uint64_t seed, uint64_t offset, const Tensor& offset_base = Tensor());

// dqkv [B,T,3C] overwritten. scratch [B,H,T,T] (activation dtype) is workspace (contents destroyed).
void attention_backward(const Tensor& dqkv, const Tensor& scratch, const Tensor& dout,
                        const Tensor& qkv, const Tensor& probs, const Tensor& key_mask,
                        int64_t num_heads, bool causal, float dropout_p, uint64_t seed,
                        uint64_t offset, const Tensor& offset_base = Tensor());

// Fused attention (FlashAttention-2 style): the same result as attention_forward without the
// [B,H,T,T] probabilities. CUDA only: on the CPU it throws (the reference path above runs there).
// Same qkv / out / key_mask / causal / dropout semantics as attention_forward, with
//   qkv, out  one element type: f32, f16 or bf16 (16-bit ones use tensor cores);
//   lse       f32 [B,H,T]: per query, the natural log-sum-exp of its masked, scaled scores (saved
//             for backward); -inf for a row with no real key, whose output is 0.
// Head dim D = C / num_heads must be a multiple of 8 up to 128 (32 and 64 are the fast paths).
// qkv and out must be 16-byte aligned (any tensor from Tensor::empty is).
void attention_forward_fused(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                             const Tensor& key_mask, int64_t num_heads, bool causal, float dropout_p,
                             uint64_t seed, uint64_t offset, const Tensor& offset_base = Tensor());

// dqkv [B,T,3C] overwritten. dout, qkv, out: as in and from the forward (one element type with
// dqkv); lse from attention_forward_fused. workspace f32 [B,H,T] receives delta_i = Σ_d dO·O
// (contents destroyed). Deterministic: no atomics.
void attention_backward_fused(const Tensor& dqkv, const Tensor& workspace, const Tensor& dout,
                              const Tensor& qkv, const Tensor& out, const Tensor& lse,
                              const Tensor& key_mask, int64_t num_heads, bool causal,
                              float dropout_p, uint64_t seed, uint64_t offset,
                              const Tensor& offset_base = Tensor());

}  // namespace ww::ops
