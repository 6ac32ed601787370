#pragma once
// Elementwise activations: GELU (erf and tanh forms), ReLU and tanh, forward and backward, one
// kernel per device (cpu/activation.cpp, cuda/activation.cu). Outputs may alias inputs.
#include <cstdint>

#include "wattwise/core/dtype.h"

namespace ww::kernels::cpu {

// The CPU reference, over n floats.
// torch's default GELU: x · 0.5 · (1 + erf(x / √2)).
void gelu_forward(float* out, const float* inp, int64_t n);
// dinp = dout · (Φ(x) + x · φ(x)), with Φ, φ the standard normal CDF and density.
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n);

// GPT-2's GELU (torch's approximate="tanh", HF's gelu_new): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
void gelu_tanh_forward(float* out, const float* inp, int64_t n);
// dinp = dout · (0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)), t the tanh above.
void gelu_tanh_backward(float* dinp, const float* inp, const float* dout, int64_t n);

void relu_forward(float* out, const float* inp, int64_t n);
// dinp = dout where inp > 0, else 0 (torch's threshold_backward).
void relu_backward(float* dinp, const float* inp, const float* dout, int64_t n);

void tanh_forward(float* out, const float* inp, int64_t n);
// From the forward output: dinp = dout · (1 − out²).
void tanh_backward(float* dinp, const float* out, const float* dout, int64_t n);

}  // namespace ww::kernels::cpu

#ifdef WW_HAVE_CUDA
namespace ww::kernels::cuda {

// The same formulas in float on device pointers (f32, f16 or bf16 in `dtype`), launched on stream().
void gelu_forward(void* out, const void* inp, int64_t n, DType dtype);
void gelu_backward(void* dinp, const void* inp, const void* dout, int64_t n, DType dtype);
void gelu_tanh_forward(void* out, const void* inp, int64_t n, DType dtype);
void gelu_tanh_backward(void* dinp, const void* inp, const void* dout, int64_t n, DType dtype);
void relu_forward(void* out, const void* inp, int64_t n, DType dtype);
void relu_backward(void* dinp, const void* inp, const void* dout, int64_t n, DType dtype);
void tanh_forward(void* out, const void* inp, int64_t n, DType dtype);
void tanh_backward(void* dinp, const void* out, const void* dout, int64_t n, DType dtype);

}  // namespace ww::kernels::cuda
#endif
