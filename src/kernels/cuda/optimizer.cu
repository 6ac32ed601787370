// Built with -fmad=false (CMakeLists.txt): without it nvcc would fuse the multiply-adds of
// optimizer_math.h into FMAs, which round differently from the CPU's separate operations.
#include "kernels/optimizer.h"

#include <algorithm>

#include "kernels/cuda/common.h"

namespace ww::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;

unsigned grid_for(int64_t n) { return unsigned(std::min<int64_t>(blocks_for(n, kThreads), kMaxBlocks)); }

// The first of the sorted, non-overlapping [begin, end) ranges whose end lies past i (num_ranges
// when none does).
__device__ int64_t first_range_past(int64_t i, const int64_t* ranges, int64_t num_ranges) {
  int64_t lo = 0, hi = num_ranges;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (ranges[2 * mid + 1] <= i) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Whether element i lies in one of the ranges (num_ranges < 0: every element does).
__device__ bool in_decay_ranges(int64_t i, const int64_t* ranges, int64_t num_ranges) {
  if (num_ranges < 0) return true;
  const int64_t r = first_range_past(i, ranges, num_ranges);
  return r < num_ranges && ranges[2 * r] <= i;
}

template <bool kSmallLerpWeight>
__device__ void adam_element(float& p, float g, float& m, float& v, bool decay, const AdamScalars& s) {
  switch (adam_decay_mode(decay, s)) {
    case DecayMode::None: return adam_update<DecayMode::None, kSmallLerpWeight>(p, g, m, v, s);
    case DecayMode::Decoupled: return adam_update<DecayMode::Decoupled, kSmallLerpWeight>(p, g, m, v, s);
    case DecayMode::L2: return adam_update<DecayMode::L2, kSmallLerpWeight>(p, g, m, v, s);
  }
}

// Decay flags of elements i..i+3: one binary search for i's range, then a walk forward (ranges
// may be shorter than four elements).
__device__ void decay_flags4(int64_t i, const int64_t* ranges, int64_t num_ranges, bool (&decay)[4]) {
  if (num_ranges < 0) {
    decay[0] = decay[1] = decay[2] = decay[3] = true;
    return;
  }
  int64_t lo = first_range_past(i, ranges, num_ranges);
#pragma unroll
  for (int v = 0; v < 4; ++v) {
    while (lo < num_ranges && ranges[2 * lo + 1] <= i + v) ++lo;
    decay[v] = lo < num_ranges && ranges[2 * lo] <= i + v;
  }
}

// The grid-stride loops over the flat buffers, shared by the host-scalar kernels and the
// device-decided ones (which read the scalars from a StepControl). Adam moves 28 bytes per
// element, so the loop is a DRAM stream: four elements per thread and step in 16-byte accesses
// (kVector, all four buffers 16-byte aligned) and one range search per four elements; the same
// arithmetic per element. The scalar loop covers whatever the vector loop leaves.
template <bool kSmallLerpWeight, bool kVector>
__device__ void adam_loop(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t n,
                          const int64_t* ranges, int64_t num_ranges, const AdamScalars& s) {
  int64_t done = 0;
  if constexpr (kVector) {
    done = n / 4 * 4;
    for (int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; q < n / 4; q += int64_t(gridDim.x) * blockDim.x) {
      float4 p = reinterpret_cast<const float4*>(params)[q], m = reinterpret_cast<const float4*>(exp_avg)[q];
      float4 v = reinterpret_cast<const float4*>(exp_avg_sq)[q];
      const float4 g = reinterpret_cast<const float4*>(grads)[q];
      bool decay[4];
      decay_flags4(4 * q, ranges, num_ranges, decay);
      adam_element<kSmallLerpWeight>(p.x, g.x, m.x, v.x, decay[0], s);
      adam_element<kSmallLerpWeight>(p.y, g.y, m.y, v.y, decay[1], s);
      adam_element<kSmallLerpWeight>(p.z, g.z, m.z, v.z, decay[2], s);
      adam_element<kSmallLerpWeight>(p.w, g.w, m.w, v.w, decay[3], s);
      reinterpret_cast<float4*>(params)[q] = p;
      reinterpret_cast<float4*>(exp_avg)[q] = m;
      reinterpret_cast<float4*>(exp_avg_sq)[q] = v;
    }
  }
  for (int64_t i = done + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float p = params[i], m = exp_avg[i], v = exp_avg_sq[i];
    adam_element<kSmallLerpWeight>(p, grads[i], m, v, in_decay_ranges(i, ranges, num_ranges), s);
    params[i] = p;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

__device__ void sgd_loop(float* params, const float* grads, float* momentum_buffer, int64_t n,
                         const int64_t* ranges, int64_t num_ranges, const SgdScalars& s) {
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

template <bool kSmallLerpWeight, bool kVector>
__global__ void adam_kernel(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t n,
                            const int64_t* ranges, int64_t num_ranges, AdamScalars s) {
  adam_loop<kSmallLerpWeight, kVector>(params, grads, exp_avg, exp_avg_sq, n, ranges, num_ranges, s);
}

__global__ void sgd_kernel(float* params, const float* grads, float* momentum_buffer, int64_t n,
                           const int64_t* ranges, int64_t num_ranges, SgdScalars s) {
  sgd_loop(params, grads, momentum_buffer, n, ranges, num_ranges, s);
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

// One block: Σ partials in a fixed order, then the step's outcome, as Optimizer::step computes it on
// the host (float(√Σ) · base scale; torch's clip factor min(1, max / (norm + 1e-6)) in float).
__global__ void finish_norm_kernel(StepControl* c, const double* partials, int count) {
  __shared__ double shared[kThreads];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += kThreads) acc += partials[i];
  const double total = block_sum_double(acc, shared);
  if (threadIdx.x != 0) return;
  c->sum_of_squares = total;
  const float norm = float(sqrt(total)) * c->base_grad_scale;
  c->grad_norm = norm;
  const bool finite = isfinite(norm);
  float clip = 1.0f;
  if (finite && c->max_grad_norm > 0) clip = fminf(c->max_grad_norm / (norm + 1e-6f), 1.0f);
  c->clip_coef = clip;
  c->applied = finite ? 1 : 0;
  c->adam.grad_scale = c->base_grad_scale * clip;
  c->sgd.grad_scale = c->base_grad_scale * clip;
}

template <bool kSmallLerpWeight, bool kVector>
__global__ void adam_controlled_kernel(float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                                       int64_t n, const int64_t* ranges, int64_t num_ranges,
                                       const StepControl* control) {
  if (!control->applied) return;
  const AdamScalars s = control->adam;  // a register copy: the loop's stores cannot alias it
  adam_loop<kSmallLerpWeight, kVector>(params, grads, exp_avg, exp_avg_sq, n, ranges, num_ranges, s);
}

// The kernel instance for a call: kVector when every buffer is 16-byte aligned.
template <typename Kernel>
Kernel adam_instance(bool small_lerp_weight, const float* params, const float* grads, const float* exp_avg,
                     const float* exp_avg_sq, Kernel small_vector, Kernel small_scalar, Kernel vector,
                     Kernel scalar) {
  const bool aligned =
      aligned_to(params, 16) && aligned_to(grads, 16) && aligned_to(exp_avg, 16) && aligned_to(exp_avg_sq, 16);
  if (small_lerp_weight) return aligned ? small_vector : small_scalar;
  return aligned ? vector : scalar;
}

__global__ void sgd_controlled_kernel(float* params, const float* grads, float* momentum_buffer, int64_t n,
                                      const int64_t* ranges, int64_t num_ranges, const StepControl* control) {
  if (!control->applied) return;
  const SgdScalars s = control->sgd;
  sgd_loop(params, grads, momentum_buffer, n, ranges, num_ranges, s);
}

void norm_into_control(StepControl* control, double* partials, const float* grads, int64_t n) {
  const unsigned blocks = grid_for(n);
  sum_of_squares_partials_kernel<<<blocks, kThreads, 0, stream()>>>(partials, grads, n);
  check_launch("sum_of_squares_partials_kernel");
  finish_norm_kernel<<<1, kThreads, 0, stream()>>>(control, partials, int(blocks));
  check_launch("finish_norm_kernel");
}

// The outcome from a Σg² already in partials[0].
void finish_summed_norm(StepControl* control, const double* partials) {
  finish_norm_kernel<<<1, kThreads, 0, stream()>>>(control, partials, 1);
  check_launch("finish_norm_kernel");
}

}  // namespace

unsigned norm_partials_count(int64_t n) { return std::max(1u, grid_for(n)); }

void sum_of_squares_into(double* partials, const float* grads, int64_t n) {
  if (n == 0) {
    check(cudaMemsetAsync(partials, 0, sizeof(double), stream()), "cudaMemsetAsync (empty sum of squares)");
    return;
  }
  const unsigned blocks = grid_for(n);
  sum_of_squares_partials_kernel<<<blocks, kThreads, 0, stream()>>>(partials, grads, n);
  check_launch("sum_of_squares_partials_kernel");
  // One block reads every partial before thread 0 writes the total over the first.
  sum_partials_kernel<<<1, kThreads, 0, stream()>>>(partials, partials, int(blocks));
  check_launch("sum_partials_kernel");
}

void adamw_step_controlled(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t n,
                           const int64_t* decay_ranges, int64_t num_ranges, StepControl* control,
                           double* partials, bool small_lerp_weight, bool norm_summed) {
  if (norm_summed) finish_summed_norm(control, partials);  // also for an empty part: the outcome is the job's
  if (n == 0) return;
  if (!norm_summed) norm_into_control(control, partials, grads, n);
  const auto kernel = adam_instance(small_lerp_weight, params, grads, exp_avg, exp_avg_sq,
                                    adam_controlled_kernel<true, true>, adam_controlled_kernel<true, false>,
                                    adam_controlled_kernel<false, true>, adam_controlled_kernel<false, false>);
  kernel<<<grid_for(n), kThreads, 0, stream()>>>(params, grads, exp_avg, exp_avg_sq, n, decay_ranges, num_ranges,
                                                 control);
  check_launch("adam_controlled_kernel");
}

void sgd_step_controlled(float* params, const float* grads, float* momentum_buffer, int64_t n,
                         const int64_t* decay_ranges, int64_t num_ranges, StepControl* control,
                         double* partials, bool norm_summed) {
  if (norm_summed) finish_summed_norm(control, partials);
  if (n == 0) return;
  if (!norm_summed) norm_into_control(control, partials, grads, n);
  sgd_controlled_kernel<<<grid_for(n), kThreads, 0, stream()>>>(params, grads, momentum_buffer, n, decay_ranges,
                                                                num_ranges, control);
  check_launch("sgd_controlled_kernel");
}

void adamw_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t n,
                const int64_t* decay_ranges, int64_t num_ranges, const AdamScalars& s) {
  if (n == 0) return;
  const auto kernel = adam_instance(lerp_weight_is_small(s.one_minus_beta1), params, grads, exp_avg, exp_avg_sq,
                                    adam_kernel<true, true>, adam_kernel<true, false>, adam_kernel<false, true>,
                                    adam_kernel<false, false>);
  kernel<<<grid_for(n), kThreads, 0, stream()>>>(params, grads, exp_avg, exp_avg_sq, n, decay_ranges, num_ranges, s);
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
