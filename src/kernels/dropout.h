#pragma once
// Inverted dropout with the counter-based Philox mask (see wattwise/core/rng.h), one kernel per
// device (cpu/dropout.cpp, cuda/dropout.cu): every device and dtype draws the same mask, bit for bit.
#include <cstdint>

#include "wattwise/core/dtype.h"

namespace ww::kernels::cpu {

// Element i is kept iff element_dropout_keep(seed, offset, i, element_dropout_threshold(p)) (core/rng.h);
// kept values are scaled by element_dropout_keep_scale(p) (≈ 1/(1-p)), dropped ones become 0.
// p == 0 copies. Requires 0 <= p < 1. out may alias inp.
void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset);

// Regenerates the same mask: dinp = mask · dout · keep scale. dinp may alias dout.
void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset);

// out = a + dropout(b) with the same mask and values as dropout_forward into b followed by the add
// (b is not written). out may alias a or b.
void residual_dropout_forward(float* out, const float* a, const float* b, int64_t n, float p, uint64_t seed,
                              uint64_t offset);

}  // namespace ww::kernels::cpu

#ifdef WW_HAVE_CUDA
namespace ww::kernels::cuda {

// Element dropout applied to an operand as it is read (core/rng.h's element rule over the operand's
// flat index): the fused kernels (residual_forward, residual_layernorm_forward) see the values
// dropout_forward would have written into it, without writing them. p = 0: none. offset_base: null,
// or a device u64 added to offset (CUDA graphs).
struct ElementDropoutArgs {
  float p = 0.0f;
  uint64_t seed = 0, offset = 0;
  const uint64_t* offset_base = nullptr;
};

// The same Philox mask as the CPU kernel (bit for bit) for every dtype (f32, f16 or bf16 in
// `dtype`). Requires 0 <= p < 1. offset_base: null, or a device u64 added to offset when the kernel
// runs (CUDA graphs).
void dropout_forward(void* out, const void* inp, int64_t n, DType dtype, float p, uint64_t seed, uint64_t offset,
                     const uint64_t* offset_base = nullptr);
void dropout_backward(void* dinp, const void* dout, int64_t n, DType dtype, float p, uint64_t seed,
                      uint64_t offset, const uint64_t* offset_base = nullptr);

}  // namespace ww::kernels::cuda
#endif
