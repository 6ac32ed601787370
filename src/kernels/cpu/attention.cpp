#include "kernels/attention.h"

#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/softmax.h"
#include "kernels/cpu/vector_math.h"
#include "wattwise/core/rng.h"

namespace ww::kernels::cpu {
namespace {

// Debian's OpenBLAS is the pthread build: unlike the OpenMP build it does not notice that it is
// called from inside an OpenMP region and would fan every call out to its own thread pool. Inside
// the (batch, head) loop each call must run on its calling thread, so that concurrent calls stay
// independent and the cores are not oversubscribed. The previous setting comes back afterwards
// for the large single sgemm calls of the linear layers.
class SingleThreadedBlasScope {
 public:
  SingleThreadedBlasScope() : saved_threads_(openblas_get_num_threads()) {
    if (saved_threads_ != 1) openblas_set_num_threads(1);
  }
  ~SingleThreadedBlasScope() {
    if (saved_threads_ != 1) openblas_set_num_threads(saved_threads_);
  }
  SingleThreadedBlasScope(const SingleThreadedBlasScope&) = delete;
  SingleThreadedBlasScope& operator=(const SingleThreadedBlasScope&) = delete;

 private:
  int saved_threads_;
};

// Row-major sgemm, C[m,n] = alpha · op(A) · op(B), C overwritten (beta = 0 never reads C).
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans,
              transpose_b ? CblasTrans : CblasNoTrans, int(m), int(n), int(k), alpha, a, int(lda),
              b, int(ldb), 0.0f, c, int(ldc));
}

// Softmax of one score row over the keys this query may see; every other entry becomes exactly 0
// (Hugging Face adds finfo.min to masked scores, whose exp underflows to exactly 0 as well).
// key_mask is the batch row's mask, or null when every key is real.
void masked_softmax_row(float* row, int64_t query, const int32_t* key_mask,
                        const AttentionConfig& config) {
  const int64_t seq_len = config.seq_len;
  const int64_t end = config.causal ? query + 1 : seq_len;  // keys at or past `end` are future
  auto is_real = [key_mask](int64_t key) { return key_mask == nullptr || key_mask[key] != 0; };

  // Vectorised: vector_math.h's exp, the max as a SIMD reduction (exact in any order), the sum in
  // sum_fixed_order's one order, so a mask of all real keys rounds exactly as no mask.
  float max_score = -INFINITY;
  int real_keys = 0;
#pragma omp simd reduction(max : max_score) reduction(+ : real_keys)
  for (int64_t j = 0; j < end; ++j) {
    const bool real = is_real(j);
    max_score = real && row[j] > max_score ? row[j] : max_score;
    real_keys += real;
  }
  if (real_keys == 0) {  // nothing to attend to: probabilities 0, so the output row is 0
    for (int64_t j = 0; j < seq_len; ++j) row[j] = 0.0f;
    return;
  }
#pragma omp simd
  for (int64_t j = 0; j < end; ++j) row[j] = is_real(j) ? exp_approx(row[j] - max_score) : 0.0f;
  const float sum = sum_fixed_order(row, end);
  for (int64_t j = end; j < seq_len; ++j) row[j] = 0.0f;
  const float inv_sum = 1.0f / sum;
  for (int64_t j = 0; j < end; ++j) row[j] *= inv_sum;
}

// dst[j] = src[j] · keep_scale where element (row, j) survives dropout, else 0 (dst may alias
// src): the attention rule of core/rng.h, one Philox call per 16 keys.
void dropout_row(float* dst, const float* src, int64_t length, uint64_t row, const AttentionConfig& config) {
  const uint32_t threshold = attention_dropout_threshold(config.dropout_p);
  const float keep_scale = attention_dropout_keep_scale(config.dropout_p);
  Philox4 words{};
  for (int64_t j = 0; j < length; ++j) {
    if (j % 16 == 0)
      words = philox_block(config.seed, config.offset, attention_dropout_block(row, length, j));
    dst[j] = attention_dropout_keeps(words, j, threshold) ? src[j] * keep_scale : 0.0f;
  }
}

