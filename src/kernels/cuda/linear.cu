// Row-major ↔ column-major: cuBLASLt is column-major, our tensors row-major. A row-major [R, C]
// buffer read column-major is its transpose [C, R] with leading dimension C, so every product is
// computed transposed: out[N,OC] = inp·Wᵀ becomes outᵀ[OC,N] = W·inpᵀ, and so on (see each call).
#include "kernels/linear.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "kernels/cuda/device_util.cuh"

namespace ww::kernels::cuda {

namespace {

// Largest power of two (at most 256) dividing the address: cuBLASLt assumes 256-byte aligned
// operands unless told otherwise, and our tensors may be views at any element offset.
uint32_t alignment_of(const void* p) {
  auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 256;
  while (alignment > 2 && address % alignment != 0) alignment /= 2;
  return alignment;
}

cudaDataType_t cuda_data_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: fail("linear (CUDA): no GEMM for dtype ", dtype_name(dtype), " (expected f32, f16 or bf16)");
  }
}

// Owns the cuBLASLt descriptors of one call.
struct LtCall {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  ~LtCall() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

// Everything that decides which cuBLASLt algorithms can run a call and how fast.
struct GemmKey {
  int device;
  bool transpose_a, transpose_b;
  int64_t m, n, k, lda, ldb, ldd;
  int epilogue;
  bool bias, aux;
  int64_t aux_ld;
  int ab_type, cd_type, compute;
  uint32_t align_a, align_b, align_d;
  bool beta_zero, tunable;
  auto tied() const {
    return std::tie(device, transpose_a, transpose_b, m, n, k, lda, ldb, ldd, epilogue, bias, aux, aux_ld, ab_type,
                    cd_type, compute, align_a, align_b, align_d, beta_zero, tunable);
  }
  bool operator<(const GemmKey& other) const { return tied() < other.tied(); }  // .cu files are C++17
};

// GEMMs of at least this many FLOPs are timed (autotuning): GPT-2's LM head (316 GFLOP per
// 4,096-row chunk and GEMM), where timing finds a faster logits kernel than the heuristic's first
// choice. (The head's f32 weight gradient was slow for another reason: every
// candidate over 50,257 columns is an sm80 kernel; linear_backward splits off a multiple of 128.)
// Smaller GEMMs keep the heuristic's first choice: tuning them would trade run-to-run identical
// algorithm choices for little.
constexpr double kTuneMinFlops = 1e11;
constexpr int kTuneCandidates = 8;
constexpr int kTuneRepeats = 3;
std::atomic<bool> g_gemm_autotuning{true};

int current_device() {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  return device;
}

bool overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  return x < y + b_bytes && y < x + a_bytes;
}

bool stream_is_capturing() {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(stream(), &status), "cudaStreamIsCapturing");
  return status != cudaStreamCaptureStatusNone;
}

// Milliseconds for kTuneRepeats runs (into `target`) after one warm-up, or +inf when the algorithm
// fails to run.
template <typename Run>
float time_algorithm(const Run& run, const cublasLtMatmulAlgo_t& algo, void* target, cudaEvent_t start,
                     cudaEvent_t stop) {
  if (run(algo, target) != CUBLAS_STATUS_SUCCESS) return INFINITY;
  check(cudaEventRecord(start, stream()), "cudaEventRecord");
  for (int r = 0; r < kTuneRepeats; ++r)
    if (run(algo, target) != CUBLAS_STATUS_SUCCESS) return INFINITY;
  check(cudaEventRecord(stop, stream()), "cudaEventRecord");
  check(cudaEventSynchronize(stop), "cudaEventSynchronize (GEMM autotuning)");
  float ms = INFINITY;
  check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
  return ms;
}

