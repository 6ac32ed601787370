#include "kernels/cpu/quantized.h"

#include <cblas.h>

#include <cmath>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/parallel.h"
#include "kernels/quant_math.h"
#include "wattwise/core/error.h"

namespace ww::kernels::cpu {

namespace {
int blas_int(int64_t n) {
  WW_CHECK(n >= 0 && n <= INT32_MAX, "size ", n, " does not fit a BLAS int");
  return int(n);
}

// out[n,o] = alpha[o] · out[n,o] + bias[o] (alpha per output channel, or one value when per_channel
// is false).
void scale_and_bias(float* out, const float* alpha, bool per_channel, const float* bias, int64_t N, int64_t OC) {
#pragma omp parallel for schedule(static) if (N * OC >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    float* row = out + n * OC;
    for (int64_t o = 0; o < OC; ++o) row[o] = row[o] * alpha[per_channel ? o : 0] + (bias ? bias[o] : 0.0f);
  }
}
}  // namespace

void quantize_int8_per_channel(int8_t* q, float* scales, const float* w, int64_t OC, int64_t IC) {
#pragma omp parallel for schedule(static) if (OC * IC >= kParallelMinWork)
  for (int64_t o = 0; o < OC; ++o) {
    const float* row = w + o * IC;
    float amax = 0.0f;
    for (int64_t i = 0; i < IC; ++i) amax = std::fmax(amax, std::fabs(row[i]));
    const float scale = scale_for_absmax(amax, kInt8Max);
    scales[o] = scale;
    const float inv = 1.0f / scale;
    for (int64_t i = 0; i < IC; ++i) q[o * IC + i] = quantize_int8(row[i], inv);
  }
}

float absmax(const float* x, int64_t n) {
  float amax = 0.0f;
  bool nan = false;
#pragma omp parallel for schedule(static) reduction(max : amax) reduction(|| : nan) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) {
    nan = nan || std::isnan(x[i]);
    amax = std::fmax(amax, std::fabs(x[i]));
  }
  return nan ? NAN : amax;
}

float quantize_fp8_per_tensor(uint8_t* q, const float* w, int64_t n) {
  const float scale = scale_for_absmax(absmax(w, n), kFp8E4M3Max);
  const float inv = 1.0f / scale;
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) q[i] = float_to_e4m3(w[i] * inv);
  return scale;
}

void fp8_round(float* out, const float* x, float scale, int64_t n) {
  const float inv = 1.0f / scale;
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) out[i] = e4m3_to_float(float_to_e4m3(x[i] * inv)) * scale;
}

void int8_weight_linear_forward(float* out, const float* inp, const int8_t* q, const float* scales,
                                const float* bias, int64_t N, int64_t IC, int64_t OC, float* workspace) {
#pragma omp parallel for schedule(static) if (OC * IC >= kParallelMinWork)
  for (int64_t o = 0; o < OC; ++o)
    for (int64_t i = 0; i < IC; ++i) workspace[o * IC + i] = float(q[o * IC + i]) * scales[o];
  linear_forward(out, inp, workspace, bias, N, IC, OC);
}

void int8_gemm_int32(int32_t* acc, const int8_t* a, const int8_t* b, int64_t N, int64_t IC, int64_t OC) {
  WW_CHECK(IC < (int64_t(1) << 17), "int8 GEMM: ", IC, " input features could overflow int32 accumulation");
#pragma omp parallel for collapse(2) schedule(static) if (N * OC * IC >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      const int8_t* x = a + n * IC;
      const int8_t* w = b + o * IC;
      int32_t sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < IC; ++i) sum += int32_t(x[i]) * int32_t(w[i]);
      acc[n * OC + o] = sum;
    }
}

void int8_linear_forward(float* out, const float* inp, const int8_t* q, const float* scales, float input_scale,
                         const float* bias, int64_t N, int64_t IC, int64_t OC, int8_t* quantized_inp,
                         int32_t* acc) {
  const float inv = 1.0f / input_scale;
#pragma omp parallel for schedule(static) if (N * IC >= kParallelMinWork)
  for (int64_t i = 0; i < N * IC; ++i) quantized_inp[i] = quantize_int8(inp[i], inv);
  int8_gemm_int32(acc, quantized_inp, q, N, IC, OC);
#pragma omp parallel for schedule(static) if (N * OC >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      const int32_t sum = acc[n * OC + o];
      out[n * OC + o] = float(sum) * (input_scale * scales[o]) + (bias ? bias[o] : 0.0f);
    }
}

void fp8_linear_forward(float* out, const float* inp, const uint8_t* q, float weight_scale, float input_scale,
                        const float* bias, int64_t N, int64_t IC, int64_t OC, float* workspace) {
  if (N == 0 || OC == 0) return;
  float* x = workspace;       // e4m3 values of the inputs, unscaled
  float* w = x + N * IC;      // e4m3 values of the weight, unscaled
  const float inv = 1.0f / input_scale;
#pragma omp parallel for schedule(static) if (N * IC >= kParallelMinWork)
  for (int64_t i = 0; i < N * IC; ++i) x[i] = e4m3_to_float(float_to_e4m3(inp[i] * inv));
#pragma omp parallel for schedule(static) if (OC * IC >= kParallelMinWork)
  for (int64_t i = 0; i < OC * IC; ++i) w[i] = e4m3_to_float(q[i]);
  if (IC == 0) {
    for (int64_t i = 0; i < N * OC; ++i) out[i] = 0.0f;
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_int(N), blas_int(OC), blas_int(IC), 1.0f, x,
                blas_int(IC), w, blas_int(IC), 0.0f, out, blas_int(OC));
  }
  const float alpha = input_scale * weight_scale;
  scale_and_bias(out, &alpha, /*per_channel=*/false, bias, N, OC);
}

}  // namespace ww::kernels::cpu
