// Timing cuBLASLt GEMMs as src/kernels/cuda/linear.cu calls them (column-major, fp32 accumulation),
// for the standalone GPU probes in dev/cuda (nvcc + cuBLASLt only, so a GPU call can build one in
// seconds): one heuristic algorithm, or every one of its first N candidates with its ids.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace lt_bench {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}
inline void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "%s: cuBLAS status %d\n", what, int(s));
    std::exit(1);
  }
}

struct Context {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = size_t(32) << 20;
  Context() {
    check(cublasLtCreate(&handle), "cublasLtCreate");
    check(cudaMalloc(&workspace, workspace_bytes), "workspace");
  }
};

// A device buffer of `bytes`, zeroed.
inline void* zeros(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  check(cudaMemset(p, 0, bytes), "cudaMemset");
  return p;
}

// What the epilogue does: kind, bias pointer (BIAS/GELU_BIAS: read; BGRAD*: written), aux (GELU_AUX:
// written; DGELU: read) with its leading dimension.
struct Epilogue {
  cublasLtEpilogue_t kind = CUBLASLT_EPILOGUE_DEFAULT;
  void* bias = nullptr;
  void* aux = nullptr;
  int64_t aux_ld = 0;
};

struct Gemm {
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0;
  const void* A = nullptr;
  int64_t lda = 0;
  const void* B = nullptr;
  int64_t ldb = 0;
  float beta = 0.0f;
  void* D = nullptr;
  int64_t ldd = 0;
  cudaDataType_t ab_type = CUDA_R_16BF, d_type = CUDA_R_16BF;
  Epilogue epilogue;
  double flops() const { return 2.0 * double(m) * double(n) * double(k); }
};

// Milliseconds (median of `repeats` after one warm-up) of the heuristic's first choice, or with
// candidates > 1 the fastest of its first `candidates`, each printed as a Markdown row (config,
// tile and stages ids). 0 when cuBLASLt offers nothing.
inline float time_gemm(const Context& ctx, const Gemm& g, int repeats, int candidates = 1) {
  cublasLtMatmulDesc_t desc;
  check(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
  const cublasOperation_t opa = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa), "transa");
  check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb), "transb");
  if (g.epilogue.kind != CUBLASLT_EPILOGUE_DEFAULT)
    check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &g.epilogue.kind,
                                         sizeof g.epilogue.kind), "epilogue");
  if (g.epilogue.bias)
    check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.epilogue.bias,
                                         sizeof g.epilogue.bias), "bias");
  if (g.epilogue.aux) {
    check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g.epilogue.aux,
                                         sizeof g.epilogue.aux), "aux");
    check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &g.epilogue.aux_ld,
                                         sizeof g.epilogue.aux_ld), "aux ld");
  }
  cublasLtMatrixLayout_t la, lb, ld;
  check(cublasLtMatrixLayoutCreate(&la, g.ab_type, g.ta ? g.k : g.m, g.ta ? g.m : g.k, g.lda), "layout a");
  check(cublasLtMatrixLayoutCreate(&lb, g.ab_type, g.tb ? g.n : g.k, g.tb ? g.k : g.n, g.ldb), "layout b");
  check(cublasLtMatrixLayoutCreate(&ld, g.d_type, g.m, g.n, g.ldd), "layout d");
  cublasLtMatmulPreference_t pref;
  check(cublasLtMatmulPreferenceCreate(&pref), "pref");
  check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ctx.workspace_bytes,
                                             sizeof ctx.workspace_bytes), "pref workspace");
  std::vector<cublasLtMatmulHeuristicResult_t> h(size_t(std::max(candidates, 1)));
  int found = 0;
  if (cublasLtMatmulAlgoGetHeuristic(ctx.handle, desc, la, lb, ld, ld, pref, int(h.size()), h.data(), &found) !=
      CUBLAS_STATUS_SUCCESS)
    found = 0;
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
      ok = cublasLtMatmul(ctx.handle, desc, &alpha, g.A, la, g.B, lb, &g.beta, g.D, ld, g.D, ld, &h[size_t(c)].algo,
                          ctx.workspace, ctx.workspace_bytes, nullptr) == CUBLAS_STATUS_SUCCESS;
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
                  double(h[size_t(c)].wavesCount), double(ms), g.flops() / (double(ms) * 1e9));
    }
    if (best == 0 || ms < best) best = ms;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatmulDescDestroy(desc);
  return best;
}

// One Markdown row: name, what, milliseconds, TFLOP/s.
inline void row(const char* name, const char* what, float ms, double flops) {
  std::printf("| %s | %s | %.3f | %.0f |\n", name, what, double(ms), ms > 0 ? flops / (double(ms) * 1e9) : 0.0);
}

}  // namespace lt_bench
