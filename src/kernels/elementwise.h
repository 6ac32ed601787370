#pragma once
// Residual adds, scaling, token pooling (select one token, masked mean) and dtype casts, one kernel
// file per device (cpu/elementwise.cpp, cuda/elementwise.cu).
#include <cstdint>

#include "kernels/dropout.h"
#include "wattwise/core/dtype.h"

namespace ww::kernels::cpu {

// The CPU reference, on fp32 buffers.
// out = a + b over n floats; out may alias a or b.
void residual_forward(float* out, const float* a, const float* b, int64_t n);
void add_inplace(float* acc, const float* x, int64_t n);
void scale_inplace(float* x, float factor, int64_t n);

// out[b,:] = inp[b,index,:] for inp [B,T,C].
void select_token_forward(float* out, const float* inp, int64_t B, int64_t T, int64_t C, int64_t index);
// dinp[b,index,:] += dout[b,:]; other positions untouched.
void select_token_backward(float* dinp, const float* dout, int64_t B, int64_t T, int64_t C, int64_t index);

// Throws ww::Error naming (b, t) and the value when a mask entry is neither 0 nor 1.
void check_binary_mask(const int32_t* mask, int64_t B, int64_t T);

// out[b,:] = Σ_t mask[b,t]·inp[b,t,:] / Σ_t mask[b,t] (sums in double). A row with no real token
// gets zeros (there is nothing to average, and zeros keep the result finite).
void masked_mean_forward(float* out, const float* inp, const int32_t* mask, int64_t B, int64_t T, int64_t C);
// dinp[b,t,:] = mask[b,t]·dout[b,:] / Σ_t mask[b,t] (overwritten; zeros for a row with no real token).
void masked_mean_backward(float* dinp, const float* dout, const int32_t* mask, int64_t B, int64_t T, int64_t C);

// out = inp converted between f32, f16 and bf16 through float (exact from 16 bits; rounded to
// nearest even to 16 bits); same dtype copies, and the same memory is left as it is.
void cast(void* out, DType out_dtype, const void* inp, DType inp_dtype, int64_t n);

}  // namespace ww::kernels::cpu

#ifdef WW_HAVE_CUDA
namespace ww::kernels::cuda {

// Activations (void*) are f32, f16 or bf16, all of one call in `dtype`; math in float (sums in
// double where the CPU reference sums in double). Launched on stream().

// out = a + dropout(b); b is not written (out may alias a or b).
void residual_forward(void* out, const void* a, const void* b, int64_t n, DType dtype,
                      const ElementDropoutArgs& b_dropout = {});
void add_inplace(void* acc, const void* x, int64_t n, DType dtype);
void scale_inplace(void* x, float factor, int64_t n, DType dtype);

void select_token_forward(void* out, const void* inp, int64_t B, int64_t T, int64_t C, int64_t index, DType dtype);
void select_token_backward(void* dinp, const void* dout, int64_t B, int64_t T, int64_t C, int64_t index,
                           DType dtype);

// A mask value other than 0/1 is recorded as an input error (kernels/cuda/input_errors.h) and
// counted as a real token.
void masked_mean_forward(void* out, const void* inp, const int32_t* mask, int64_t B, int64_t T, int64_t C,
                         DType dtype);
void masked_mean_backward(void* dinp, const void* dout, const int32_t* mask, int64_t B, int64_t T, int64_t C,
                          DType dtype);

// out = inp converted between f32, f16 and bf16 (round-to-nearest-even); same dtype copies.
// out and inp must not overlap unless they are the same dtype and pointer.
void cast(void* out, DType out_dtype, const void* inp, DType inp_dtype, int64_t n);

}  // namespace ww::kernels::cuda
#endif
