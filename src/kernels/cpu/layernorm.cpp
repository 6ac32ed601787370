#include "kernels/layernorm.h"

#include <cmath>

#include "kernels/cpu/parallel.h"

namespace ww::kernels::cpu {

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps) {
  if (C == 0) return;
#pragma omp parallel for schedule(static) if (N * C >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = inp + n * C;
    // Two passes in double: the statistics come out correctly rounded, so they agree with torch's
    // to the last bit or so whatever summation order torch used.
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < C; ++c) sum += x[c];
    const double m = sum / double(C);
    double squares = 0.0;
#pragma omp simd reduction(+ : squares)
    for (int64_t c = 0; c < C; ++c) {
      const double d = double(x[c]) - m;
      squares += d * d;
    }
    const float row_mean = float(m);
    const float row_rstd = float(1.0 / std::sqrt(squares / double(C) + double(eps)));
    mean[n] = row_mean;
    rstd[n] = row_rstd;
    float* y = out + n * C;
    for (int64_t c = 0; c < C; ++c) y[c] = (x[c] - row_mean) * row_rstd * weight[c] + bias[c];
  }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        bool accumulate) {
  if (C == 0) return;
  // Input gradient: rows are independent.
  if (dinp) {
#pragma omp parallel for schedule(static) if (N * C >= kParallelMinWork)
    for (int64_t n = 0; n < N; ++n) {
      const float* x = inp + n * C;
      const float* d = dout + n * C;
      const float row_mean = mean[n], row_rstd = rstd[n];
      double sum_g = 0.0, sum_g_xhat = 0.0;
#pragma omp simd reduction(+ : sum_g, sum_g_xhat)
      for (int64_t c = 0; c < C; ++c) {
        const float xhat = (x[c] - row_mean) * row_rstd;
        const float g = d[c] * weight[c];
        sum_g += g;
        sum_g_xhat += double(g) * double(xhat);
      }
      const float mean_g = float(sum_g / double(C));
      const float mean_g_xhat = float(sum_g_xhat / double(C));
      float* out = dinp + n * C;
      for (int64_t c = 0; c < C; ++c) {
        const float xhat = (x[c] - row_mean) * row_rstd;
        const float g = d[c] * weight[c];
        const float value = row_rstd * (g - mean_g - xhat * mean_g_xhat);
        out[c] = accumulate ? out[c] + value : value;
      }
    }
  }
  if (!dweight && !dbias) return;
  // Parameter gradients: a thread owns a column stripe and sums it over rows in order.
  const int64_t num_stripes = (C + kColumnStripe - 1) / kColumnStripe;
#pragma omp parallel for schedule(static) if (N * C >= kParallelMinWork)
  for (int64_t s = 0; s < num_stripes; ++s) {
    const int64_t c0 = s * kColumnStripe, width = c0 + kColumnStripe < C ? kColumnStripe : C - c0;
    double acc_weight[kColumnStripe] = {}, acc_bias[kColumnStripe] = {};
    for (int64_t n = 0; n < N; ++n) {
      const float* x = inp + n * C + c0;
      const float* d = dout + n * C + c0;
      const float row_mean = mean[n], row_rstd = rstd[n];
      for (int64_t j = 0; j < width; ++j) {
        const float xhat = (x[j] - row_mean) * row_rstd;
        acc_weight[j] += double(d[j]) * double(xhat);
        acc_bias[j] += d[j];
      }
    }
    for (int64_t j = 0; j < width; ++j) {
      if (dweight) dweight[c0 + j] = float(double(dweight[c0 + j]) + acc_weight[j]);
      if (dbias) dbias[c0 + j] = float(double(dbias[c0 + j]) + acc_bias[j]);
    }
  }
}

}  // namespace ww::kernels::cpu
