#pragma once
// CPU reference for inverted dropout with the counter-based Philox mask (see wattwise/core/rng.h).
#include <cstdint>

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
