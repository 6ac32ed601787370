#pragma once
#include "wattwise/core/tensor.h"
#include "wattwise/ops/dropout.h"

namespace ww::ops {

// Dtypes: inp, out, dout, dinp (and a, b, sum) are activations: f32, or on a cuda device also f16
// or bf16, one dtype per call. weight, bias, dweight, dbias, mean and rstd are ALWAYS f32.
// Statistics: in double on the CPU; in float on CUDA for every dtype (16-bit rows are widened on
// load), within the fp32 tolerance of the CPU's.

// out[N,C] = (inp - mean) · rstd · weight + bias, per row; saves mean[N] and rstd[N] for backward.
// Biased variance, as torch.nn.LayerNorm. out may alias inp.
void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& weight, const Tensor& bias, float eps);

// sum = a + b (saved for backward, in the activation dtype), out = LayerNorm(sum). On CUDA one
// kernel (one warp per row); on the CPU residual_forward's and layernorm_forward's kernels. In f32
// the results are those of residual_forward followed by layernorm_forward (same statistics code).
// sum may be a or b itself; out must not overlap a, b or sum. sum may be undefined (Tensor()): the sum
// is not kept (inference; on CUDA the kernel then writes a quarter fewer bytes), out the same bits.
// With b_dropout, sum = a + dropout(b) (the bits of dropout_forward into b, then this op; b itself
// is not written).
void residual_layernorm_forward(const Tensor& out, const Tensor& sum, const Tensor& mean,
                                const Tensor& rstd, const Tensor& a, const Tensor& b,
                                const Tensor& weight, const Tensor& bias, float eps,
                                const ElementDropout& b_dropout = {});

// dinp overwritten (may not alias dout), or, with accumulate = true, added to (dinp += ...: folds a
// residual branch's gradient into the LayerNorm backward); dweight, dbias accumulated.
void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& inp, const Tensor& weight,
                        const Tensor& mean, const Tensor& rstd, bool accumulate = false,
                        const Tensor& workspace = Tensor());

// Bytes of `workspace` layernorm_backward uses on a cuda device for N rows of C (the per-chunk
// partial sums of dweight/dbias). Given a workspace at least this large, the call allocates
// nothing (a model passes one from its activation arena, so a training step never allocates);
// without one it takes a stream-ordered temporary buffer. The CPU ignores it.
int64_t layernorm_backward_workspace_bytes(int64_t N, int64_t C);

}  // namespace ww::ops
