#include "kernels/softmax.h"

#include <cmath>

#include "kernels/cuda/device_util.cuh"

namespace ww::kernels::cuda {

namespace {

// Each thread handles the same columns in every pass and writes only in the last one, which
// recomputes exp(x − max) (the same value as the sum's): out may alias inp, and a 16-bit out is
// rounded once.
template <typename T>
__global__ void softmax_forward_kernel(T* out, const T* inp, int64_t cols) {
  const T* x = inp + int64_t(blockIdx.x) * cols;
  T* y = out + int64_t(blockIdx.x) * cols;
  float max_value = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) max_value = fmaxf(max_value, load_float(x[j]));
  max_value = block_max(max_value);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += expf(load_float(x[j]) - max_value);
  const float inv_sum = 1.0f / block_sum(sum);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    y[j] = store_float<T>(expf(load_float(x[j]) - max_value) * inv_sum);
}

// The dot product is complete (block_sum synchronises) before dinp is written: dinp may alias dout.
template <typename T>
__global__ void softmax_backward_kernel(T* dinp, const T* out, const T* dout, int64_t cols) {
  const int64_t offset = int64_t(blockIdx.x) * cols;
  float dot = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dot += load_float(dout[offset + j]) * load_float(out[offset + j]);
  dot = block_sum(dot);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    dinp[offset + j] = store_float<T>(load_float(out[offset + j]) * (load_float(dout[offset + j]) - dot));
}

}  // namespace

void softmax_forward(void* out, const void* inp, int64_t rows, int64_t cols, DType dtype) {
  if (rows == 0 || cols == 0) return;
  if (rows > INT32_MAX) fail("softmax_forward: ", rows, " rows is more than this CUDA kernel handles");
  dispatch_activation(dtype, "softmax_forward", [&](auto tag) {
    using E = decltype(tag);
    softmax_forward_kernel<E><<<unsigned(rows), kThreads, 0, stream()>>>(static_cast<E*>(out),
                                                                         static_cast<const E*>(inp), cols);
  });
  check_launch("softmax_forward_kernel");
}

void softmax_backward(void* dinp, const void* out, const void* dout, int64_t rows, int64_t cols, DType dtype) {
  if (rows == 0 || cols == 0) return;
  if (rows > INT32_MAX) fail("softmax_backward: ", rows, " rows is more than this CUDA kernel handles");
  dispatch_activation(dtype, "softmax_backward", [&](auto tag) {
    using E = decltype(tag);
    softmax_backward_kernel<E><<<unsigned(rows), kThreads, 0, stream()>>>(
        static_cast<E*>(dinp), static_cast<const E*>(out), static_cast<const E*>(dout), cols);
  });
  check_launch("softmax_backward_kernel");
}

}  // namespace ww::kernels::cuda
