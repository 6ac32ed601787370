// Row-major ↔ column-major: a row-major product C[m,n] = op(A)·op(B) is, read column-major,
// Cᵀ[n,m] = op(B)ᵀ·op(A)ᵀ, so rm_gemm below swaps the operands (and m, n) and keeps the transpose
// flags; its arguments then read exactly like the CPU kernel's row-major gemm calls.
//
// cuBLAS's strided batch has one stride per operand, which cannot step over both batch rows (T·3C)
// and heads (D) of the packed qkv: each GEMM loops over batch rows b with a batch of the H heads
// (per-head offsets h·D in qkv and out, h·T·T in probs).
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/cuda/blas.h"
#include "kernels/cuda/device_util.cuh"
#include "wattwise/core/rng.h"

namespace ww::kernels::cuda {
namespace {

constexpr int kRowThreads = 128;  // one block per score row; power of two for the tree reductions

// The element type and compute mode of one call's GEMMs: A, B and C all `type`, fp32 accumulation
// (TF32 inputs for f32 when the caller allows it).
struct GemmTypes {
  cudaDataType_t type;
  cublasComputeType_t compute;
  size_t element_size;
};

GemmTypes gemm_types(DType dtype, GemmPrecision precision) {
  switch (dtype) {
    case DType::F32:
      return {CUDA_R_32F, precision == GemmPrecision::Tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, 4};
    case DType::F16: return {CUDA_R_16F, CUBLAS_COMPUTE_32F, 2};
    case DType::BF16: return {CUDA_R_16BF, CUBLAS_COMPUTE_32F, 2};
    default: fail("attention (CUDA): no kernel for dtype ", dtype_name(dtype), " (expected f32, f16 or bf16)");
  }
}

// Row-major, batched: C_i[m,n] = alpha·op(A_i)·op(B_i) (beta = 0, C overwritten), i < batch.
// Offsets and strides count elements of the call's type.
void rm_gemm(const GemmTypes& types, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
             float alpha, const void* a, int64_t lda, int64_t stride_a, const void* b, int64_t ldb,
             int64_t stride_b, void* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  const BlasContext& ctx = blas_context();
  const float beta = 0.0f;
  check_cublas(cublasGemmStridedBatchedEx(ctx.handle, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                          transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m), int(k), &alpha,
                                          b, types.type, int(ldb), stride_b, a, types.type, int(lda), stride_a,
                                          &beta, c, types.type, int(ldc), stride_c, int(batch), types.compute,
                                          CUBLAS_GEMM_DEFAULT),
               "cublasGemmStridedBatchedEx");
}

// Typed pointer arithmetic on untyped buffers (elements of `types`).
const void* at(const void* base, int64_t elements, const GemmTypes& types) {
  return static_cast<const char*>(base) + elements * int64_t(types.element_size);
}
void* at(void* base, int64_t elements, const GemmTypes& types) {
  return static_cast<char*>(base) + elements * int64_t(types.element_size);
}

// Fixed-order tree reductions over the block (blockDim.x == kRowThreads): deterministic.
__device__ float row_sum(float value, float* shared) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int s = kRowThreads / 2; s > 0; s /= 2) {
    if (int(threadIdx.x) < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  float total = shared[0];
  __syncthreads();
  return total;
}

__device__ float row_max(float value, float* shared) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int s = kRowThreads / 2; s > 0; s /= 2) {
    if (int(threadIdx.x) < s) shared[threadIdx.x] = fmaxf(shared[threadIdx.x], shared[threadIdx.x + s]);
    __syncthreads();
  }
  float result = shared[0];
  __syncthreads();
  return result;
}

struct DropoutParams {
  float p;           // 0 = no dropout
  uint32_t threshold;  // attention_dropout_threshold(p)
  float keep_scale;    // attention_dropout_keep_scale(p), as on the CPU
  uint64_t seed, offset;
  const uint64_t* offset_base;  // null, or a device u64 added to offset (CUDA graphs)
};

