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

// A linear layer followed by GPT-2's GELU (tanh form, ops::gelu_tanh_forward):
//   pre[N,OC] = inp · weightᵀ + bias      (kept for the backward; skipped when undefined)
//   out[N,OC] = gelu_tanh(pre)
// On CUDA one cuBLASLt GEMM with the GELU in its epilogue where cuBLASLt offers one (and
// fused_gemm_epilogues() is on), else linear_forward then gelu_tanh_forward: the same values up to
// rounding (the epilogue applies GELU to the fp32 accumulator, before rounding to 16 bits).
// out must not overlap pre, inp or weight.
void linear_gelu_tanh_forward(const Tensor& out, const Tensor& pre, const Tensor& inp, const Tensor& weight,
                              const Tensor& bias);

// The backward of linear_forward(out, act = gelu_tanh(pre), weight, bias) through the GELU:
//   dweight += doutᵀ · act, dbias += Σ_n dout[n,:]   (as linear_backward; either may be undefined)
//   dpre[N,IC] = (dout · weight) ⊙ gelu_tanh'(pre)    (overwritten; GELU's derivative in the
//                                                    GEMM's epilogue on CUDA where offered)
// dpre must not overlap pre, act, dout or weight.
void linear_backward_gelu_tanh(const Tensor& dpre, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                               const Tensor& act, const Tensor& weight, const Tensor& pre);

// Process-wide switch (default true): whether the CUDA linear_*_gelu_tanh ops use cuBLASLt's GELU
// epilogues (false: a GEMM and an elementwise kernel, as on the CPU). For tests and A/B timing.
void set_fused_gemm_epilogues(bool fused);
bool fused_gemm_epilogues();

// Process-wide switch (default true): on CUDA, GEMMs of at least 1e11 FLOPs (a language model's
// head: 316 GFLOP per 4,096-row GPT-2 chunk) time cuBLASLt's first eight candidate algorithms once
// per problem shape, outside CUDA-graph capture, and keep the fastest (a GEMM that accumulates into
// its output, a weight gradient, is timed on a scratch output); smaller GEMMs take its heuristic's
// first choice. The tuned choice can differ between processes, so a tuned GEMM's
// last bits can too; false makes every choice the heuristic's (run-to-run identical).
void set_gemm_autotuning(bool on);
bool gemm_autotuning();

// TF32 for f32 GEMMs on CUDA devices (linear_* and the reference attention's): when allowed, tensor
// cores round their inputs to TF32 (CUBLAS_COMPUTE_32F_FAST_TF32; about 1e-3 relative error, much
// faster). 16-bit GEMMs and the CPU are unaffected. The caller chooses it per call, not the process:
// a Tf32Scope allows (or forbids) it for the GEMMs launched on its thread while it lives, the
// innermost scope winning, and outside every scope it is off. A model opens one from its
// ExecutionOptions around the work it launches, so two models in one process may differ; a CUDA
// graph keeps the choice of the scope it was recorded in.
class Tf32Scope {
 public:
  explicit Tf32Scope(bool allow);
  ~Tf32Scope();
  Tf32Scope(const Tf32Scope&) = delete;
  Tf32Scope& operator=(const Tf32Scope&) = delete;

 private:
  bool previous_;
};
bool allow_tf32();  // what this thread's innermost Tf32Scope says (false outside any)

}  // namespace ww::ops
