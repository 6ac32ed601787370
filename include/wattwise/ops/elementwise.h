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

// CUDA ids, masks and labels live in device memory, so the CUDA kernels do not check them on the
// host: a kernel that meets a bad one (id outside its table, mask value other than 0/1, label
// outside [0, K) other than −100) skips it and records it. This throws ww::Error describing the
// first recorded one (the CPU check's message) and clears the record; it synchronises the current
// device's stream. Debug builds call it after every such launch; count_valid_labels calls it too.
// Does nothing in a build without CUDA.
void check_device_input_errors();

// TEMP(lead): declared ahead of the mixed-precision kernels branch.
void cast(const Tensor& out, const Tensor& inp);

}  // namespace ww::ops