// The CPU's rule (core/rng.h): element (row, key) of the [B·H·T, T] probabilities.
__device__ float dropout_value(float x, int64_t row, int64_t key, int64_t T_len, const DropoutParams& d) {
  const uint64_t offset = d.offset + (d.offset_base ? *d.offset_base : 0);
  return attention_dropout_keep(d.seed, offset, uint64_t(row), T_len, key, d.threshold) ? x * d.keep_scale : 0.0f;
}

// One block per row r = (b·H + h)·T + i of the scores: masked softmax in place (probs), and the
// dropped-out probabilities into `dropped` when dropout is on. Keys past the query (causal) or
// padded get exactly 0; a row with no allowed key is all zeros. Math in float; the last pass
// recomputes exp(s − max) (the sum's value) so a 16-bit row is rounded once.
template <typename T>
__global__ void masked_softmax_kernel(T* probs, T* dropped, const int32_t* key_mask, int64_t T_len, int64_t H,
                                      bool causal, DropoutParams dropout) {
  __shared__ float shared[kRowThreads];
  const int64_t row = blockIdx.x;
  const int64_t query = row % T_len, b = row / (H * T_len);
  const int64_t end = causal ? query + 1 : T_len;
  const int32_t* mask = key_mask ? key_mask + b * T_len : nullptr;
  T* p = probs + row * T_len;

  float local_max = -INFINITY;
  int any_local = 0;
  for (int64_t j = threadIdx.x; j < end; j += kRowThreads) {
    if (mask && mask[j] == 0) continue;
    local_max = fmaxf(local_max, load_float(p[j]));
    any_local = 1;
  }
  const bool any_real_key = __syncthreads_or(any_local) != 0;
  if (!any_real_key) {
    for (int64_t j = threadIdx.x; j < T_len; j += kRowThreads) {
      p[j] = store_float<T>(0.0f);
      if (dropped) dropped[row * T_len + j] = store_float<T>(0.0f);
    }
    return;
  }
  const float max_score = row_max(local_max, shared);

  float local_sum = 0.0f;
  for (int64_t j = threadIdx.x; j < T_len; j += kRowThreads) {
    const bool allowed = j < end && !(mask && mask[j] == 0);
    local_sum += allowed ? expf(load_float(p[j]) - max_score) : 0.0f;
  }
  const float inv_sum = 1.0f / row_sum(local_sum, shared);
  for (int64_t j = threadIdx.x; j < T_len; j += kRowThreads) {
    const bool allowed = j < end && !(mask && mask[j] == 0);
    const float e = allowed ? expf(load_float(p[j]) - max_score) : 0.0f;
    const float value = e * inv_sum;
    p[j] = store_float<T>(value);
    // Dropout applies to the stored (rounded) probability, as a separate dropout op would.
    if (dropped) dropped[row * T_len + j] = store_float<T>(dropout_value(load_float(p[j]), row, j, T_len, dropout));
  }
}

// dst[i] = dropout(src[i]) over the flat [B,H,T,T] probabilities (row i / T, key i % T).
template <typename T>
__global__ void dropout_kernel(T* dst, const T* src, int64_t n, int64_t T_len, DropoutParams dropout) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = store_float<T>(dropout_value(load_float(src[i]), i / T_len, i % T_len, T_len, dropout));
}

