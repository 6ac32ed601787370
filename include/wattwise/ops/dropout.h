#pragma once
#include <cstdint>

#include "wattwise/core/tensor.h"

namespace ww::ops {

// Inverted dropout with a counter-based mask: element i is kept when the 16-bit Philox draw of
// core/rng.h's element rule is >= round(p·65536) (element_dropout_keep), and kept values are scaled
// by 65536/(65536 − round(p·65536)) ≈ 1/(1-p), the inverse of the exact keep probability. The mask
// is never stored: backward regenerates it from (seed, offset). p == 0 copies. out may alias inp.
// f32, or on a cuda device also f16/bf16 (one dtype per call): the mask is the same for every dtype.
// offset_base (optional): an i64 [1] tensor on the data's device whose value is added to `offset`
// when the kernel runs, so a recorded CUDA graph draws each replay's masks from the value the host
// wrote before it (the model keeps its step counter there).
void dropout_forward(const Tensor& out, const Tensor& inp, float p, uint64_t seed, uint64_t offset,
                     const Tensor& offset_base = Tensor());
void dropout_backward(const Tensor& dinp, const Tensor& dout, float p, uint64_t seed, uint64_t offset,
                      const Tensor& offset_base = Tensor());

// Element dropout that another op applies to one of its inputs as it reads it (residual_forward,
// residual_layernorm_forward): the values dropout_forward(x, x, p, seed, offset, offset_base) would
// have left in that input, bit for bit, without writing them. p = 0: none.
struct ElementDropout {
  float p = 0.0f;
  uint64_t seed = 0, offset = 0;
  Tensor offset_base;
};

// The offset_base argument's pointer (null when undefined), after checking it; for the other ops
// that draw dropout masks (attention).
const uint64_t* dropout_offset_base(const Tensor& offset_base, const Tensor& like, const char* op);

// An op's ElementDropout argument checked (p in [0, 1), offset_base as above): its offset_base pointer.
const uint64_t* checked_dropout_base(const ElementDropout& dropout, const Tensor& like, const char* op);

}  // namespace ww::ops
