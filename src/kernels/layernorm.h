#pragma once
// LayerNorm over the last dimension of [N, C] (as torch.nn.LayerNorm), forward, residual + forward
// and backward, one kernel file per device (cpu/layernorm.cpp, cuda/layernorm.cu).
#include <cstdint>

#include "kernels/dropout.h"
#include "wattwise/core/dtype.h"

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

#ifdef WW_HAVE_CUDA
namespace ww::kernels::cuda {

// inp/out/dout/dinp (and a, b, sum) in `dtype` (f32, f16 or bf16); weight, bias, their gradients,
// mean and rstd float. Launched on stream().

// One warp per row (the row in registers up to C = 1024), statistics in float (two passes: mean,
// then squared deviations), 16-byte loads and stores where C and the pointers allow; within the
// fp32 tolerance of the CPU's double statistics. out may alias inp.
void layernorm_forward(void* out, float* mean, float* rstd, const void* inp, DType dtype, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps);

// sum = a + dropout(b) (rounded to `dtype`), out = LayerNorm(sum): one kernel, the code of
// layernorm_forward. sum may alias a or b exactly; out must not overlap them. b is not written.
// sum null: not stored (inference), out the same bits.
void residual_layernorm_forward(void* out, void* sum, float* mean, float* rstd, const void* a, const void* b,
                                DType dtype, const float* weight, const float* bias, int64_t N, int64_t C,
                                float eps, const ElementDropoutArgs& b_dropout = {});

// dinp: one warp per row; overwritten, or added to when accumulate. dweight/dbias: per-(32-row chunk,
// column) partial sums in float, then a second kernel adds the chunks in order (deterministic, no
// float atomics). dinp/dweight/dbias may each be null.
// workspace: null (a stream-ordered temporary is taken) or 2·ceil(N/32)·C floats.
void layernorm_backward(void* dinp, float* dweight, float* dbias, const void* dout, const void* inp, DType dtype,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        bool accumulate, float* workspace = nullptr);

}  // namespace ww::kernels::cuda
#endif
