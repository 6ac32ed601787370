#pragma once
#include <cstdint>

#include "wattwise/core/tensor.h"

namespace ww::ops {

// Inverted dropout with a counter-based mask: element i is kept when
// philox_uniform(seed, offset, i) >= p, and kept values are scaled by 1/(1-p). The mask is never
// stored: backward regenerates it from (seed, offset). p == 0 copies. out may alias inp.
// f32, or on a cuda device also f16/bf16 (one dtype per call): the mask is the same for every dtype.
void dropout_forward(const Tensor& out, const Tensor& inp, float p, uint64_t seed, uint64_t offset);
void dropout_backward(const Tensor& dinp, const Tensor& dout, float p, uint64_t seed, uint64_t offset);

}  // namespace ww::ops
