#pragma once
// CUDA reference attention: the CPU algorithm of kernels/cpu/attention.h (same layout, masking,
// dropout indices and saved probabilities) with cuBLAS strided-batched GEMMs over the heads of
// one batch row and private masked-softmax / dropout kernels. Device pointers, stream().
#include <cstdint>

#include "kernels/cpu/attention.h"
#include "kernels/cuda/blas.h"
#include "wattwise/core/dtype.h"

namespace ww::kernels::cuda {

using AttentionConfig = cpu::AttentionConfig;

// qkv, out, probs, dout, dqkv and scratch share `dtype` (f32, f16 or bf16): strided-batched
// GEMMs with fp32 accumulation (TF32 inputs for f32 with GemmPrecision::Tf32), softmax in float.

// probs [B,H,T,T] receives the pre-dropout probabilities; out [B,T,C] is overwritten.
void attention_forward(void* out, void* probs, const void* qkv, const int32_t* key_mask, DType dtype,
                       const AttentionConfig& config, GemmPrecision precision = GemmPrecision::Fp32);

// dqkv [B,T,3C] overwritten; scratch [B,H,T,T] is workspace.
void attention_backward(void* dqkv, void* scratch, const void* dout, const void* qkv, const void* probs,
                        const int32_t* key_mask, DType dtype, const AttentionConfig& config,
                        GemmPrecision precision = GemmPrecision::Fp32);

}  // namespace ww::kernels::cuda
