#pragma once
// exp and erf in plain float arithmetic, so that loops calling them vectorise (`#pragma omp simd`,
// with -fno-trapping-math for the selects): glibc's expf/erff are calls the compiler cannot
// vectorise without -ffast-math, and GELU's erff alone was 11% of CPU inference time. Both are the approximations PyTorch's vectorised CPU kernels
// use, so our numbers stay as close to transformers' as before:
//   exp_approx: Cephes' expf (Cody-Waite range reduction, degree-5 minimax polynomial), within
//     2 ulp over the float range; 0 below −87.3, and inputs above 88.3 saturate at e^88.3.
//   erf_approx: Abramowitz & Stegun 7.1.26, absolute error 1.5e-7 plus float rounding (4.3e-7
//     measured): what GELU's 1 + erf needs, though not erf's relative accuracy near 0.
// tests/kernels/vector_math_test.cpp bounds both against the library functions over their whole range.
#include <cstdint>
#include <cstring>

namespace ww::kernels::cpu {

inline float exp_approx(float x) {
  const float clamped = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
  // n = round(x / ln 2) by the 1.5·2^23 trick (an add, no call), then r = x − n·ln 2 in two parts.
  const float shifted = clamped * 1.44269504088896341f + 12582912.0f;
  const float n = shifted - 12582912.0f;
  int32_t n_bits;
  std::memcpy(&n_bits, &shifted, sizeof n_bits);
  const int32_t exponent = n_bits - 0x4B400000;  // the integer n
  float r = clamped - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r2 + r + 1.0f;
  const int32_t scale_bits = (exponent + 127) << 23;  // 2^n, n in [−126, 127] after the clamp
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return x < -87.3f ? 0.0f : y * scale;
}

// x[0] + … + x[n−1] in one fixed order whatever the compiler vectorises: eight interleaved partial
// sums (lane k takes x[k], x[k+8], …; the inner loop vectorises without reordering), then a fixed
// tree. `#pragma omp simd reduction` would let the order depend on the vector width GCC picks for
// each loop, and a masked and an unmasked softmax row must round the same.
inline float sum_fixed_order(const float* x, int64_t n) {
  float partial[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) partial[k] += x[j + k];
  for (int k = 0; j + k < n; ++k) partial[k] += x[j + k];
  return ((partial[0] + partial[4]) + (partial[2] + partial[6])) + ((partial[1] + partial[5]) + (partial[3] + partial[7]));
}

inline float erf_approx(float x) {
  const float a = x < 0.0f ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float magnitude = 1.0f - p * t * exp_approx(-a * a);
  return x < 0.0f ? -magnitude : magnitude;
}

}  // namespace ww::kernels::cpu
