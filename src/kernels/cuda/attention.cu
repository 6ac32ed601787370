// Row-major ↔ column-major: a row-major product C[m,n] = op(A)·op(B) is, read column-major,
// Cᵀ[n,m] = op(B)ᵀ·op(A)ᵀ, so rm_gemm below swaps the operands (and m, n) and keeps the transpose
// flags; its arguments then read exactly like the CPU kernel's row-major gemm calls.
//
// cuBLAS's strided batch has one stride per operand, which cannot step over both batch rows (T·3C)
// and heads (D) of the packed qkv: each GEMM loops over batch rows b with a batch of the H heads
// (per-head offsets h·D in qkv and out, h·T·T in probs).
#include "kernels/cuda/attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/cuda/blas.h"
#include "kernels/cuda/common.h"
#include "wattwise/core/rng.h"

namespace ww::kernels::cuda {
namespace {

constexpr int kRowThreads = 128;  // one block per score row; power of two for the tree reductions

// Row-major, batched: C_i[m,n] = alpha·op(A_i)·op(B_i) (beta = 0, C overwritten), i < batch.
void rm_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
             const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
             int64_t stride_b, float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  const BlasContext& ctx = blas_context();
  const float beta = 0.0f;
  check_cublas(cublasSgemmStridedBatched(ctx.handle, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                         transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m), int(k),
                                         &alpha, b, int(ldb), stride_b, a, int(lda), stride_a, &beta, c,
                                         int(ldc), stride_c, int(batch)),
               "cublasSgemmStridedBatched");
}

// Fixed-order tree reductions over the block (blockDim.x == kRowThreads): deterministic.
__device__ float block_sum(float value, float* shared) {
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

__device__ float block_max(float value, float* shared) {
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
  float keep_scale;  // 1 / (1 − p), rounded to float as on the CPU
  uint64_t seed, offset;
};

// The CPU's rule: element `index` survives iff philox_uniform(seed, offset, index) >= p.
__device__ float dropout_value(float x, uint64_t index, const DropoutParams& d) {
  return philox_uniform(d.seed, d.offset, index) >= d.p ? x * d.keep_scale : 0.0f;
}

// One block per row r = (b·H + h)·T + i of the scores: masked softmax in place (probs), and the
// dropped-out probabilities into `dropped` when dropout is on. Keys past the query (causal) or
// padded get exactly 0; a row with no allowed key is all zeros.
__global__ void masked_softmax_kernel(float* probs, float* dropped, const int32_t* key_mask, int64_t T,
                                      int64_t H, bool causal, DropoutParams dropout) {
  __shared__ float shared[kRowThreads];
  const int64_t row = blockIdx.x;
  const int64_t query = row % T, b = row / (H * T);
  const int64_t end = causal ? query + 1 : T;
  const int32_t* mask = key_mask ? key_mask + b * T : nullptr;
  float* p = probs + row * T;

  float local_max = -INFINITY;
  int any_local = 0;
  for (int64_t j = threadIdx.x; j < end; j += kRowThreads) {
    if (mask && mask[j] == 0) continue;
    local_max = fmaxf(local_max, p[j]);
    any_local = 1;
  }
  const bool any_real_key = __syncthreads_or(any_local) != 0;
  if (!any_real_key) {
    for (int64_t j = threadIdx.x; j < T; j += kRowThreads) {
      p[j] = 0.0f;
      if (dropped) dropped[row * T + j] = 0.0f;
    }
    return;
  }
  const float max_score = block_max(local_max, shared);

  float local_sum = 0.0f;
  for (int64_t j = threadIdx.x; j < T; j += kRowThreads) {
    const bool allowed = j < end && !(mask && mask[j] == 0);
    const float e = allowed ? expf(p[j] - max_score) : 0.0f;
    p[j] = e;
    local_sum += e;
  }
  const float inv_sum = 1.0f / block_sum(local_sum, shared);
  for (int64_t j = threadIdx.x; j < T; j += kRowThreads) {
    const float value = p[j] * inv_sum;
    p[j] = value;
    if (dropped) dropped[row * T + j] = dropout_value(value, uint64_t(row * T + j), dropout);
  }
}

// dst[i] = dropout(src[i]) over the flat [B,H,T,T] probabilities (index = flat position).
__global__ void dropout_kernel(float* dst, const float* src, int64_t n, DropoutParams dropout) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = dropout_value(src[i], uint64_t(i), dropout);
}

// One block per row: work holds dP = dO·Vᵀ; applies the dropout mask and scale (when on), then
// the softmax backward dS = P ⊙ (dP − Σ dP ⊙ P), in place. Masked keys have P = 0, so dS = 0.
__global__ void softmax_backward_kernel(float* work, const float* probs, int64_t T, DropoutParams dropout) {
  __shared__ float shared[kRowThreads];
  const int64_t row = blockIdx.x;
  float* w = work + row * T;
  const float* p = probs + row * T;
  float local_dot = 0.0f;
  for (int64_t j = threadIdx.x; j < T; j += kRowThreads) {
    float dp = w[j];
    if (dropout.p > 0.0f) dp = dropout_value(dp, uint64_t(row * T + j), dropout);
    w[j] = dp;
    local_dot += dp * p[j];
  }
  const float dot = block_sum(local_dot, shared);
  for (int64_t j = threadIdx.x; j < T; j += kRowThreads) w[j] = p[j] * (w[j] - dot);
}

