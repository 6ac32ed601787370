#pragma once
// CPU reference for residual adds, scaling and token pooling.
#include <cstdint>

namespace ww::kernels::cpu {

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

}  // namespace ww::kernels::cpu