// Hugging Face multiplies the scores by head_dim ** -0.5 computed in double, then rounded to fp32.
float softmax_scale(int64_t head_dim) { return float(1.0 / std::sqrt(double(head_dim))); }

}  // namespace

void attention_forward(float* out, float* probs, const float* qkv, const int32_t* key_mask,
                       const AttentionConfig& config) {
  const int64_t B = config.batch, T = config.seq_len, H = config.num_heads, D = config.head_dim;
  const int64_t C = H * D, qkv_row = 3 * C;
  if (B * H * T == 0) return;
  const float scale = softmax_scale(D);
  const bool use_dropout = config.dropout_p > 0.0f;
  // Dropped probabilities feed P·V while the pre-dropout ones stay in probs for backward.
  std::vector<float> dropped_probs(use_dropout ? size_t(omp_get_max_threads()) * T * T : 0);
  SingleThreadedBlasScope single_threaded_blas;

#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    const float* q = qkv + b * T * qkv_row + h * D;
    const float* k = q + C;
    const float* v = q + 2 * C;
    const int32_t* mask = key_mask ? key_mask + b * T : nullptr;
    float* p = probs + bh * T * T;

    gemm(false, true, T, T, D, scale, q, qkv_row, k, qkv_row, p, T);  // S = Q Kᵀ / √D
    for (int64_t i = 0; i < T; ++i) masked_softmax_row(p + i * T, i, mask, config);

    const float* p_used = p;
    if (use_dropout) {
      float* dropped = dropped_probs.data() + size_t(omp_get_thread_num()) * T * T;
      for (int64_t i = 0; i < T; ++i)
        dropout_row(dropped + i * T, p + i * T, T, uint64_t(bh * T + i), config);
      p_used = dropped;
    }
    gemm(false, false, T, D, T, 1.0f, p_used, T, v, qkv_row, out + b * T * C + h * D, C);
  }
}

void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* probs, const int32_t* key_mask,
                        const AttentionConfig& config) {
  (void)key_mask;  // masked probabilities are exactly 0, which already zeroes their gradients
  const int64_t B = config.batch, T = config.seq_len, H = config.num_heads, D = config.head_dim;
  const int64_t C = H * D, qkv_row = 3 * C;
  if (B * H * T == 0) return;
  const float scale = softmax_scale(D);
  const bool use_dropout = config.dropout_p > 0.0f;
  SingleThreadedBlasScope single_threaded_blas;

#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    const float* q = qkv + b * T * qkv_row + h * D;
    const float* k = q + C;
    const float* v = q + 2 * C;
    float* dq = dqkv + b * T * qkv_row + h * D;
    float* dk = dq + C;
    float* dv = dq + 2 * C;
    const float* dout_head = dout + b * T * C + h * D;
    const float* p = probs + bh * T * T;
    float* work = scratch + bh * T * T;

    // dV = dropout(P)ᵀ dO, with the dropped probabilities regenerated into work.
    const float* p_used = p;
    if (use_dropout) {
      for (int64_t i = 0; i < T; ++i)
        dropout_row(work + i * T, p + i * T, T, uint64_t(bh * T + i), config);
      p_used = work;
    }
    gemm(true, false, T, D, T, 1.0f, p_used, T, dout_head, C, dv, qkv_row);

    // dP = dropout'(dO Vᵀ): the same mask and scale applied to the gradient.
    gemm(false, true, T, T, D, 1.0f, dout_head, C, v, qkv_row, work, T);
    if (use_dropout)
      for (int64_t i = 0; i < T; ++i)
        dropout_row(work + i * T, work + i * T, T, uint64_t(bh * T + i), config);

    // dS = P ⊙ (dP − Σ dP ⊙ P): zero wherever P is, i.e. at masked keys.
    for (int64_t i = 0; i < T; ++i) softmax_backward_row(work + i * T, p + i * T, work + i * T, T);

    gemm(false, false, T, D, T, scale, work, T, k, qkv_row, dq, qkv_row);  // dQ = dS K / √D
    gemm(true, false, T, D, T, scale, work, T, q, qkv_row, dk, qkv_row);   // dK = dSᵀ Q / √D
  }
}

}  // namespace ww::kernels::cpu