// One block per row: work holds dP = dO·Vᵀ; applies the dropout mask and scale (when on), then
// the softmax backward dS = P ⊙ (dP − Σ dP ⊙ P), in place. Masked keys have P = 0, so dS = 0.
// The first pass only reads (the mask is recomputed in the second), so 16-bit dP is rounded once.
template <typename T>
__global__ void softmax_backward_kernel(T* work, const T* probs, int64_t T_len, DropoutParams dropout) {
  __shared__ float shared[kRowThreads];
  const int64_t row = blockIdx.x;
  T* w = work + row * T_len;
  const T* p = probs + row * T_len;
  float local_dot = 0.0f;
  for (int64_t j = threadIdx.x; j < T_len; j += kRowThreads) {
    float dp = load_float(w[j]);
    if (dropout.p > 0.0f) dp = dropout_value(dp, row, j, T_len, dropout);
    local_dot += dp * load_float(p[j]);
  }
  const float dot = row_sum(local_dot, shared);
  for (int64_t j = threadIdx.x; j < T_len; j += kRowThreads) {
    float dp = load_float(w[j]);
    if (dropout.p > 0.0f) dp = dropout_value(dp, row, j, T_len, dropout);
    w[j] = store_float<T>(load_float(p[j]) * (dp - dot));
  }
}

DropoutParams dropout_params(const AttentionConfig& config) {
  DropoutParams d{};
  d.p = config.dropout_p;
  d.threshold = attention_dropout_threshold(config.dropout_p);
  d.keep_scale = attention_dropout_keep_scale(config.dropout_p);
  d.seed = config.seed;
  d.offset = config.offset;
  d.offset_base = config.offset_base;
  return d;
}

// HF's head_dim ** -0.5: computed in double, rounded to float (as the CPU kernel).
float softmax_scale(int64_t head_dim) { return float(1.0 / std::sqrt(double(head_dim))); }

