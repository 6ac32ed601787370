// GPT-2 124M's MLP GEMMs with cuBLASLt epilogues, at its training shape (16 × 1024 tokens, 768 →
// 3,072 → 768, bf16, fp32 accumulation), called as src/kernels/cuda/linear.cu calls them: the
// forward with GELU, bias and the pre-activation kept (GELU_AUX_BIAS, what linear_gelu_tanh_forward
// runs) against the bias alone, and the projection's input gradient times GELU' (DGELU, what
// linear_dinp_gelu_tanh runs) against DGELU_BGRAD (the fc bias gradient in the same epilogue) and
// no epilogue. Each line is the best of up to 32 of cuBLASLt's candidates, every candidate listed:
// whether a faster kernel than the heuristic's first choice exists (these GEMMs are below
// wattwise's 1e11-FLOP autotuning threshold, and aux epilogues are never tuned). Standalone:
//   nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a dev/cuda/mlp_epilogue_gemm.cu -lcublasLt -o mlp_epilogue_gemm
//   ./mlp_epilogue_gemm [repeats]
#include <cstdlib>

#include "lt_bench.h"

using namespace lt_bench;

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 10;
  const int64_t N = 16 * 1024, C = 768, I = 3072;
  const lt_bench::Context ctx;
  void* ln2_out = zeros(size_t(N * C) * 2);    // the fc GEMM's input [N, C]
  void* fc_w = zeros(size_t(I * C) * 2);       // [I, C]
  void* fc_b = zeros(size_t(I) * 4);           // bf16 for the forward; f32-sized for BGRAD
  void* fc_pre = zeros(size_t(N * I) * 2);     // the GELU input, kept for backward [N, I]
  void* fc_act = zeros(size_t(N * I) * 2);     // GELU's output [N, I]
  void* proj_w = zeros(size_t(C * I) * 2);     // [C, I]
  void* d_proj_out = zeros(size_t(N * C) * 2); // the projection's output gradient [N, C]
  void* d_fc = zeros(size_t(N * I) * 2);       // the fc pre-activation's gradient [N, I]
  const double flops = 2.0 * double(N) * double(C) * double(I);
  std::printf("| GEMM | epilogue | ms | TFLOP/s |\n| --- | --- | --- | --- |\n");

  // fc_actᵀ[I, N] = W_fc · ln2_outᵀ (+ bias, GELU; preᵀ kept with ld I).
  struct Forward {
    const char* name;
    cublasLtEpilogue_t kind;
    bool aux;
  };
  for (const Forward& f : {Forward{"GELU_AUX_BIAS (wattwise)", CUBLASLT_EPILOGUE_GELU_AUX_BIAS, true},
                           Forward{"BIAS", CUBLASLT_EPILOGUE_BIAS, false}}) {
    std::printf("| forward fc, every candidate | %s | | |\n", f.name);
    Gemm g{true, false, I, N, C, fc_w, C, ln2_out, C, 0.0f, fc_act, I};
    g.epilogue = Epilogue{f.kind, fc_b, f.aux ? fc_pre : nullptr, f.aux ? I : 0};
    row("forward fc", f.name, time_gemm(ctx, g, repeats, 32), flops);
  }
  // d_fcᵀ[I, N] = W_projᵀ · d_proj_outᵀ, times GELU'(preᵀ) (DGELU; BGRAD also sums d_fc's rows into
  // the fc bias gradient).
  struct Backward {
    const char* name;
    cublasLtEpilogue_t kind;
  };
  for (const Backward& b : {Backward{"DGELU (wattwise)", CUBLASLT_EPILOGUE_DGELU},
                            Backward{"DGELU_BGRAD", CUBLASLT_EPILOGUE_DGELU_BGRAD},
                            Backward{"none", CUBLASLT_EPILOGUE_DEFAULT}}) {
    std::printf("| dX of the projection, every candidate | %s | | |\n", b.name);
    Gemm g{false, false, I, N, C, proj_w, I, d_proj_out, C, 0.0f, d_fc, I};
    if (b.kind != CUBLASLT_EPILOGUE_DEFAULT)
      g.epilogue = Epilogue{b.kind, b.kind == CUBLASLT_EPILOGUE_DGELU_BGRAD ? fc_b : nullptr, fc_pre, I};
    row("dX of the projection", b.name, time_gemm(ctx, g, repeats, 32), flops);
  }
  return 0;
}
