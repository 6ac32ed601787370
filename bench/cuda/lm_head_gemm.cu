// The three GEMMs of GPT-2's LM head for one 4,096-row loss chunk, in bf16 with fp32 accumulation,
// called as src/kernels/cuda/linear.cu calls cuBLASLt (column-major, one heuristic algorithm),
// with the vocabulary dimension as it is (50,257), with only the logits' row stride padded to
// 50,304, and with the vocabulary itself padded to 50,304 (zero rows in the weight). It prints
// milliseconds (median of the timed repeats) and TFLOP/s per variant, to show which padding the
// Hopper kernels need. Standalone (nvcc + cuBLASLt only), so a GPU call can build it in seconds:
//   nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a bench/cuda/lm_head_gemm.cu -lcublasLt -o lm_head_gemm
//   ./lm_head_gemm [repeats]        (repeats = 1 under Nsight Compute to read the kernel names)
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "%s: cuBLAS status %d\n", what, int(s));
    std::exit(1);
  }
}

cublasLtHandle_t g_handle;
void* g_workspace;
const size_t kWorkspace = size_t(32) << 20;

// Column-major D[m,n] = op(A)·op(B) + beta·D, A/B bf16, D in d_type, fp32 compute.
// With candidates > 1: every one of cuBLASLt's first `candidates` heuristic algorithms is timed and
// printed (tile and stages ids), and the fastest one's time returned.
float matmul_ms(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void* A, int64_t lda, const void* B,
                int64_t ldb, float beta, void* D, int64_t ldd, cudaDataType_t d_type, int repeats,
                int candidates = 1) {
  cublasLtMatmulDesc_t desc;
  check(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
  cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa), "transa");
  check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb), "transb");
  cublasLtMatrixLayout_t la, lb, ld;
  check(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, ta ? k : m, ta ? m : k, lda), "layout a");
  check(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, tb ? n : k, tb ? k : n, ldb), "layout b");
  check(cublasLtMatrixLayoutCreate(&ld, d_type, m, n, ldd), "layout d");
  cublasLtMatmulPreference_t pref;
  check(cublasLtMatmulPreferenceCreate(&pref), "pref");
  check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspace,
                                             sizeof kWorkspace), "pref workspace");
  std::vector<cublasLtMatmulHeuristicResult_t> h(size_t(std::max(candidates, 1)));
  int found = 0;
  check(cublasLtMatmulAlgoGetHeuristic(g_handle, desc, la, lb, ld, ld, pref, int(h.size()), h.data(), &found),
        "heuristic");
  if (!found) {
    std::fprintf(stderr, "no algorithm\n");
    std::exit(1);
  }
  const float alpha = 1.0f;
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  float best = 0;
  for (int c = 0; c < found; ++c) {
    std::vector<float> times;
    bool ok = true;
    for (int r = 0; r < repeats + 1 && ok; ++r) {  // the first call warms up
      check(cudaEventRecord(start), "record");
      ok = cublasLtMatmul(g_handle, desc, &alpha, A, la, B, lb, &beta, D, ld, D, ld, &h[size_t(c)].algo, g_workspace,
                          kWorkspace, nullptr) == CUBLAS_STATUS_SUCCESS;
      check(cudaEventRecord(stop), "record");
      check(cudaEventSynchronize(stop), "sync");
      float ms = 0;
      check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
      if (r > 0) times.push_back(ms);
    }
    if (!ok || times.empty()) continue;
    std::sort(times.begin(), times.end());
    const float ms = times[times.size() / 2];
    if (candidates > 1) {
      int id = 0, tile = 0, stages = 0;
      size_t written = 0;
      cublasLtMatmulAlgoConfigGetAttribute(&h[size_t(c)].algo, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, &written);
      cublasLtMatmulAlgoConfigGetAttribute(&h[size_t(c)].algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile,
                                           &written);
      cublasLtMatmulAlgoConfigGetAttribute(&h[size_t(c)].algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages,
                                           sizeof stages, &written);
      std::printf("|   candidate %d: algo %d, tile %d, stages %d, waves %.2f | | %.3f | %.0f |\n", c, id, tile, stages,
                  double(h[size_t(c)].wavesCount), double(ms), 2.0 * double(m) * double(n) * double(k) / (ms * 1e9));
    }
    if (best == 0 || ms < best) best = ms;
  }
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatmulDescDestroy(desc);
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 20;
  const int64_t N = 4096, C = 768, V = 50257, Vp = 50304;
  check(cublasLtCreate(&g_handle), "cublasLtCreate");
  check(cudaMalloc(&g_workspace, kWorkspace), "workspace");
  void *x, *w, *logits, *dx, *dw;
  check(cudaMalloc(&x, size_t(N * C) * 2), "x");
  check(cudaMalloc(&w, size_t(Vp * C) * 2), "w");
  check(cudaMalloc(&logits, size_t(N * Vp) * 2), "logits");
  check(cudaMalloc(&dx, size_t(N * C) * 2), "dx");
  check(cudaMalloc(&dw, size_t(Vp * C) * 4), "dw");
  check(cudaMemset(x, 0, size_t(N * C) * 2), "memset");
  check(cudaMemset(w, 0, size_t(Vp * C) * 2), "memset");
  check(cudaMemset(logits, 0, size_t(N * Vp) * 2), "memset");
  check(cudaMemset(dw, 0, size_t(Vp * C) * 4), "memset");
  struct Variant {
    const char* name;
    int64_t vocab, ld;  // GEMM vocabulary size and the logits' row stride
  };
  const Variant variants[] = {{"V 50257, row stride 50257", V, V},
                              {"V 50257, row stride 50304", V, Vp},
                              {"V 50304 (zero rows), stride 50304", Vp, Vp}};
  std::printf("| variant | GEMM | ms | TFLOP/s |\n| --- | --- | --- | --- |\n");
  for (const Variant& v : variants) {
    const double flops = 2.0 * double(N) * double(v.vocab) * double(C);
    // logitsᵀ[vocab, N] = W[vocab, C] · xᵀ (linear_forward).
    float fwd = matmul_ms(true, false, v.vocab, N, C, w, C, x, C, 0.0f, logits, v.ld, CUDA_R_16BF, repeats);
    // dWᵀ[C, vocab] += xᵀ · dlogits (linear_backward, dweight in f32).
    float dwt = matmul_ms(false, true, C, v.vocab, N, x, C, logits, v.ld, 1.0f, dw, C, CUDA_R_32F, repeats);
    // dxᵀ[C, N] = Wᵀ · dlogitsᵀ (linear_backward, dinp).
    float dxt = matmul_ms(false, false, C, N, v.vocab, w, C, logits, v.ld, 0.0f, dx, C, CUDA_R_16BF, repeats);
    const char* names[] = {"forward (logits)", "dW", "dX"};
    const float ms[] = {fwd, dwt, dxt};
    for (int g = 0; g < 3; ++g)
      std::printf("| %s | %s | %.3f | %.0f |\n", v.name, names[g], ms[g], ms[g] > 0 ? flops / (ms[g] * 1e9) : 0.0);
  }
  // The weight gradient's other forms at the padded stride (each line the best of up to 32 of
  // cuBLASLt's candidates, every candidate listed): f32 accumulating (what wattwise runs), f32
  // overwriting, and bf16 overwriting (what PyTorch's autocast computes before adding to .grad).
  void* dw16;
  check(cudaMalloc(&dw16, size_t(Vp * C) * 2), "dw16");
  const double flops = 2.0 * double(N) * double(V) * double(C);
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
    const float ms = matmul_ms(false, true, C, V, N, x, C, logits, Vp, f.beta, f.d, C, f.type, repeats, 32);
    std::printf("| %s | best | %.3f | %.0f |\n", f.name, ms, ms > 0 ? flops / (ms * 1e9) : 0.0);
  }
  // What linear_backward runs (src/kernels/cuda/linear.cu): the f32 accumulating weight gradient
  // in two GEMMs, the vocabulary rounded down to 128 columns and then the rest, each the
  // heuristic's first choice.
  const int64_t whole = V / 128 * 128;
  const float main_ms = matmul_ms(false, true, C, whole, N, x, C, logits, Vp, 1.0f, dw, C, CUDA_R_32F, repeats);
  const float rest_ms = matmul_ms(false, true, C, V - whole, N, x, C, static_cast<char*>(logits) + whole * 2, Vp,
                                  1.0f, static_cast<float*>(dw) + whole * C, C, CUDA_R_32F, repeats);
  std::printf("| dW f32, beta 1, %lld + %lld columns | split | %.3f (%.3f + %.3f) | %.0f |\n", (long long)whole,
              (long long)(V - whole), double(main_ms + rest_ms), double(main_ms), double(rest_ms),
              flops / (double(main_ms + rest_ms) * 1e9));
  return 0;
}
