#pragma once
// CPU reference softmax over the last dimension, on raw row-major fp32 buffers.
#include <cstdint>

namespace ww::kernels::cpu {

// One row of length `cols`: out = exp(x − max x) / Σ exp(x − max x). out may alias inp.
// As in PyTorch, a row whose entries are all −inf gives NaN.
void softmax_forward_row(float* out, const float* inp, int64_t cols);
// One row: dinp = out ⊙ (dout − Σ dout ⊙ out). dinp may alias dout.
void softmax_backward_row(float* dinp, const float* out, const float* dout, int64_t cols);

// The same over `rows` rows, parallel over rows with OpenMP.
void softmax_forward(float* out, const float* inp, int64_t rows, int64_t cols);
void softmax_backward(float* dinp, const float* out, const float* dout, int64_t rows,
                      int64_t cols);

}  // namespace ww::kernels::cpu
