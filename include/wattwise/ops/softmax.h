#pragma once
#include "wattwise/core/tensor.h"

namespace ww::ops {

// Softmax over the last dimension of a [..., K] tensor. out may alias inp. f32, or on a cuda device
// also f16/bf16 (one dtype per call; math in fp32).
void softmax_forward(const Tensor& out, const Tensor& inp);
// dinp = out ⊙ (dout − Σ dout ⊙ out). dinp may alias dout.
void softmax_backward(const Tensor& dinp, const Tensor& out, const Tensor& dout);

}  // namespace ww::ops
