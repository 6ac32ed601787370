#include "kernels/cross_entropy.h"

#include <cmath>

#include "kernels/cpu/parallel.h"
#include "wattwise/core/error.h"

namespace ww::kernels::cpu {

namespace {

// log Σ_k exp(x[k]), subtracting the maximum first so no exp overflows.
double log_sum_exp(const float* x, int64_t K) {
  float max_value = x[0];
  for (int64_t k = 1; k < K; ++k) max_value = x[k] > max_value ? x[k] : max_value;
  double sum = 0.0;
  for (int64_t k = 0; k < K; ++k) sum += std::exp(double(x[k]) - double(max_value));
  return double(max_value) + std::log(sum);
}

}  // namespace

void check_class_labels(const int32_t* labels, int64_t N, int64_t K) {
  for (int64_t n = 0; n < N; ++n)
    if (labels[n] != kIgnoreIndex && (labels[n] < 0 || labels[n] >= K))
      fail("cross_entropy: label ", labels[n], " at row ", n, " is outside [0, ", K,
           ") (use -100 to ignore a row)");
}

namespace {

// One row's loss given its lse (the forward's formula); weights w, or null for all 1.
float row_loss(const float* x, int64_t K, int32_t label, double eps, double lse, const float* w) {
  const double nll = lse - double(x[label]);
  if (w) {
    double smooth = 0.0;  // Σ_k w[k]·(−log p[k])
    if (eps != 0.0)
      for (int64_t k = 0; k < K; ++k) smooth += double(w[k]) * (lse - double(x[k]));
    return float((1.0 - eps) * double(w[label]) * nll + eps / double(K) * smooth);
  }
  if (eps == 0.0) return float(nll);
  double sum_x = 0.0;
  for (int64_t k = 0; k < K; ++k) sum_x += x[k];
  const double mean_nll = lse - sum_x / double(K);  // mean_k(−log p[k])
  return float((1.0 - eps) * nll + eps * mean_nll);
}

// One row's gradient given its lse. Element k is read before it is written, so d may alias x.
void row_gradient(float* d, const float* x, int64_t K, int32_t label, double eps, double scale, double lse,
                  const float* w) {
  if (w) {
    // d/dx[k] of (1−ε)·w[y]·(−log p[y]) + (ε/K)·Σ_j w[j]·(−log p[j]), with d(−log p[j])/dx[k] = p[k] − [k==j].
    double total_w = 0.0;
    for (int64_t k = 0; k < K; ++k) total_w += w[k];
    const double label_part = (1.0 - eps) * double(w[label]);
    const double p_factor = label_part + eps * total_w / double(K);
    for (int64_t k = 0; k < K; ++k) {
      const double target = (k == label ? label_part : 0.0) + eps * double(w[k]) / double(K);
      d[k] = float(scale * (p_factor * std::exp(double(x[k]) - lse) - target));
    }
    return;
  }
  const double smooth_target = eps / double(K);
  for (int64_t k = 0; k < K; ++k) {
    const double target = smooth_target + (k == label ? 1.0 - eps : 0.0);
    d[k] = float(scale * (std::exp(double(x[k]) - lse) - target));
  }
}

double effective_scale(float scale, const float* divisor) {
  return divisor ? double(scale) / double(divisor[0]) : double(scale);
}

}  // namespace

void cross_entropy_forward(float* losses, const float* logits, const int32_t* labels, int64_t N,
                           int64_t K, int64_t ld, float label_smoothing, const float* class_weights) {
  WW_CHECK(ld >= K, "cross_entropy_forward: row stride ", ld, " < ", K, " classes");
  check_class_labels(labels, N, K);
#pragma omp parallel for schedule(static) if (N * K >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    if (labels[n] == kIgnoreIndex || K == 0) {
      losses[n] = 0.0f;
      continue;
    }
    const float* x = logits + n * ld;
    losses[n] = row_loss(x, K, labels[n], label_smoothing, log_sum_exp(x, K), class_weights);
  }
}

void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* labels, int64_t N,
                            int64_t K, int64_t ld, float label_smoothing, float scale, const float* class_weights,
                            const float* scale_divisor) {
  WW_CHECK(ld >= K, "cross_entropy_backward: row stride ", ld, " < ", K, " classes");
  check_class_labels(labels, N, K);
  const double s = effective_scale(scale, scale_divisor);
#pragma omp parallel for schedule(static) if (N * K >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    float* d = dlogits + n * ld;
    if (labels[n] == kIgnoreIndex) {
      for (int64_t k = 0; k < K; ++k) d[k] = 0.0f;
      continue;
    }
    const float* x = logits + n * ld;
    row_gradient(d, x, K, labels[n], label_smoothing, s, log_sum_exp(x, K), class_weights);
  }
}

void cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits, const int32_t* labels,
                                    int64_t N, int64_t K, int64_t ld, float label_smoothing, float scale,
                                    const float* class_weights, const float* scale_divisor) {
  WW_CHECK(ld >= K, "cross_entropy_forward_backward: row stride ", ld, " < ", K, " classes");
  check_class_labels(labels, N, K);
  const double s = effective_scale(scale, scale_divisor);
#pragma omp parallel for schedule(static) if (N * K >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    float* d = dlogits + n * ld;
    if (labels[n] == kIgnoreIndex || K == 0) {
      losses[n] = 0.0f;
      for (int64_t k = 0; k < K; ++k) d[k] = 0.0f;
      continue;
    }
    const float* x = logits + n * ld;
    const double lse = log_sum_exp(x, K);
    losses[n] = row_loss(x, K, labels[n], label_smoothing, lse, class_weights);  // before d overwrites x
    row_gradient(d, x, K, labels[n], label_smoothing, s, lse, class_weights);
  }
}

int64_t count_valid_labels(const int32_t* labels, int64_t N) {
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) count += labels[n] != kIgnoreIndex;
  return count;
}

void class_weight_sum(float* sum, const int32_t* labels, int64_t N, const float* class_weights, int64_t K) {
  check_class_labels(labels, N, K);
  double total = 0.0;
  for (int64_t n = 0; n < N; ++n)
    if (labels[n] != kIgnoreIndex) total += class_weights[labels[n]];
  sum[0] = float(total);
}

void mse_forward(float* losses, const float* pred, const float* target, int64_t N) {
  for (int64_t n = 0; n < N; ++n) {
    const float diff = pred[n] - target[n];
    losses[n] = diff * diff;
  }
}

void mse_backward(float* dpred, const float* pred, const float* target, int64_t N, float scale) {
  for (int64_t n = 0; n < N; ++n) dpred[n] = scale * 2.0f * (pred[n] - target[n]);
}

}  // namespace ww::kernels::cpu