// The algorithm for a problem, remembered per GemmKey (which also spares later calls cuBLASLt's
// heuristic query): the heuristic's first choice, or, for a tunable problem met outside CUDA-graph
// capture, the fastest of its first kTuneCandidates (a later candidate must beat the best so far by
// 3%, so near-ties keep the heuristic's order). While a stream is being captured nothing is timed
// and an untuned choice is not remembered; wattwise runs each recorded step once eagerly first.
// Candidates run into D itself when the GEMM overwrites it (scratch_bytes = 0); a GEMM that adds
// to D (β ≠ 0: gradient accumulation) is timed on a zeroed scratch D of scratch_bytes instead, so
// D is written once; without memory for the scratch it keeps the heuristic's choice, untimed.
// nullopt when cuBLASLt has no algorithm.
template <typename Run>
std::optional<cublasLtMatmulAlgo_t> find_algorithm(const BlasContext& ctx, const LtCall& call, const GemmKey& key,
                                                   bool tunable, const Run& run, void* D, size_t scratch_bytes) {
  static std::mutex mutex;
  static std::map<GemmKey, cublasLtMatmulAlgo_t> chosen;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = chosen.find(key);
    if (it != chosen.end()) return it->second;
  }
  bool tune = tunable && !stream_is_capturing();
  // Freed on every way out (a failed query or check throws).
  struct Scratch {
    void* p = nullptr;
    ~Scratch() {
      if (p) cudaFree(p);
    }
  } scratch;
  struct Events {
    cudaEvent_t start = nullptr, stop = nullptr;
    ~Events() {
      if (start) cudaEventDestroy(start);
      if (stop) cudaEventDestroy(stop);
    }
  } events;
  if (tune && scratch_bytes > 0) {
    if (cudaMalloc(&scratch.p, scratch_bytes) != cudaSuccess) {
      cudaGetLastError();  // out of memory is not sticky: carry on untimed
      scratch.p = nullptr;
      tune = false;
    } else {
      check(cudaMemsetAsync(scratch.p, 0, scratch_bytes, stream()), "cudaMemsetAsync (GEMM autotuning scratch)");
    }
  }
  void* target = scratch.p ? scratch.p : D;
  cublasLtMatmulHeuristicResult_t results[kTuneCandidates] = {};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      ctx.lt_handle, call.desc, call.a, call.b, call.c, call.c, call.preference, tune ? kTuneCandidates : 1,
      results, &found);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found == 0)) return std::nullopt;
  check_cublas(status, "cublasLtMatmulAlgoGetHeuristic");
  int best = 0;
  if (tune && found > 1) {
    check(cudaEventCreate(&events.start), "cudaEventCreate");
    check(cudaEventCreate(&events.stop), "cudaEventCreate");
    float best_ms = INFINITY;
    for (int i = 0; i < found; ++i) {
      const float ms = time_algorithm(run, results[i].algo, target, events.start, events.stop);
      if (ms < best_ms * 0.97f) best = i, best_ms = ms;
    }
  }
  if (!tunable || tune) {
    std::lock_guard<std::mutex> lock(mutex);
    chosen.emplace(key, results[best].algo);
  }
  return results[best].algo;
}

// What cuBLASLt does to the product before storing D: nothing, + bias[m] broadcast over columns
// (BIAS), then GELU keeping its input in aux (GELU_AUX_BIAS; GELU_BIAS without aux), or times
// GELU's derivative at aux (DGELU). aux is an m×n column-major matrix of D's type, leading dimension
// aux_ld (a multiple of 8).
struct Epilogue {
  cublasLtEpilogue_t kind = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  const void* aux = nullptr;
  int64_t aux_ld = 0;
};

Epilogue bias_epilogue(const void* bias) {
  return bias ? Epilogue{CUBLASLT_EPILOGUE_BIAS, bias, nullptr, 0} : Epilogue{};
}

