#pragma once
#include "wattwise/core/tensor.h"

namespace ww::ops {

// Softmax over the last dimension of a [..., K] tensor. out may alias inp.
void softmax_forward(const Tensor& out, const Tensor& inp);
// dinp = out ⊙ (dout − Σ dout ⊙ out). dinp may alias dout.
void softmax_backward(const Tensor& dinp, const Tensor& out, const Tensor& dout);

}  // namespace ww::ops
