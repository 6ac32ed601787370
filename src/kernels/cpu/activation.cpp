#include "kernels/activation.h"

#include <cmath>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vector_math.h"

namespace ww::kernels::cpu {

namespace {
constexpr float kSqrtHalf = 0.70710678118654752440f;      // 1/√2
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;    // 1/√(2π)
constexpr float kSqrt2OverPi = 0.79788456080286535588f;  // √(2/π)
constexpr float kGeluCubic = 0.044715f;
}  // namespace

void gelu_tanh_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork / 4)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    out[i] = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + kGeluCubic * x * x * x)));
  }
}

void gelu_tanh_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork / 4)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float t = std::tanh(kSqrt2OverPi * (x + kGeluCubic * x * x * x));
    const float dinner = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
    dinp[i] = dout[i] * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dinner);
  }
}

// erf and exp as vectorisable arithmetic (vector_math.h: the approximations PyTorch's CPU GELU uses).
void gelu_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinWork / 4)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    out[i] = x * 0.5f * (1.0f + erf_approx(x * kSqrtHalf));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinWork / 4)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float cdf = 0.5f * (1.0f + erf_approx(x * kSqrtHalf));
    const float pdf = kInvSqrt2Pi * exp_approx(-0.5f * x * x);
    dinp[i] = dout[i] * (cdf + x * pdf);
  }
}

void relu_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) out[i] = inp[i] < 0.0f ? 0.0f : inp[i];  // NaN propagates, as torch
}

void relu_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) dinp[i] = inp[i] <= 0.0f ? 0.0f : dout[i];
}

void tanh_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork / 4)
  for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(inp[i]);
}

void tanh_backward(float* dinp, const float* out, const float* dout, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
}

}  // namespace ww::kernels::cpu