// Column-major D[m,n] = op(A)·op(B) + beta·D, then the epilogue. A is stored [m,k] (or [k,m] when
// transposed) with leading dimension lda; likewise B. A and B have type ab_type, C = D (and the
// bias, aux) cd_type; accumulation is always fp32 (TF32 inputs only for fp32 A/B with precision
// Tf32). Returns false (and does nothing) when cuBLASLt has no algorithm for a non-default
// epilogue, so the caller can do its part another way; fails for anything else.
bool lt_matmul(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const void* A,
               int64_t lda, const void* B, int64_t ldb, float beta, void* D, int64_t ldd,
               const Epilogue& epilogue, DType ab_type, DType cd_type, GemmPrecision precision) {
  const BlasContext& ctx = blas_context();
  LtCall call;
  const cublasComputeType_t compute = precision == GemmPrecision::Tf32 && ab_type == DType::F32
                                          ? CUBLAS_COMPUTE_32F_FAST_TF32
                                          : CUBLAS_COMPUTE_32F;
  check_cublas(cublasLtMatmulDescCreate(&call.desc, compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t op_a = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  check_cublas(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)),
               "cublasLtMatmulDescSetAttribute(TRANSA)");
  check_cublas(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)),
               "cublasLtMatmulDescSetAttribute(TRANSB)");
  const bool fused = epilogue.kind != CUBLASLT_EPILOGUE_DEFAULT;
  if (fused)
    check_cublas(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue.kind,
                                                sizeof(epilogue.kind)),
                 "cublasLtMatmulDescSetAttribute(EPILOGUE)");
  if (epilogue.bias) {
    const void* bias_pointer = epilogue.bias;
    check_cublas(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                &bias_pointer, sizeof(bias_pointer)),
                 "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
  }
  if (epilogue.aux) {
    const void* aux_pointer = epilogue.aux;
    check_cublas(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                &aux_pointer, sizeof(aux_pointer)),
                 "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_POINTER)");
    const int64_t aux_ld = epilogue.aux_ld;
    check_cublas(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld,
                                                sizeof(aux_ld)),
                 "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_LD)");
  }
  const uint64_t a_rows = uint64_t(transpose_a ? k : m), a_cols = uint64_t(transpose_a ? m : k);
  const uint64_t b_rows = uint64_t(transpose_b ? n : k), b_cols = uint64_t(transpose_b ? k : n);
  const cudaDataType_t ab = cuda_data_type(ab_type), cd = cuda_data_type(cd_type);
  check_cublas(cublasLtMatrixLayoutCreate(&call.a, ab, a_rows, a_cols, lda), "cublasLtMatrixLayoutCreate(A)");
  check_cublas(cublasLtMatrixLayoutCreate(&call.b, ab, b_rows, b_cols, ldb), "cublasLtMatrixLayoutCreate(B)");
  check_cublas(cublasLtMatrixLayoutCreate(&call.c, cd, uint64_t(m), uint64_t(n), ldd),
               "cublasLtMatrixLayoutCreate(C)");

  check_cublas(cublasLtMatmulPreferenceCreate(&call.preference), "cublasLtMatmulPreferenceCreate");
  const uint64_t workspace = ctx.lt_workspace_bytes;
  check_cublas(cublasLtMatmulPreferenceSetAttribute(call.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &workspace, sizeof(workspace)),
               "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
  const uint32_t align_a = alignment_of(A), align_b = alignment_of(B), align_d = alignment_of(D);
  check_cublas(cublasLtMatmulPreferenceSetAttribute(call.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                    &align_a, sizeof(align_a)),
               "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT_A_BYTES)");
  check_cublas(cublasLtMatmulPreferenceSetAttribute(call.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                    &align_b, sizeof(align_b)),
               "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT_B_BYTES)");
  check_cublas(cublasLtMatmulPreferenceSetAttribute(call.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                    &align_d, sizeof(align_d)),
               "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT_C_BYTES)");
  check_cublas(cublasLtMatmulPreferenceSetAttribute(call.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                    &align_d, sizeof(align_d)),
               "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT_D_BYTES)");

  // Timing candidates writes D (or a scratch D, for β ≠ 0) a few times: only for problems that
  // write nothing else, with D apart from A and B.
  const size_t ab_bytes = dtype_size(ab_type), d_bytes = dtype_size(cd_type) * size_t(ldd) * size_t(n);
  const bool tunable = gemm_autotuning() && !epilogue.aux &&
                       2.0 * double(m) * double(n) * double(k) >= kTuneMinFlops &&
                       !overlaps(D, d_bytes, A, ab_bytes * size_t(lda) * a_cols) &&
                       !overlaps(D, d_bytes, B, ab_bytes * size_t(ldb) * b_cols);
  const GemmKey key{current_device(), transpose_a, transpose_b, m, n, k, lda, ldb, ldd, int(epilogue.kind),
                    epilogue.bias != nullptr, epilogue.aux != nullptr, epilogue.aux_ld, int(ab_type), int(cd_type),
                    int(compute), align_a, align_b, align_d, beta == 0.0f, tunable};
  const float alpha = 1.0f;
  const auto run = [&](const cublasLtMatmulAlgo_t& algo, void* target) {
    return cublasLtMatmul(ctx.lt_handle, call.desc, &alpha, A, call.a, B, call.b, &beta, target, call.c, target,
                          call.c, &algo, ctx.lt_workspace, ctx.lt_workspace_bytes, stream());
  };
  const std::optional<cublasLtMatmulAlgo_t> algo =
      find_algorithm(ctx, call, key, tunable, run, D, beta == 0.0f ? 0 : d_bytes);
  if (!algo) {
    if (fused) return false;
    fail("cuBLASLt has no algorithm for a ", m, "x", n, "x", k, " GEMM (column-major, transa ", transpose_a,
         ", transb ", transpose_b, ", A/B ", dtype_name(ab_type), ", C/D ", dtype_name(cd_type), ")");
  }
  check_cublas(run(*algo, D), "cublasLtMatmul");
  return true;
}

