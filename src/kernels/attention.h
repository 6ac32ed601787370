#pragma once
// Multi-head scaled dot-product self-attention (see include/wattwise/ops/attention.h for the
// contract): the reference path on both devices (cpu/attention.cpp, cuda/attention.cu) and the
// fused FlashAttention-2 style kernels on CUDA (cuda/flash_attention_wmma.cu and
// cuda/flash_attention_mma.cu, sharing cuda/flash_attention.cuh).
//
// Layout: qkv [B, T, 3C] row-major, columns [0,C) queries, [C,2C) keys, [2C,3C) values; head h
// owns columns h·D..(h+1)·D of each block (C = H·D). out and dout are [B, T, C], probs and scratch
// [B, H, T, T]. key_mask [B, T] (1 real, 0 padding) may be null, meaning every key is real.
//
// Semantics (Hugging Face BertSelfAttention, eager and SDPA, on padded batches):
//   S = Q Kᵀ / √D;  P = softmax over the allowed keys of each row, exactly 0 elsewhere;
//   out = dropout(P) V.
// A key j is allowed for query i when key_mask[b, j] != 0 and, if causal, j <= i. A query row
// with no allowed key (e.g. a fully padded sequence) gets P = 0 and outputs zeros; Hugging Face
// instead averages all values there, but such rows never reach a real token.
// Dropout keeps element (b,h,i,j) of row (b·H+h)·T+i by the attention rule of core/rng.h
// (attention_dropout_keep: one Philox byte per element, p rounded to a multiple of 1/256) and
// scales kept probabilities by attention_dropout_keep_scale(p); backward regenerates the mask.
#include <cstdint>

#include "wattwise/core/dtype.h"
#ifdef WW_HAVE_CUDA
#include "kernels/cuda/blas.h"
#endif

namespace ww::kernels {

struct AttentionConfig {
  int64_t batch = 0;
  int64_t seq_len = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  bool causal = false;
  float dropout_p = 0.0f;  // in [0, 1)
  uint64_t seed = 0;
  uint64_t offset = 0;
  // CUDA only: a device u64 added to `offset` when the kernel runs (graph replays of a training
  // step see each step's dropout offset). The CPU ops fold it into `offset` instead.
  const uint64_t* offset_base = nullptr;
};

}  // namespace ww::kernels

namespace ww::kernels::cpu {

// The CPU reference. Work is split over (batch, head) with OpenMP, and each (batch, head) runs
// single-threaded OpenBLAS sgemm calls that read Q/K/V straight out of qkv (leading dimension 3C).
// No sum crosses (batch, head) pairs, so results are bitwise identical from run to run and for any
// thread count.
void attention_forward(float* out, float* probs, const float* qkv, const int32_t* key_mask,
                       const AttentionConfig& config);

// dqkv overwritten; scratch is workspace of probs' size. dqkv must not alias qkv or dout.
void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* probs, const int32_t* key_mask,
                        const AttentionConfig& config);

}  // namespace ww::kernels::cpu

#ifdef WW_HAVE_CUDA
namespace ww::kernels::cuda {

// The reference path: the CPU algorithm (same layout, masking, dropout indices and saved
// probabilities) with cuBLAS strided-batched GEMMs over the heads of one batch row and private
// masked-softmax / dropout kernels. qkv, out, probs, dout, dqkv and scratch share `dtype` (f32, f16
// or bf16): GEMMs with fp32 accumulation (TF32 inputs for f32 with GemmPrecision::Tf32), softmax in
// float. Device pointers, stream().

// probs [B,H,T,T] receives the pre-dropout probabilities; out [B,T,C] is overwritten.
void attention_forward(void* out, void* probs, const void* qkv, const int32_t* key_mask, DType dtype,
                       const AttentionConfig& config, GemmPrecision precision = GemmPrecision::Fp32);

// dqkv [B,T,3C] overwritten; scratch [B,H,T,T] is workspace.
void attention_backward(void* dqkv, void* scratch, const void* dout, const void* qkv, const void* probs,
                        const int32_t* key_mask, DType dtype, const AttentionConfig& config,
                        GemmPrecision precision = GemmPrecision::Fp32);

// The fused path (FlashAttention-2 style): the same semantics without materialising the T×T
// matrix. Elements are f32, f16 or bf16 (`dtype`; qkv, out, dout and dqkv share it); lse and delta
// are f32. Device pointers, 16-byte aligned, launched on stream(). The op layer
// (src/ops/attention.cpp) checks shapes; these functions check only what the kernels need.

// Head dims the fused kernels handle: multiples of 8 up to 128 (32 and 64 are the fast paths).
bool flash_attention_supports_head_dim(int64_t head_dim);

// out [B,T,C] overwritten; lse [B,H,T] receives the natural log-sum-exp of each query row's
// masked, scaled scores, or -inf for a row with no real key (whose output is 0).
void flash_attention_forward(void* out, float* lse, const void* qkv, const int32_t* key_mask,
                             const AttentionConfig& config, DType dtype);

// dqkv [B,T,3C] overwritten; delta [B,H,T] is workspace (receives Σ_d dO·O).
void flash_attention_backward(void* dqkv, float* delta, const void* dout, const void* qkv,
                              const void* out, const float* lse, const int32_t* key_mask,
                              const AttentionConfig& config, DType dtype);

}  // namespace ww::kernels::cuda
#endif
