#include "kernels/quantized.h"

#include <cblas.h>

#include <cmath>
#include <vector>

#include "kernels/linear.h"
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
  linear_forward(out, inp, workspace, bias, N, IC, OC, OC);
}

// out[r] = Σ_i x[i] · w[r·IC + i] for r < 4, exact. Plain loops (no `omp simd`), so GCC recognises
// the int16 dot product (pmaddwd); compiled for AVX-512BW, AVX2 and baseline x86-64, picked at
// load time (the library's default target is baseline x86-64).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=skylake-avx512", "avx2", "default")))
#endif
static void dot_four_rows(int32_t* out, const int16_t* x, const int16_t* w, int64_t IC) {
  const int16_t *w0 = w, *w1 = w0 + IC, *w2 = w1 + IC, *w3 = w2 + IC;
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int64_t i = 0; i < IC; ++i) {
    s0 += int32_t(x[i]) * int32_t(w0[i]);
    s1 += int32_t(x[i]) * int32_t(w1[i]);
    s2 += int32_t(x[i]) * int32_t(w2[i]);
    s3 += int32_t(x[i]) * int32_t(w3[i]);
  }
  out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

void int8_gemm_int32(int32_t* acc, const int8_t* a, const int8_t* b, int64_t N, int64_t IC, int64_t OC) {
  WW_CHECK(IC < (int64_t(1) << 17), "int8 GEMM: ", IC, " input features could overflow int32 accumulation");
  // Widened to int16 first: int16 · int16 → int32 dot products are what x86-64's baseline SIMD
  // (pmaddwd) does natively, so the compiler vectorizes the inner loop well. Products and sums
  // stay exact integers.
  std::vector<int16_t> a16(size_t(N * IC)), b16(size_t(OC * IC));
#pragma omp parallel for schedule(static) if (N * IC >= kParallelMinWork)
  for (int64_t i = 0; i < N * IC; ++i) a16[size_t(i)] = a[i];
#pragma omp parallel for schedule(static) if (OC * IC >= kParallelMinWork)
  for (int64_t i = 0; i < OC * IC; ++i) b16[size_t(i)] = b[i];
  // Blocks of 4 weight rows per input row: each input row is read once per 4 outputs.
  constexpr int64_t kRows = 4;
  const int64_t o_blocks = (OC + kRows - 1) / kRows;
#pragma omp parallel for collapse(2) schedule(static) if (N * OC * IC >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t ob = 0; ob < o_blocks; ++ob) {
      const int16_t* x = a16.data() + n * IC;
      const int64_t o0 = ob * kRows;
      if (o0 + kRows <= OC) {
        dot_four_rows(acc + n * OC + o0, x, b16.data() + o0 * IC, IC);
      } else {
        for (int64_t o = o0; o < OC; ++o) {
          const int16_t* w = b16.data() + o * IC;
          int32_t sum = 0;
          for (int64_t i = 0; i < IC; ++i) sum += int32_t(x[i]) * int32_t(w[i]);
          acc[n * OC + o] = sum;
        }
      }
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