template <typename T>
__global__ void broadcast_rows_kernel(T* out, const T* row, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t total = rows * cols;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i / cols * ld + i % cols] = row[i % cols];
}

// out[n, :OC] = bias for every row n (rows ld elements apart).
void broadcast_bias(void* out, const void* bias, DType dtype, int64_t N, int64_t OC, int64_t ld) {
  const int threads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>(blocks_for(N * OC, threads), 65535));
  dispatch_activation(dtype, "linear_forward (bias)", [&](auto tag) {
    using E = decltype(tag);
    broadcast_rows_kernel<E><<<blocks, threads, 0, stream()>>>(static_cast<E*>(out), static_cast<const E*>(bias),
                                                               N, OC, ld);
  });
  check_launch("broadcast_rows_kernel");
}

// Column sums in two deterministic passes (no atomics; every sum in a fixed order), because one
// pass with a block per 32 columns gave only C/32 blocks (24 for C = 768) each walking all N rows:
// over ten times what the bytes need at N = 8,192.
//   1. grid (column tiles, row chunks of kRowsPerChunk): thread (x, y) sums rows y, y + kRowGroups,
//      … of its chunk for its V columns tile·32·V + x·V + v in double; the kRowGroups partials are
//      added in order of y into partial[chunk][c];
//   2. add_chunk_sums_kernel adds the chunks' partials to sums[c] in a fixed order.
// V = 16 bytes of elements (8 for 16-bit types) when rows and columns allow 16-byte loads, else 1:
// a warp then reads 512 contiguous bytes per row instead of 64 (the scalar form ran GPT-2's bias
// gradients at ~40% of the bandwidth). Each column's additions are in the same order for any V.
constexpr int kRowGroups = 8;
constexpr int kColumnThreads = 32;
constexpr int64_t kRowsPerChunk = 256;

template <int V, typename T>
__global__ void column_chunk_sums_kernel(double* partial, const T* x, int64_t N, int64_t C, int64_t ld) {
  __shared__ double groups[kRowGroups][kColumnThreads * V];
  const int64_t c = (int64_t(blockIdx.x) * kColumnThreads + threadIdx.x) * V;
  const int64_t row0 = int64_t(blockIdx.y) * kRowsPerChunk;
  const int64_t row_end = row0 + kRowsPerChunk < N ? row0 + kRowsPerChunk : N;
  double acc[V] = {};
  if (c < C)  // V > 1 only when C is a multiple of V: all V columns exist
    for (int64_t n = row0 + threadIdx.y; n < row_end; n += kRowGroups) {
      float v[V];
      load_floats<V>(x + n * ld + c, v);
#pragma unroll
      for (int k = 0; k < V; ++k) acc[k] += double(v[k]);
    }
#pragma unroll
  for (int k = 0; k < V; ++k) groups[threadIdx.y][threadIdx.x * V + k] = acc[k];
  __syncthreads();
  // The block's 32·V columns, one per thread of the first rows of threads.
  for (int j = threadIdx.y * kColumnThreads + threadIdx.x; j < kColumnThreads * V; j += kColumnThreads * kRowGroups) {
    const int64_t column = int64_t(blockIdx.x) * kColumnThreads * V + j;
    if (column >= C) continue;
    double total = 0.0;
    for (int g = 0; g < kRowGroups; ++g) total += groups[g][j];
    partial[int64_t(blockIdx.y) * C + column] = total;
  }
}

// Block (32 columns, kRowGroups chunk groups): thread (x, y) adds chunks y, y + kRowGroups, … of
// its column (independent loads, in flight together), then y = 0 adds the group sums in order of y:
// a fixed order (deterministic). A thread per column walking all chunks gave C = 768 three blocks,
// far too little parallelism for the 48 calls of a GPT-2 step.
__global__ void add_chunk_sums_kernel(float* sums, const double* partial, int64_t chunks, int64_t C) {
  __shared__ double groups[kRowGroups][kColumnThreads];
  const int64_t c = int64_t(blockIdx.x) * kColumnThreads + threadIdx.x;
  double total = 0.0;
  if (c < C)
#pragma unroll 8
    for (int64_t k = threadIdx.y; k < chunks; k += kRowGroups) total += partial[k * C + c];
  groups[threadIdx.y][threadIdx.x] = total;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  double sum = 0.0;
  for (int g = 0; g < kRowGroups; ++g) sum += groups[g][threadIdx.x];
  sums[c] = float(double(sums[c]) + sum);
}

}  // namespace

