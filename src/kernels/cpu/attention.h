#pragma once
// CPU reference for multi-head scaled dot-product self-attention (see include/wattwise/ops/
// attention.h for the contract). The CUDA kernels are tested against these functions.
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
//
// Work is split over (batch, head) with OpenMP, and each (batch, head) runs single-threaded
// OpenBLAS sgemm calls that read Q/K/V straight out of qkv (leading dimension 3C). No sum crosses
// (batch, head) pairs, so results are bitwise identical from run to run and for any thread count.
#include <cstdint>

namespace ww::kernels::cpu {

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

void attention_forward(float* out, float* probs, const float* qkv, const int32_t* key_mask,
                       const AttentionConfig& config);

// dqkv overwritten; scratch is workspace of probs' size. dqkv must not alias qkv or dout.
void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* probs, const int32_t* key_mask,
                        const AttentionConfig& config);

}  // namespace ww::kernels::cpu
