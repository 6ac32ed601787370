#pragma once
// Softmax over the last dimension, forward and backward, one kernel per device (cpu/softmax.cpp,
// cuda/softmax.cu).
#include <cstdint>

#include "wattwise/core/dtype.h"

namespace ww::kernels::cpu {

// The CPU reference on row-major fp32 buffers.
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

#ifdef WW_HAVE_CUDA
namespace ww::kernels::cuda {

// One block per row; f32, f16 or bf16 in `dtype`, math in float. out may alias inp; dinp may alias dout.
void softmax_forward(void* out, const void* inp, int64_t rows, int64_t cols, DType dtype);
void softmax_backward(void* dinp, const void* out, const void* dout, int64_t rows, int64_t cols, DType dtype);

}  // namespace ww::kernels::cuda
#endif