// Stream-ordered temporary device buffer.
class StreamBuffer {
 public:
  explicit StreamBuffer(size_t bytes) {
    if (bytes) check(cudaMallocAsync(&ptr_, bytes, stream()), "cudaMallocAsync (attention dropout buffer)");
  }
  ~StreamBuffer() {
    if (ptr_) cudaFreeAsync(ptr_, stream());
  }
  StreamBuffer(const StreamBuffer&) = delete;
  StreamBuffer& operator=(const StreamBuffer&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

void check_blas_int(int64_t n, const char* what) {
  if (n > INT32_MAX) fail("attention (CUDA): ", what, " = ", n, " does not fit cuBLAS's int");
}

}  // namespace

void attention_forward(void* out, void* probs, const void* qkv, const int32_t* key_mask, DType dtype,
                       const AttentionConfig& config, GemmPrecision precision) {
  const int64_t B = config.batch, T = config.seq_len, H = config.num_heads, D = config.head_dim;
  const int64_t C = H * D, qkv_row = 3 * C;
  if (B * H * T == 0) return;
  check_blas_int(qkv_row, "3C");
  check_blas_int(T, "T");
  check_blas_int(H, "H");
  const GemmTypes types = gemm_types(dtype, precision);
  const float scale = softmax_scale(D);
  const DropoutParams dropout = dropout_params(config);
  const bool use_dropout = config.dropout_p > 0.0f;
  // Dropped probabilities feed P·V while the pre-dropout ones stay in probs for backward.
  StreamBuffer dropped(use_dropout ? size_t(B * H * T * T) * types.element_size : 0);

  for (int64_t b = 0; b < B; ++b) {  // S = Q Kᵀ / √D for every head of batch row b
    const void* q = at(qkv, b * T * qkv_row, types);
    rm_gemm(types, false, true, T, T, D, scale, q, qkv_row, D, at(q, C, types), qkv_row, D,
            at(probs, b * H * T * T, types), T, T * T, H);
  }
  dispatch_activation(dtype, "attention_forward", [&](auto tag) {
    using E = decltype(tag);
    masked_softmax_kernel<E><<<unsigned(B * H * T), kRowThreads, 0, stream()>>>(
        static_cast<E*>(probs), use_dropout ? static_cast<E*>(dropped.get()) : nullptr, key_mask, T, H,
        config.causal, dropout);
  });
  check_launch("masked_softmax_kernel");
  const void* p_used = use_dropout ? dropped.get() : probs;
  for (int64_t b = 0; b < B; ++b) {  // out = P V, heads side by side
    const void* v = at(qkv, b * T * qkv_row + 2 * C, types);
    rm_gemm(types, false, false, T, D, T, 1.0f, at(p_used, b * H * T * T, types), T, T * T, v, qkv_row, D,
            at(out, b * T * C, types), C, D, H);
  }
}

void attention_backward(void* dqkv, void* scratch, const void* dout, const void* qkv, const void* probs,
                        const int32_t* key_mask, DType dtype, const AttentionConfig& config,
                        GemmPrecision precision) {
  (void)key_mask;  // masked probabilities are exactly 0, which already zeroes their gradients
  const int64_t B = config.batch, T = config.seq_len, H = config.num_heads, D = config.head_dim;
  const int64_t C = H * D, qkv_row = 3 * C;
  if (B * H * T == 0) return;
  check_blas_int(qkv_row, "3C");
  check_blas_int(T, "T");
  check_blas_int(H, "H");
  const GemmTypes types = gemm_types(dtype, precision);
  const float scale = softmax_scale(D);
  const DropoutParams dropout = dropout_params(config);
  const bool use_dropout = config.dropout_p > 0.0f;
  const int64_t head_block = T * T;

  // dV = dropout(P)ᵀ dO, with the dropped probabilities regenerated into scratch.
  const void* p_used = probs;
  if (use_dropout) {
    const int64_t n = B * H * T * T;
    const unsigned blocks = unsigned(std::min<int64_t>(blocks_for(n, 256), 65535));
    dispatch_activation(dtype, "attention_backward", [&](auto tag) {
      using E = decltype(tag);
      dropout_kernel<E><<<blocks, 256, 0, stream()>>>(static_cast<E*>(scratch), static_cast<const E*>(probs), n, T,
                                                      dropout);
    });
    check_launch("dropout_kernel");
    p_used = scratch;
  }
  for (int64_t b = 0; b < B; ++b) {
    void* dv = at(dqkv, b * T * qkv_row + 2 * C, types);
    rm_gemm(types, true, false, T, D, T, 1.0f, at(p_used, b * H * head_block, types), T, head_block,
            at(dout, b * T * C, types), C, D, dv, qkv_row, D, H);
  }
  // dP = dO Vᵀ into scratch (after every dV GEMM read it: same stream).
  for (int64_t b = 0; b < B; ++b) {
    const void* v = at(qkv, b * T * qkv_row + 2 * C, types);
    rm_gemm(types, false, true, T, T, D, 1.0f, at(dout, b * T * C, types), C, D, v, qkv_row, D,
            at(scratch, b * H * head_block, types), T, head_block, H);
  }
  // dS = P ⊙ (dropout'(dP) − Σ dropout'(dP) ⊙ P).
  dispatch_activation(dtype, "attention_backward", [&](auto tag) {
    using E = decltype(tag);
    softmax_backward_kernel<E><<<unsigned(B * H * T), kRowThreads, 0, stream()>>>(
        static_cast<E*>(scratch), static_cast<const E*>(probs), T, dropout);
  });
  check_launch("softmax_backward_kernel");
  for (int64_t b = 0; b < B; ++b) {
    const void* q = at(qkv, b * T * qkv_row, types);
    const void* k = at(q, C, types);
    void* dq = at(dqkv, b * T * qkv_row, types);
    void* dk = at(dq, C, types);
    const void* ds = at(scratch, b * H * head_block, types);
    rm_gemm(types, false, false, T, D, T, scale, ds, T, head_block, k, qkv_row, D, dq, qkv_row, D, H);  // dQ = dS K / √D
    rm_gemm(types, true, false, T, D, T, scale, ds, T, head_block, q, qkv_row, D, dk, qkv_row, D, H);   // dK = dSᵀ Q / √D
  }
}

}  // namespace ww::kernels::cuda