DropoutParams dropout_params(const AttentionConfig& config) {
  DropoutParams d{};
  d.p = config.dropout_p;
  d.keep_scale = 1.0f / (1.0f - config.dropout_p);
  d.seed = config.seed;
  d.offset = config.offset;
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
  float* get() const { return static_cast<float*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

void check_blas_int(int64_t n, const char* what) {
  if (n > INT32_MAX) fail("attention (CUDA): ", what, " = ", n, " does not fit cuBLAS's int");
}

}  // namespace

void attention_forward(float* out, float* probs, const float* qkv, const int32_t* key_mask,
                       const AttentionConfig& config) {
  const int64_t B = config.batch, T = config.seq_len, H = config.num_heads, D = config.head_dim;
  const int64_t C = H * D, qkv_row = 3 * C;
  if (B * H * T == 0) return;
  check_blas_int(qkv_row, "3C");
  check_blas_int(T, "T");
  check_blas_int(H, "H");
  const float scale = softmax_scale(D);
  const DropoutParams dropout = dropout_params(config);
  const bool use_dropout = config.dropout_p > 0.0f;
  // Dropped probabilities feed P·V while the pre-dropout ones stay in probs for backward.
  StreamBuffer dropped(use_dropout ? size_t(B * H * T * T) * sizeof(float) : 0);

  for (int64_t b = 0; b < B; ++b) {  // S = Q Kᵀ / √D for every head of batch row b
    const float* q = qkv + b * T * qkv_row;
    rm_gemm(false, true, T, T, D, scale, q, qkv_row, D, q + C, qkv_row, D, probs + b * H * T * T, T, T * T, H);
  }
  masked_softmax_kernel<<<unsigned(B * H * T), kRowThreads, 0, stream()>>>(
      probs, use_dropout ? dropped.get() : nullptr, key_mask, T, H, config.causal, dropout);
  check_launch("masked_softmax_kernel");
  const float* p_used = use_dropout ? dropped.get() : probs;
  for (int64_t b = 0; b < B; ++b) {  // out = P V, heads side by side
    const float* v = qkv + b * T * qkv_row + 2 * C;
    rm_gemm(false, false, T, D, T, 1.0f, p_used + b * H * T * T, T, T * T, v, qkv_row, D, out + b * T * C, C, D, H);
  }
}

void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* probs, const int32_t* key_mask, const AttentionConfig& config) {
  (void)key_mask;  // masked probabilities are exactly 0, which already zeroes their gradients
  const int64_t B = config.batch, T = config.seq_len, H = config.num_heads, D = config.head_dim;
  const int64_t C = H * D, qkv_row = 3 * C;
  if (B * H * T == 0) return;
  check_blas_int(qkv_row, "3C");
  check_blas_int(T, "T");
  check_blas_int(H, "H");
  const float scale = softmax_scale(D);
  const DropoutParams dropout = dropout_params(config);
  const bool use_dropout = config.dropout_p > 0.0f;
  const int64_t head_block = T * T;

  // dV = dropout(P)ᵀ dO, with the dropped probabilities regenerated into scratch.
  const float* p_used = probs;
  if (use_dropout) {
    const int64_t n = B * H * T * T;
    const unsigned blocks = unsigned(std::min<int64_t>(blocks_for(n, 256), 65535));
    dropout_kernel<<<blocks, 256, 0, stream()>>>(scratch, probs, n, dropout);
    check_launch("dropout_kernel");
    p_used = scratch;
  }
  for (int64_t b = 0; b < B; ++b) {
    float* dv = dqkv + b * T * qkv_row + 2 * C;
    rm_gemm(true, false, T, D, T, 1.0f, p_used + b * H * head_block, T, head_block, dout + b * T * C, C, D,
            dv, qkv_row, D, H);
  }
  // dP = dO Vᵀ into scratch (after every dV GEMM read it: same stream).
  for (int64_t b = 0; b < B; ++b) {
    const float* v = qkv + b * T * qkv_row + 2 * C;
    rm_gemm(false, true, T, T, D, 1.0f, dout + b * T * C, C, D, v, qkv_row, D, scratch + b * H * head_block, T,
            head_block, H);
  }
  // dS = P ⊙ (dropout'(dP) − Σ dropout'(dP) ⊙ P).
  softmax_backward_kernel<<<unsigned(B * H * T), kRowThreads, 0, stream()>>>(scratch, probs, T, dropout);
  check_launch("softmax_backward_kernel");
  for (int64_t b = 0; b < B; ++b) {
    const float* q = qkv + b * T * qkv_row;
    const float* k = q + C;
    float* dq = dqkv + b * T * qkv_row;
    float* dk = dq + C;
    const float* ds = scratch + b * H * head_block;
    rm_gemm(false, false, T, D, T, scale, ds, T, head_block, k, qkv_row, D, dq, qkv_row, D, H);  // dQ = dS K / √D
    rm_gemm(true, false, T, D, T, scale, ds, T, head_block, q, qkv_row, D, dk, qkv_row, D, H);   // dK = dSᵀ Q / √D
  }
}

}  // namespace ww::kernels::cuda
