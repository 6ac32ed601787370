#pragma once
// CUDA fully connected layer (Hugging Face nn.Linear layout: weight [OC, IC]) through cuBLASLt,
// on device pointers, launched on kernels::cuda::stream(). Same contract as kernels/cpu/linear.h.
#include <cstdint>

#include "kernels/cuda/blas.h"

namespace ww::kernels::cuda {

// out[N,OC] = inp[N,IC] · weight[OC,IC]ᵀ + bias[OC] (bias may be null; added as the GEMM's
// epilogue when cuBLASLt allows it). out must not alias inp/weight.
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t IC, int64_t OC, GemmPrecision precision = GemmPrecision::Fp32);

// dweight[OC,IC] += doutᵀ · inp;  dbias[OC] += Σ_n dout[n,:];  then dinp[N,IC] = dout · weight.
// Any of dinp, dweight, dbias may be null. dinp is written last, so it may share memory with inp.
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t IC, int64_t OC,
                     GemmPrecision precision = GemmPrecision::Fp32);

// sums[c] += Σ_n x[n,c] for x [N,C]; each column accumulated in double in a fixed order
// (deterministic, no atomics).
void add_column_sums(float* sums, const float* x, int64_t N, int64_t C);

}  // namespace ww::kernels::cuda
