#pragma once
// The fully connected layer (Hugging Face nn.Linear layout: weight [OC, IC]), forward and backward,
// one kernel file per device (cpu/linear.cpp through OpenBLAS, cuda/linear.cu through cuBLASLt).
#include <cstdint>

#include "wattwise/core/dtype.h"
#ifdef WW_HAVE_CUDA
#include "kernels/cuda/blas.h"
#endif

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

#ifdef WW_HAVE_CUDA
namespace ww::kernels::cuda {

// Device pointers, launched on kernels::cuda::stream(). Activations, weight and bias share `dtype`
// (f32, f16 or bf16); GEMMs accumulate in fp32 (CUBLAS_COMPUTE_32F; CUBLAS_COMPUTE_32F_FAST_TF32 for
// f32 with GemmPrecision::Tf32).

// out[N,OC] = inp[N,IC] · weight[OC,IC]ᵀ + bias[OC] (bias may be null; added as the GEMM's
// epilogue when cuBLASLt allows it). out must not alias inp/weight. out's rows are ld_out >= OC
// elements apart and only their first OC columns are written: a row stride that is a multiple of
// 16 bytes keeps cuBLASLt's vectorised kernels when OC is odd (GPT-2's vocabulary of 50,257).
void linear_forward(void* out, const void* inp, const void* weight, const void* bias, DType dtype, int64_t N,
                    int64_t IC, int64_t OC, int64_t ld_out, GemmPrecision precision = GemmPrecision::Fp32);

// dweight[OC,IC] += doutᵀ · inp;  dbias[OC] += Σ_n dout[n,:];  then dinp[N,IC] = dout · weight.
// dweight and dbias are f32 whatever `dtype` is (16-bit A/B with an f32 C/D GEMM; column sums in
// double). Any of dinp, dweight, dbias may be null. dinp is written last, so it may share memory
// with inp. dout's rows are ld_dout >= OC elements apart.
void linear_backward(void* dinp, float* dweight, float* dbias, const void* dout, const void* inp,
                     const void* weight, DType dtype, int64_t N, int64_t IC, int64_t OC, int64_t ld_dout,
                     GemmPrecision precision = GemmPrecision::Fp32);

// out[N,OC] = gelu_tanh(inp · weightᵀ + bias) in one cuBLASLt GEMM (GELU epilogue); pre (may be
// null) gets inp · weightᵀ + bias, the GELU input a backward pass needs. Rows are OC elements
// apart. Returns false, having written nothing, when cuBLASLt offers no fused kernel for these
// operands: the caller then runs linear_forward and gelu_tanh_forward.
bool linear_gelu_tanh_forward(void* out, void* pre, const void* inp, const void* weight, const void* bias,
                              DType dtype, int64_t N, int64_t IC, int64_t OC,
                              GemmPrecision precision = GemmPrecision::Fp32);

// dpre[N,IC] = (dout · weight) ⊙ gelu_tanh'(pre): linear_backward's dinp for a layer whose input
// was gelu_tanh(pre), with the GELU derivative in the GEMM's epilogue. dpre must not alias pre.
// Returns false, having written nothing, when cuBLASLt offers no fused kernel.
bool linear_dinp_gelu_tanh(void* dpre, const void* dout, const void* weight, const void* pre, DType dtype,
                           int64_t N, int64_t IC, int64_t OC, int64_t ld_dout,
                           GemmPrecision precision = GemmPrecision::Fp32);

// Process-wide switch (default true): whether GEMMs of 1e11 FLOPs and more (a language model's
// head) time cuBLASLt's first few candidate algorithms once per problem and keep the fastest,
// instead of taking its heuristic's first choice. See ops::set_gemm_autotuning.
void set_gemm_autotuning(bool on);
bool gemm_autotuning();

// sums[c] += Σ_n x[n,c] for x [N,C] in `dtype` (rows ld >= C elements apart); each column
// accumulated in double in a fixed order (deterministic, no atomics).
void add_column_sums(float* sums, const void* x, DType dtype, int64_t N, int64_t C, int64_t ld);

}  // namespace ww::kernels::cuda
#endif
