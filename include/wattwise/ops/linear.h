#pragma once
#include "wattwise/core/tensor.h"

namespace ww::ops {

// out[N,OC] = inp[N,IC] · weight[OC,IC]ᵀ + bias[OC]   (Hugging Face nn.Linear layout; bias optional)
void linear_forward(const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias);

// dinp[N,IC] = dout · weight            (overwritten; skipped when undefined)
// dweight[OC,IC] += doutᵀ · inp         (accumulated)
// dbias[OC] += Σ_n dout[n,:]            (accumulated; skipped when undefined)
void linear_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                     const Tensor& dout, const Tensor& inp, const Tensor& weight);

// TEMP(lead): declared ahead of the mixed-precision kernels branch.
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace ww::ops
