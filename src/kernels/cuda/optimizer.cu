// Built with -fmad=false (CMakeLists.txt): without it nvcc would fuse the multiply-adds of
// optimizer_math.h into FMAs, which round differently from the CPU's separate operations.
#include "kernels/cuda/optimizer.h"

#include <algorithm>

#include "kernels/cuda/common.h"

namespace ww::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;

unsigned grid_for(int64_t n) { return unsigned(std::min<int64_t>(blocks_for(n, kThreads), kMaxBlocks)); }

// Whether element i lies in one of the sorted, non-overlapping [begin, end) ranges.
__device__ bool in_decay_ranges(int64_t i, const int64_t* ranges, int64_t num_ranges) {
  if (num_ranges < 0) return true;
  int64_t lo = 0, hi = num_ranges;  // first range whose end lies past i
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (ranges[2 * mid + 1] <= i) lo = mid + 1;
    else hi = mid;
  }
  return lo < num_ranges && ranges[2 * lo] <= i;
}

template <bool kSmallLerpWeight>
__device__ void adam_element(float& p, float g, float& m, float& v, bool decay, const AdamScalars& s) {
  switch (adam_decay_mode(decay, s)) {
    case DecayMode::None: return adam_update<DecayMode::None, kSmallLerpWeight>(p, g, m, v, s);
    case DecayMode::Decoupled: return adam_update<DecayMode::Decoupled, kSmallLerpWeight>(p, g, m, v, s);
    case DecayMode::L2: return adam_update<DecayMode::L2, kSmallLerpWeight>(p, g, m, v, s);
  }
}

template <bool kSmallLerpWeight>
__global__ void adam_kernel(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t n,
                            const int64_t* ranges, int64_t num_ranges, AdamScalars s) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float p = params[i], m = exp_avg[i], v = exp_avg_sq[i];
    adam_element<kSmallLerpWeight>(p, grads[i], m, v, in_decay_ranges(i, ranges, num_ranges), s);
    params[i] = p;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

__global__ void sgd_kernel(float* params, const float* grads, float* momentum_buffer, int64_t n,
                           const int64_t* ranges, int64_t num_ranges, SgdScalars s) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float p = params[i];
    float* buf = s.use_momentum ? momentum_buffer + i : nullptr;
    if (sgd_decay_mode(in_decay_ranges(i, ranges, num_ranges), s) == DecayMode::L2)
      sgd_update<DecayMode::L2>(p, grads[i], buf, s);
    else
      sgd_update<DecayMode::None>(p, grads[i], buf, s);
    params[i] = p;
  }
}

__device__ double block_sum_double(double value, double* shared) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (int(threadIdx.x) < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  return shared[0];
}

__global__ void sum_of_squares_partials_kernel(double* partials, const float* values, int64_t n) {
  __shared__ double shared[kThreads];
  double acc = 0.0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    acc += double(values[i]) * double(values[i]);
  const double total = block_sum_double(acc, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void sum_partials_kernel(double* result, const double* partials, int count) {
  __shared__ double shared[kThreads];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += kThreads) acc += partials[i];
  const double total = block_sum_double(acc, shared);
  if (threadIdx.x == 0) *result = total;
}

}  // namespace

void adamw_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t n,
                const int64_t* decay_ranges, int64_t num_ranges, const AdamScalars& s) {
  if (n == 0) return;
  if (lerp_weight_is_small(s.one_minus_beta1))
    adam_kernel<true><<<grid_for(n), kThreads, 0, stream()>>>(params, grads, exp_avg, exp_avg_sq, n,
                                                              decay_ranges, num_ranges, s);
  else
    adam_kernel<false><<<grid_for(n), kThreads, 0, stream()>>>(params, grads, exp_avg, exp_avg_sq, n,
                                                               decay_ranges, num_ranges, s);
  check_launch("adam_kernel");
}

void sgd_step(float* params, const float* grads, float* momentum_buffer, int64_t n,
              const int64_t* decay_ranges, int64_t num_ranges, const SgdScalars& s) {
  if (n == 0) return;
  sgd_kernel<<<grid_for(n), kThreads, 0, stream()>>>(params, grads, momentum_buffer, n, decay_ranges,
                                                     num_ranges, s);
  check_launch("sgd_kernel");
}

double sum_of_squares(const float* values, int64_t n) {
  if (n == 0) return 0.0;
  const unsigned blocks = grid_for(n);
  cudaStream_t s = stream();
  double* buffer = nullptr;  // [blocks] partials, then the result
  check(cudaMallocAsync(reinterpret_cast<void**>(&buffer), (blocks + 1) * sizeof(double), s),
        "cudaMallocAsync (grad norm partials)");
  sum_of_squares_partials_kernel<<<blocks, kThreads, 0, s>>>(buffer, values, n);
  cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) {
    sum_partials_kernel<<<1, kThreads, 0, s>>>(buffer + blocks, buffer, int(blocks));
    status = cudaGetLastError();
  }
  double result = 0.0;
  if (status == cudaSuccess) status = cudaMemcpyAsync(&result, buffer + blocks, sizeof(double), cudaMemcpyDeviceToHost, s);
  cudaFreeAsync(buffer, s);
  check(status, "global_grad_norm kernels");
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize (global_grad_norm)");
  return result;
}

}  // namespace ww::kernels::cuda
