#pragma once
// CUDA reference attention: the CPU algorithm of kernels/cpu/attention.h (same layout, masking,
// dropout indices and saved probabilities) with cuBLAS strided-batched GEMMs over the heads of
// one batch row and private masked-softmax / dropout kernels. Device pointers, stream().
#include <cstdint>

#include "kernels/cpu/attention.h"

namespace ww::kernels::cuda {

using AttentionConfig = cpu::AttentionConfig;

// probs [B,H,T,T] receives the pre-dropout probabilities; out [B,T,C] is overwritten.
void attention_forward(float* out, float* probs, const float* qkv, const int32_t* key_mask,
                       const AttentionConfig& config);

// dqkv [B,T,3C] overwritten; scratch [B,H,T,T] is workspace.
void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* probs, const int32_t* key_mask, const AttentionConfig& config);

}  // namespace ww::kernels::cuda
