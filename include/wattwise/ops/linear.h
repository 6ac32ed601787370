#pragma once
#include "wattwise/core/tensor.h"

namespace ww::ops {

// Dtypes: inp, out, weight, bias, dout and dinp share one activation dtype: f32, or on a cuda
// device also f16 or bf16 (the model passes a 16-bit working copy of its weights). dweight and
// dbias are ALWAYS f32 (fp32 master gradients). GEMMs accumulate in fp32 (cuBLASLt
// CUBLAS_COMPUTE_32F with 16-bit A/B); dbias sums columns in double.
// An f32 argument next to 16-bit ones (e.g. an f32 gradient arriving at a 16-bit classifier head)
// is an error: the caller converts it with ops::cast (include/wattwise/ops/elementwise.h).

// out[N,OC] = inp[N,IC] · weight[OC,IC]ᵀ + bias[OC]   (Hugging Face nn.Linear layout; bias optional)
void linear_forward(const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias);

// dinp[N,IC] = dout · weight            (overwritten; skipped when undefined)
// dweight[OC,IC] += doutᵀ · inp         (accumulated)
// dbias[OC] += Σ_n dout[n,:]            (accumulated; skipped when undefined)
void linear_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                     const Tensor& dout, const Tensor& inp, const Tensor& weight);

// The same without bias for outputs in padded rows: out (dout) is [N, L] with L >= OC, and only
// out[:, :OC] is written (read). GPT-2's LM head keeps its logits in rows of a multiple of 64
// elements: with the vocabulary's 50,257 columns the rows would be an odd number of bytes apart,
// which leaves cuBLASLt only its unvectorised kernels (3× slower for those GEMMs on a H200).
void linear_forward_padded(const Tensor& out, const Tensor& inp, const Tensor& weight);
void linear_backward_padded(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                            const Tensor& weight);

// Process-wide switch (default false): when true, f32 GEMMs on CUDA devices (linear_* and the
// reference attention's) let tensor cores round their inputs to TF32
// (CUBLAS_COMPUTE_32F_FAST_TF32; about 1e-3 relative error, much faster). 16-bit GEMMs and the
// CPU are unaffected. Read at every call, so it may change between steps.
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace ww::ops
