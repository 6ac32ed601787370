#pragma once
#include "wattwise/core/tensor.h"

namespace ww::ops {

// Elementwise activations. out may alias inp; dinp may alias dout. Every tensor is an activation:
// f32, or on a cuda device also f16/bf16 (one dtype per call; math in fp32).
void gelu_forward(const Tensor& out, const Tensor& inp);  // exact erf form: x·Φ(x)
void gelu_backward(const Tensor& dinp, const Tensor& inp, const Tensor& dout);
// GPT-2's tanh approximation (HF gelu_new, torch approximate="tanh"):
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
void gelu_tanh_forward(const Tensor& out, const Tensor& inp);
void gelu_tanh_backward(const Tensor& dinp, const Tensor& inp, const Tensor& dout);
void relu_forward(const Tensor& out, const Tensor& inp);
void relu_backward(const Tensor& dinp, const Tensor& inp, const Tensor& dout);
void tanh_forward(const Tensor& out, const Tensor& inp);
void tanh_backward(const Tensor& dinp, const Tensor& out, const Tensor& dout);  // uses tanh output

}  // namespace ww::ops
