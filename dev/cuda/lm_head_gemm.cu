// The three GEMMs of GPT-2's LM head for one 4,096-row loss chunk, in bf16 with fp32 accumulation,
// called as src/kernels/cuda/linear.cu calls cuBLASLt (column-major, one heuristic algorithm),
// with the vocabulary dimension as it is (50,257), with only the logits' row stride padded to
// 50,304, and with the vocabulary itself padded to 50,304 (zero rows in the weight); then the weight
// gradient's forms with every candidate, and the split linear_backward runs. It prints
// milliseconds (median of the timed repeats) and TFLOP/s per variant. Standalone (nvcc + cuBLASLt
// only), so a GPU call can build it in seconds:
//   nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a dev/cuda/lm_head_gemm.cu -lcublasLt -o lm_head_gemm
//   ./lm_head_gemm [repeats]        (repeats = 1 under Nsight Compute to read the kernel names)
#include <cstdlib>

#include "lt_bench.h"

using namespace lt_bench;

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 20;
  const int64_t N = 4096, C = 768, V = 50257, Vp = 50304;
  const lt_bench::Context ctx;
  void* x = zeros(size_t(N * C) * 2);
  void* w = zeros(size_t(Vp * C) * 2);
  void* logits = zeros(size_t(N * Vp) * 2);
  void* dx = zeros(size_t(N * C) * 2);
  void* dw = zeros(size_t(Vp * C) * 4);
  void* dw16 = zeros(size_t(Vp * C) * 2);
  struct Variant {
    const char* name;
    int64_t vocab, ld;  // GEMM vocabulary size and the logits' row stride
  };
  const Variant variants[] = {{"V 50257, row stride 50257", V, V},
                              {"V 50257, row stride 50304", V, Vp},
                              {"V 50304 (zero rows), stride 50304", Vp, Vp}};
  std::printf("| variant | GEMM | ms | TFLOP/s |\n| --- | --- | --- | --- |\n");
  const double flops = 2.0 * double(N) * double(V) * double(C);
  for (const Variant& v : variants) {
    // logitsᵀ[vocab, N] = W[vocab, C] · xᵀ (linear_forward).
    Gemm fwd{true, false, v.vocab, N, C, w, C, x, C, 0.0f, logits, v.ld};
    // dWᵀ[C, vocab] += xᵀ · dlogits (linear_backward, dweight in f32).
    Gemm dwt{false, true, C, v.vocab, N, x, C, logits, v.ld, 1.0f, dw, C};
    dwt.d_type = CUDA_R_32F;
    // dxᵀ[C, N] = Wᵀ · dlogitsᵀ (linear_backward, dinp).
    Gemm dxt{false, false, C, N, v.vocab, w, C, logits, v.ld, 0.0f, dx, C};
    row(v.name, "forward (logits)", time_gemm(ctx, fwd, repeats), flops);
    row(v.name, "dW", time_gemm(ctx, dwt, repeats), flops);
    row(v.name, "dX", time_gemm(ctx, dxt, repeats), flops);
  }
  // The weight gradient's other forms at the padded stride (each line the best of up to 32 of
  // cuBLASLt's candidates, every candidate listed): f32 accumulating (what wattwise ran), f32
  // overwriting, and bf16 overwriting (what PyTorch's autocast computes before adding to .grad).
  struct Form {
    const char* name;
    float beta;
    void* d;
    cudaDataType_t type;
  };
  const Form forms[] = {{"dW f32, beta 1", 1.0f, dw, CUDA_R_32F},
                        {"dW f32, beta 0", 0.0f, dw, CUDA_R_32F},
                        {"dW bf16, beta 0", 0.0f, dw16, CUDA_R_16BF}};
  for (const Form& f : forms) {
    std::printf("| %s, every candidate | | | |\n", f.name);
    Gemm g{false, true, C, V, N, x, C, logits, Vp, f.beta, f.d, C};
    g.d_type = f.type;
    row(f.name, "best", time_gemm(ctx, g, repeats, 32), flops);
  }
  // What linear_backward runs (src/kernels/cuda/linear.cu): the f32 accumulating weight gradient
  // in two GEMMs, the vocabulary rounded down to 128 columns and then the rest, each the
  // heuristic's first choice.
  const int64_t whole = V / 128 * 128;
  Gemm main_part{false, true, C, whole, N, x, C, logits, Vp, 1.0f, dw, C};
  Gemm rest{false, true, C, V - whole, N, x, C, static_cast<char*>(logits) + whole * 2, Vp, 1.0f,
            static_cast<float*>(dw) + whole * C, C};
  main_part.d_type = rest.d_type = CUDA_R_32F;
  const float main_ms = time_gemm(ctx, main_part, repeats), rest_ms = time_gemm(ctx, rest, repeats);
  std::printf("| dW f32, beta 1, %lld + %lld columns | split | %.3f (%.3f + %.3f) | %.0f |\n", (long long)whole,
              (long long)(V - whole), double(main_ms + rest_ms), double(main_ms), double(rest_ms),
              flops / (double(main_ms + rest_ms) * 1e9));
  return 0;
}
