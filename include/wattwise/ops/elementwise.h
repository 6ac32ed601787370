#pragma once
#include "wattwise/core/tensor.h"
#include "wattwise/ops/dropout.h"

namespace ww::ops {

// Activation arguments (every tensor here except masks) are f32, or on a cuda device also f16 or
// bf16; all of one call share one dtype (the math is fp32 inside every kernel).

// out = a + b (same element count). out may alias a or b.
// With b_dropout: out = a + dropout(b), one pass, the bits of dropout_forward into b then the add
// (b itself is not written).
void residual_forward(const Tensor& out, const Tensor& a, const Tensor& b, const ElementDropout& b_dropout = {});
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

// out = inp converted between f32, f16 and bf16 in any direction (same element count), on the CPU
// or a cuda device; to 16-bit rounds to nearest even, from 16-bit is exact. Same dtype copies
// (out may then be inp itself); otherwise out must not overlap inp. Use it for 16-bit working
// copies of weights, and where an f32 argument meets 16-bit activations (e.g. the classifier head:
// cast its 16-bit logits to f32 for the loss, or its f32 gradient to 16-bit for linear_backward).
void cast(const Tensor& out, const Tensor& inp);

// CUDA ids, masks and labels live in device memory, so the CUDA kernels do not check them on the
// host: a kernel that meets a bad one (id outside its table, mask value other than 0/1, label
// outside [0, K) other than −100) skips it and records it. This throws ww::Error describing the
// first recorded one (the CPU check's message) and clears the record; it synchronises the current
// device's stream. Debug builds call it after every such launch; count_valid_labels calls it too.
// Does nothing in a build without CUDA.
void check_device_input_errors();

}  // namespace ww::ops
