#pragma once
#include "wattwise/core/tensor.h"

namespace ww::ops {

// out = a + b (same element count). out may alias a or b.
void residual_forward(const Tensor& out, const Tensor& a, const Tensor& b);
// acc += x
void add_inplace(const Tensor& acc, const Tensor& x);
// x *= factor
void scale_inplace(const Tensor& x, float factor);

// out[b,:] = inp[b, index, :] for inp [B,T,C], out [B,C] (CLS / first-token pooling).
void select_token_forward(const Tensor& out, const Tensor& inp, int64_t index);
// dinp[b, index, :] += dout[b,:]; other positions untouched (accumulates).
void select_token_backward(const Tensor& dinp, const Tensor& dout, int64_t index);

// Mean over real tokens: out[b,:] = Σ_t mask[b,t]·inp[b,t,:] / Σ_t mask[b,t] (mask i32 [B,T]).
void masked_mean_forward(const Tensor& out, const Tensor& inp, const Tensor& mask);
// dinp[b,t,:] = mask[b,t]·dout[b,:] / Σ_t mask[b,t] (overwritten).
void masked_mean_backward(const Tensor& dinp, const Tensor& dout, const Tensor& mask);

}  // namespace ww::ops
