#include "kernels/linear.h"

#include <cblas.h>

#include "kernels/cpu/parallel.h"
#include "wattwise/core/error.h"

namespace ww::kernels::cpu {

namespace {
int blas_int(int64_t n) {
  WW_CHECK(n >= 0 && n <= INT32_MAX, "size ", n, " does not fit a BLAS int");
  return int(n);
}
}  // namespace

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t IC, int64_t OC, int64_t ld_out) {
  WW_CHECK(ld_out >= OC, "linear_forward: row stride ", ld_out, " < ", OC, " output features");
  if (N == 0 || OC == 0) return;
  // As torch's addmm: start from the broadcast bias and let sgemm add the product (beta = 1).
  float beta = 0.0f;
  if (bias) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < OC; ++o) out[n * ld_out + o] = bias[o];
    beta = 1.0f;
  }
  if (IC == 0) {
    if (!bias)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < OC; ++o) out[n * ld_out + o] = 0.0f;
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_int(N), blas_int(OC), blas_int(IC), 1.0f,
              inp, blas_int(IC), weight, blas_int(IC), beta, out, blas_int(ld_out));
}

void add_column_sums(float* sums, const float* x, int64_t N, int64_t C, int64_t ld) {
  const int64_t num_stripes = (C + kColumnStripe - 1) / kColumnStripe;
#pragma omp parallel for schedule(static) if (N * C >= kParallelMinWork)
  for (int64_t s = 0; s < num_stripes; ++s) {
    const int64_t c0 = s * kColumnStripe, width = c0 + kColumnStripe < C ? kColumnStripe : C - c0;
    double acc[kColumnStripe] = {};
    for (int64_t n = 0; n < N; ++n) {
      const float* row = x + n * ld + c0;
      for (int64_t j = 0; j < width; ++j) acc[j] += row[j];
    }
    for (int64_t j = 0; j < width; ++j) sums[c0 + j] = float(double(sums[c0 + j]) + acc[j]);
  }
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t IC, int64_t OC, int64_t ld_dout) {
  WW_CHECK(ld_dout >= OC, "linear_backward: row stride ", ld_dout, " < ", OC, " output features");
  if (N == 0 || OC == 0) {
    if (dinp)
      for (int64_t i = 0; i < N * IC; ++i) dinp[i] = 0.0f;
    return;
  }
  if (dweight && IC > 0)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blas_int(OC), blas_int(IC), blas_int(N), 1.0f,
                dout, blas_int(ld_dout), inp, blas_int(IC), 1.0f, dweight, blas_int(IC));
  if (dbias) add_column_sums(dbias, dout, N, OC, ld_dout);
  if (dinp && IC > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_int(N), blas_int(IC), blas_int(OC), 1.0f,
                dout, blas_int(ld_dout), weight, blas_int(IC), 0.0f, dinp, blas_int(IC));
}

}  // namespace ww::kernels::cpu
