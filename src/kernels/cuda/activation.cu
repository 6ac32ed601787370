#include "kernels/activation.h"

#include <cmath>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/map_kernels.cuh"

namespace ww::kernels::cuda {

// Same formulas as the CPU reference, in float.

namespace {

constexpr float kSqrtHalf = 0.70710678118654752440f;    // 1/√2
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;  // 1/√(2π)

struct Gelu {
  __device__ float operator()(float x) const { return x * 0.5f * (1.0f + erff(x * kSqrtHalf)); }
};
struct GeluGrad {  // (inp, dout)
  __device__ float operator()(float x, float dout) const {
    const float cdf = 0.5f * (1.0f + erff(x * kSqrtHalf));
    const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
    return dout * (cdf + x * pdf);
  }
};
constexpr float kSqrt2OverPi = 0.79788456080286535588f;  // √(2/π)
constexpr float kGeluCubic = 0.044715f;
struct GeluTanh {
  __device__ float operator()(float x) const {
    return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + kGeluCubic * x * x * x)));
  }
};
struct GeluTanhGrad {  // (inp, dout)
  __device__ float operator()(float x, float dout) const {
    const float t = tanhf(kSqrt2OverPi * (x + kGeluCubic * x * x * x));
    const float dinner = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
    return dout * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dinner);
  }
};
struct Relu {
  __device__ float operator()(float x) const { return x < 0.0f ? 0.0f : x; }  // NaN propagates, as torch
};
struct ReluGrad {
  __device__ float operator()(float x, float dout) const { return x <= 0.0f ? 0.0f : dout; }
};
struct Tanh {
  __device__ float operator()(float x) const { return tanhf(x); }
};
struct TanhGrad {  // (out, dout)
  __device__ float operator()(float y, float dout) const { return dout * (1.0f - y * y); }
};

}  // namespace

void gelu_forward(void* out, const void* inp, int64_t n, DType dtype) {
  launch_unary(out, inp, n, dtype, Gelu{}, "gelu_forward_kernel");
}
void gelu_backward(void* dinp, const void* inp, const void* dout, int64_t n, DType dtype) {
  launch_binary(dinp, inp, dout, n, dtype, GeluGrad{}, "gelu_backward_kernel");
}
void gelu_tanh_forward(void* out, const void* inp, int64_t n, DType dtype) {
  launch_unary(out, inp, n, dtype, GeluTanh{}, "gelu_tanh_forward_kernel");
}
void gelu_tanh_backward(void* dinp, const void* inp, const void* dout, int64_t n, DType dtype) {
  launch_binary(dinp, inp, dout, n, dtype, GeluTanhGrad{}, "gelu_tanh_backward_kernel");
}
void relu_forward(void* out, const void* inp, int64_t n, DType dtype) {
  launch_unary(out, inp, n, dtype, Relu{}, "relu_forward_kernel");
}
void relu_backward(void* dinp, const void* inp, const void* dout, int64_t n, DType dtype) {
  launch_binary(dinp, inp, dout, n, dtype, ReluGrad{}, "relu_backward_kernel");
}
void tanh_forward(void* out, const void* inp, int64_t n, DType dtype) {
  launch_unary(out, inp, n, dtype, Tanh{}, "tanh_forward_kernel");
}
void tanh_backward(void* dinp, const void* out, const void* dout, int64_t n, DType dtype) {
  launch_binary(dinp, out, dout, n, dtype, TanhGrad{}, "tanh_backward_kernel");
}

}  // namespace ww::kernels::cuda