void add_column_sums(float* sums, const void* x, DType dtype, int64_t N, int64_t C, int64_t ld) {
  WW_CHECK(ld >= C, "add_column_sums: row stride ", ld, " < ", C, " columns");
  if (C == 0) return;
  const int64_t chunks = N == 0 ? 0 : (N + kRowsPerChunk - 1) / kRowsPerChunk;
  if (chunks == 0) return;  // nothing to add
  WW_CHECK(chunks <= 65535, "add_column_sums: N = ", N, " rows is more than this kernel's grid takes");
  double* partial = nullptr;
  // Stream-ordered: valid inside CUDA-graph capture.
  check(cudaMallocAsync(reinterpret_cast<void**>(&partial), size_t(chunks * C) * sizeof(double), stream()),
        "cudaMallocAsync (column sums)");
  dispatch_activation(dtype, "add_column_sums", [&](auto tag) {
    using E = decltype(tag);
    constexpr int V = 16 / int(sizeof(E));
    const dim3 threads(kColumnThreads, kRowGroups);
    const E* data = static_cast<const E*>(x);
    if (C % V == 0 && ld % V == 0 && aligned_to(x, 16))
      column_chunk_sums_kernel<V, E><<<dim3(blocks_for(C, kColumnThreads * V), unsigned(chunks)), threads, 0,
                                       stream()>>>(partial, data, N, C, ld);
    else
      column_chunk_sums_kernel<1, E><<<dim3(blocks_for(C, kColumnThreads), unsigned(chunks)), threads, 0,
                                       stream()>>>(partial, data, N, C, ld);
  });
  check_launch("column_chunk_sums_kernel");
  add_chunk_sums_kernel<<<blocks_for(C, kColumnThreads), dim3(kColumnThreads, kRowGroups), 0, stream()>>>(
      sums, partial, chunks, C);
  check_launch("add_chunk_sums_kernel");
  check(cudaFreeAsync(partial, stream()), "cudaFreeAsync (column sums)");
}

void linear_forward(void* out, const void* inp, const void* weight, const void* bias, DType dtype, int64_t N,
                    int64_t IC, int64_t OC, int64_t ld_out, GemmPrecision precision) {
  WW_CHECK(ld_out >= OC, "linear_forward: row stride ", ld_out, " < ", OC, " output features");
  if (N == 0 || OC == 0) return;
  if (IC == 0) {  // an empty sum: out is the bias (or zero)
    const size_t element = dtype_size(dtype);
    if (bias) broadcast_bias(out, bias, dtype, N, OC, ld_out);
    else
      check(cudaMemset2DAsync(out, size_t(ld_out) * element, 0, size_t(OC) * element, size_t(N), stream()),
            "cudaMemset2DAsync");
    return;
  }
  // outᵀ[OC,N] = W[OC,IC] · inpᵀ[IC,N]: weight's buffer read column-major is Wᵀ [IC,OC] (ld IC),
  // hence transa; inp's buffer read column-major is already inpᵀ [IC,N] (ld IC).
  // The bias (one value per row of outᵀ) goes in the epilogue; where cuBLASLt offers no algorithm
  // for that (or the bias is not 16-byte aligned), out starts as the bias and beta = 1, as on the CPU.
  const bool fused_bias = bias && alignment_of(bias) >= 16;
  if (fused_bias &&
      lt_matmul(true, false, OC, N, IC, weight, IC, inp, IC, 0.0f, out, ld_out, bias_epilogue(bias), dtype, dtype,
                precision))
    return;
  float beta = 0.0f;
  if (bias) {
    broadcast_bias(out, bias, dtype, N, OC, ld_out);
    beta = 1.0f;
  }
  lt_matmul(true, false, OC, N, IC, weight, IC, inp, IC, beta, out, ld_out, Epilogue{}, dtype, dtype, precision);
}

// linear_backward splits weight gradients with at least this many output features (below).
constexpr int64_t kSplitMinColumns = 1024;

