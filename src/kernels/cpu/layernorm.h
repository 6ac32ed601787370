#pragma once
// CPU reference for LayerNorm over the last dimension of [N, C] (as torch.nn.LayerNorm).
#include <cstdint>

namespace ww::kernels::cpu {

// mean[n], rstd[n] = 1/sqrt(var + eps) with the biased variance (both computed in double, stored
// as float); out[n,c] = (inp[n,c] − mean) · rstd · weight[c] + bias[c]. out may alias inp.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps);

// dinp = rstd · (g − mean_c(g) − x̂ · mean_c(g·x̂)) with g = dout·weight, x̂ = (inp − mean)·rstd
// (overwritten, or added to when accumulate; must not alias dout). dweight += Σ_n dout·x̂,
// dbias += Σ_n dout (accumulated; either may be null).
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        bool accumulate = false);

}  // namespace ww::kernels::cpu
