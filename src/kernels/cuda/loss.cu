#include "kernels/cuda/loss.h"

#include <cmath>

#include "kernels/cuda/device_util.cuh"

namespace ww::kernels::cuda {

namespace {

constexpr int32_t kIgnoreIndex = -100;

// log Σ_k exp(x[k]) of one row, max-subtracted and summed in double as on the CPU. Block-wide.
template <typename T>
__device__ double row_log_sum_exp(const T* x, int64_t K) {
  float max_value = -INFINITY;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) max_value = fmaxf(max_value, load_float(x[k]));
  max_value = block_max(max_value);
  double sum = 0.0;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) sum += exp(double(load_float(x[k])) - double(max_value));
  return double(max_value) + log(block_sum(sum));
}

// One block per row. The label is the same for the whole block, so the early returns are uniform.
template <typename T>
__global__ void cross_entropy_forward_kernel(float* losses, const T* logits, const int32_t* labels, int64_t K,
                                             double eps, int* error) {
  const int64_t n = blockIdx.x;
  const int32_t label = labels[n];
  if (label == kIgnoreIndex) {
    if (threadIdx.x == 0) losses[n] = 0.0f;
    return;
  }
  if (label < 0 || label >= K) {
    if (threadIdx.x == 0) {
      record_input_error(error, kBadLabel, n, 0, label, K);
      losses[n] = NAN;
    }
    return;
  }
  const T* x = logits + n * K;
  const double lse = row_log_sum_exp(x, K);
  const double nll = lse - double(load_float(x[label]));
  double loss = nll;
  if (eps != 0.0) {
    double sum_x = 0.0;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) sum_x += load_float(x[k]);
    const double mean_nll = lse - block_sum(sum_x) / double(K);  // mean_k(−log p[k])
    loss = (1.0 - eps) * nll + eps * mean_nll;
  }
  if (threadIdx.x == 0) losses[n] = float(loss);
}

// One block per row; lse is complete before any element is written, and each thread reads x[k]
// before writing d[k]: dlogits may alias logits.
template <typename T>
__global__ void cross_entropy_backward_kernel(T* dlogits, const T* logits, const int32_t* labels,
                                              int64_t K, double eps, double scale, int* error) {
  const int64_t n = blockIdx.x;
  const int32_t label = labels[n];
  T* d = dlogits + n * K;
  if (label == kIgnoreIndex) {
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) d[k] = store_float<T>(0.0f);
    return;
  }
  if (label < 0 || label >= K) {
    if (threadIdx.x == 0) record_input_error(error, kBadLabel, n, 0, label, K);
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) d[k] = store_float<T>(NAN);
    return;
  }
  const T* x = logits + n * K;
  const double lse = row_log_sum_exp(x, K);
  const double smooth_target = eps / double(K);
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
    const double target = smooth_target + (k == label ? 1.0 - eps : 0.0);
    d[k] = store_float<T>(float(scale * (exp(double(load_float(x[k])) - lse) - target)));
  }
}

__global__ void count_valid_labels_kernel(unsigned long long* count, const int32_t* labels, int64_t N) {
  unsigned long long mine = 0;
  WW_GRID_STRIDE(n, N) mine += labels[n] != kIgnoreIndex;
  if (mine) atomicAdd(count, mine);  // integer: exact in any order
}

template <typename T>
__global__ void mse_forward_kernel(float* losses, const T* pred, const float* target, int64_t N) {
  WW_GRID_STRIDE(n, N) {
    const float diff = load_float(pred[n]) - target[n];
    losses[n] = diff * diff;
  }
}

template <typename T>
__global__ void mse_backward_kernel(T* dpred, const T* pred, const float* target, int64_t N, float scale) {
  WW_GRID_STRIDE(n, N) dpred[n] = store_float<T>(scale * 2.0f * (load_float(pred[n]) - target[n]));
}

}  // namespace

void cross_entropy_forward(float* losses, const void* logits, DType dtype, const int32_t* labels, int64_t N,
                           int64_t K, float label_smoothing) {
  if (N == 0) return;
  WW_CHECK(K > 0 && N <= INT32_MAX, "cross_entropy_forward: N = ", N, ", K = ", K);
  dispatch_activation(dtype, "cross_entropy_forward", [&](auto tag) {
    using E = decltype(tag);
    cross_entropy_forward_kernel<E><<<unsigned(N), kThreads, 0, stream()>>>(
        losses, static_cast<const E*>(logits), labels, K, double(label_smoothing), input_error_record());
  });
  check_launch_and_inputs("cross_entropy_forward_kernel");
}

void cross_entropy_backward(void* dlogits, const void* logits, DType dtype, const int32_t* labels, int64_t N,
                            int64_t K, float label_smoothing, float scale) {
  if (N == 0) return;
  WW_CHECK(K > 0 && N <= INT32_MAX, "cross_entropy_backward: N = ", N, ", K = ", K);
  dispatch_activation(dtype, "cross_entropy_backward", [&](auto tag) {
    using E = decltype(tag);
    cross_entropy_backward_kernel<E><<<unsigned(N), kThreads, 0, stream()>>>(
        static_cast<E*>(dlogits), static_cast<const E*>(logits), labels, K, double(label_smoothing),
        double(scale), input_error_record());
  });
  check_launch_and_inputs("cross_entropy_backward_kernel");
}

int64_t count_valid_labels(const int32_t* labels, int64_t N) {
  // Pending input errors (e.g. a bad label of an earlier launch) surface here: it syncs anyway.
  unsigned long long host_count = 0;
  if (N > 0) {
    unsigned long long* count = nullptr;
    check(cudaMallocAsync(reinterpret_cast<void**>(&count), sizeof(*count), stream()), "cudaMallocAsync (count)");
    check(cudaMemsetAsync(count, 0, sizeof(*count), stream()), "cudaMemsetAsync (count)");
    count_valid_labels_kernel<<<grid_for(N), kThreads, 0, stream()>>>(count, labels, N);
    check_launch("count_valid_labels_kernel");
    check(cudaMemcpyAsync(&host_count, count, sizeof(host_count), cudaMemcpyDeviceToHost, stream()),
          "cudaMemcpyAsync (count)");
    check(cudaFreeAsync(count, stream()), "cudaFreeAsync (count)");
  }
  raise_input_errors();  // synchronises the stream, so host_count is ready
  return int64_t(host_count);
}

void mse_forward(float* losses, const void* pred, DType dtype, const float* target, int64_t N) {
  if (N == 0) return;
  dispatch_activation(dtype, "mse_forward", [&](auto tag) {
    using E = decltype(tag);
    mse_forward_kernel<E><<<grid_for(N), kThreads, 0, stream()>>>(losses, static_cast<const E*>(pred), target, N);
  });
  check_launch("mse_forward_kernel");
}

void mse_backward(void* dpred, const void* pred, DType dtype, const float* target, int64_t N, float scale) {
  if (N == 0) return;
  dispatch_activation(dtype, "mse_backward", [&](auto tag) {
    using E = decltype(tag);
    mse_backward_kernel<E><<<grid_for(N), kThreads, 0, stream()>>>(static_cast<E*>(dpred), static_cast<const E*>(pred),
                                                                   target, N, scale);
  });
  check_launch("mse_backward_kernel");
}

}  // namespace ww::kernels::cuda