void linear_backward(void* dinp, float* dweight, float* dbias, const void* dout, const void* inp,
                     const void* weight, DType dtype, int64_t N, int64_t IC, int64_t OC, int64_t ld_dout,
                     GemmPrecision precision) {
  WW_CHECK(ld_dout >= OC, "linear_backward: row stride ", ld_dout, " < ", OC, " output features");
  if (N == 0 || OC == 0) {
    if (dinp && N * IC > 0)
      check(cudaMemsetAsync(dinp, 0, size_t(N * IC) * dtype_size(dtype), stream()), "cudaMemsetAsync");
    return;
  }
  // dWᵀ[IC,OC] += inpᵀ[IC,N] · dout[N,OC]: dweight's buffer read column-major is dWᵀ (ld IC);
  // inp's is inpᵀ [IC,N] (ld IC); dout's is doutᵀ [OC,N] (ld ld_dout), hence transb.
  // dweight is f32 for every dtype: 16-bit A/B, f32 C/D, accumulated (beta = 1).
  // A large OC that is not a multiple of 128 (GPT-2's vocabulary, 50,257) goes in two GEMMs: the
  // first OC rounded down to 128 columns, then the rest. cuBLASLt offers only an sm80 kernel for the
  // whole but its faster sm90 kernels for a multiple of 128 (bench/cuda/lm_head_gemm.cu compares
  // them). Each entry is the same f32 sum either way.
  if (dweight && IC > 0) {
    const int64_t whole = OC >= kSplitMinColumns && OC % 128 != 0 ? OC / 128 * 128 : OC;
    lt_matmul(false, true, IC, whole, N, inp, IC, dout, ld_dout, 1.0f, dweight, IC, Epilogue{}, dtype, DType::F32,
              precision);
    if (whole < OC)
      lt_matmul(false, true, IC, OC - whole, N, inp, IC, static_cast<const char*>(dout) + whole * dtype_size(dtype),
                ld_dout, 1.0f, dweight + whole * IC, IC, Epilogue{}, dtype, DType::F32, precision);
  }
  if (dbias) add_column_sums(dbias, dout, dtype, N, OC, ld_dout);
  // dinpᵀ[IC,N] = Wᵀ[IC,OC] · doutᵀ[OC,N]: weight's buffer read column-major is Wᵀ (ld IC),
  // dout's is doutᵀ (ld ld_dout). Written last: dinp may share memory with inp.
  if (dinp && IC > 0)
    lt_matmul(false, false, IC, N, OC, weight, IC, dout, ld_dout, 0.0f, dinp, IC, Epilogue{}, dtype, dtype, precision);
}

// The same products as linear_forward and linear_backward's dinp, with GELU (tanh form: cuBLASLt's
// GELU epilogue is the tanh approximation, which test_cuda_gemm checks against our kernel in f32)
// in the epilogue. cuBLASLt wants the GELU input's leading dimension a multiple of 8 and aligned
// operands; it may still offer no kernel, and then these return false having written nothing.
bool linear_gelu_tanh_forward(void* out, void* pre, const void* inp, const void* weight, const void* bias,
                              DType dtype, int64_t N, int64_t IC, int64_t OC, GemmPrecision precision) {
  if (N == 0 || OC == 0 || IC == 0 || OC % 8 != 0) return false;
  if (bias && alignment_of(bias) < 16) return false;
  if (pre && alignment_of(pre) < 16) return false;
  Epilogue epilogue;
  epilogue.kind = pre ? (bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                      : (bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU);
  epilogue.bias = bias;
  epilogue.aux = pre;
  epilogue.aux_ld = pre ? OC : 0;
  // outᵀ[OC,N] = W · inpᵀ as in linear_forward; preᵀ has out's layout (ld OC).
  return lt_matmul(true, false, OC, N, IC, weight, IC, inp, IC, 0.0f, out, OC, epilogue, dtype, dtype, precision);
}

bool linear_dinp_gelu_tanh(void* dpre, const void* dout, const void* weight, const void* pre, DType dtype,
                           int64_t N, int64_t IC, int64_t OC, int64_t ld_dout, GemmPrecision precision) {
  if (N == 0 || OC == 0 || IC == 0 || IC % 8 != 0 || alignment_of(pre) < 16) return false;
  Epilogue epilogue;
  epilogue.kind = CUBLASLT_EPILOGUE_DGELU;
  epilogue.aux = pre;
  epilogue.aux_ld = IC;
  // dpreᵀ[IC,N] = Wᵀ · doutᵀ as linear_backward's dinp, times GELU'(preᵀ) (pre has dpre's layout).
  return lt_matmul(false, false, IC, N, OC, weight, IC, dout, ld_dout, 0.0f, dpre, IC, epilogue, dtype, dtype,
                   precision);
}

void set_gemm_autotuning(bool on) { g_gemm_autotuning.store(on); }
bool gemm_autotuning() { return g_gemm_autotuning.load(); }

}  // namespace ww::kernels::cuda
