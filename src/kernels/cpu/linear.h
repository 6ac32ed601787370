#pragma once
// CPU reference for the fully connected layer (Hugging Face nn.Linear layout: weight [OC, IC]).
#include <cstdint>

namespace ww::kernels::cpu {

// out[N,OC] = inp[N,IC] · weight[OC,IC]ᵀ + bias[OC] (bias may be null). out must not alias inp/weight.
// out's rows are ld_out >= OC floats apart; only their first OC columns are written.
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t IC, int64_t OC, int64_t ld_out);

// dweight[OC,IC] += doutᵀ · inp;  dbias[OC] += Σ_n dout[n,:];  then dinp[N,IC] = dout · weight.
// Any of dinp, dweight, dbias may be null (skipped). Because dinp is written last it may share memory
// with inp, never with dout or weight. dout's rows are ld_dout >= OC floats apart.
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t IC, int64_t OC, int64_t ld_dout);

// sums[c] += Σ_n x[n,c] for x [N,C] (rows ld >= C floats apart), accumulated in double per column
// (deterministic).
void add_column_sums(float* sums, const float* x, int64_t N, int64_t C, int64_t ld);

}  // namespace ww::kernels::cpu
