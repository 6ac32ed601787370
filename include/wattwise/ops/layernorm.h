#pragma once
#include "wattwise/core/tensor.h"

namespace ww::ops {

// out[N,C] = (inp - mean) · rstd · weight + bias, per row; saves mean[N] and rstd[N] for backward.
// Biased variance, as torch.nn.LayerNorm.
void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& weight, const Tensor& bias, float eps);

// dinp overwritten (may not alias dout); dweight, dbias accumulated.
void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& inp, const Tensor& weight,
                        const Tensor& mean, const Tensor& rstd);

// TEMP(lead): declared ahead of the mixed-precision kernels branch.
void residual_layernorm_forward(const Tensor& out, const Tensor& sum, const Tensor& mean,
                                const Tensor& rstd, const Tensor& a, const Tensor& b,
                                const Tensor& weight, const Tensor& bias, float eps);

}  // namespace ww::ops
