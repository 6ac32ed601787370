#include "kernels/cross_entropy.h"

#include <cmath>

#include "kernels/cuda/device_util.cuh"

namespace ww::kernels::cuda {

namespace {

constexpr int32_t kIgnoreIndex = -100;

// Running (max, Σ exp(x − max)) of a softmax: one pass over the logits instead of a max pass and a
// sum pass. Float math; the max subtraction keeps every exp <= 1.
struct OnlineSoftmax {
  float max = -INFINITY;
  float sum = 0.0f;

  template <int V>
  __device__ __forceinline__ void add(const float (&x)[V]) {
    float m = x[0];
#pragma unroll
    for (int v = 1; v < V; ++v) m = fmaxf(m, x[v]);
    if (m > max) {  // rescale once per V elements, not per element
      sum *= expf(max - m);
      max = m;
    }
#pragma unroll
    for (int v = 0; v < V; ++v) sum += expf(x[v] - max);
  }

  __device__ __forceinline__ void combine(float other_max, float other_sum) {
    const float m = fmaxf(max, other_max);
    if (m == -INFINITY) return;  // both empty (−∞ − −∞ would be NaN)
    sum = sum * expf(max - m) + other_sum * expf(other_max - m);
    max = m;
  }
};

// Combines every thread's state into the block's (every thread gets it) in a fixed order: warp
// butterflies, then the warps in order. Deterministic. Every thread must call it.
__device__ OnlineSoftmax block_combine(OnlineSoftmax state) {
  for (int offset = 16; offset > 0; offset >>= 1)
    state.combine(__shfl_xor_sync(0xffffffffu, state.max, offset), __shfl_xor_sync(0xffffffffu, state.sum, offset));
  __shared__ float maxes[32], sums[32];
  if ((threadIdx.x & 31) == 0) {
    maxes[threadIdx.x >> 5] = state.max;
    sums[threadIdx.x >> 5] = state.sum;
  }
  __syncthreads();
  OnlineSoftmax total{maxes[0], sums[0]};
  for (unsigned w = 1; w < (blockDim.x + 31) / 32; ++w) total.combine(maxes[w], sums[w]);
  return total;
}

// A row in three parts: [0, head) and [body_end, K) one element at a time, [head, body_end) in
// V-element vectors aligned to V·sizeof(T) bytes (rows of odd K start at every alignment).
struct RowParts {
  int64_t head, body_end;
};

template <int V, typename T>
__device__ __forceinline__ RowParts row_parts(const T* x, int64_t K) {
  if constexpr (V == 1) return {0, K};
  constexpr int bytes = V * int(sizeof(T));
  int64_t head = int64_t((bytes - reinterpret_cast<uintptr_t>(x) % bytes) % bytes) / int64_t(sizeof(T));
  if (head > K) head = K;
  return {head, head + (K - head) / V * V};
}

// The element of the row's scalar parts that this thread owns, or −1 (head + tail < 2V <= blockDim).
__device__ __forceinline__ int64_t scalar_element(RowParts parts, int64_t K) {
  const int64_t j = threadIdx.x;
  if (j < parts.head) return j;
  if (j - parts.head < K - parts.body_end) return parts.body_end + (j - parts.head);
  return -1;
}

// A block's row n = blockIdx.x: its label, logits x, gradient row d (null without kGrad), its split
// into vectors and the scalar element this thread owns.
template <typename T>
struct BlockRow {
  int64_t n;
  int32_t label;
  const T* x;
  T* d;
  RowParts parts;
  int64_t mine;
};

template <int V, typename T, bool kGrad>
__device__ __forceinline__ BlockRow<T> block_row(T* dlogits, const T* logits, const int32_t* labels, int64_t K,
                                                 int64_t ld) {
  const int64_t n = blockIdx.x;
  const T* x = logits + n * ld;
  const RowParts parts = row_parts<V>(x, K);
  return {n, labels[n], x, kGrad ? dlogits + n * ld : nullptr, parts, scalar_element(parts, K)};
}

// Ignored rows (label −100) and bad labels: a loss of 0 (NaN for a bad label, which is also
// recorded) and a gradient row of 0 (NaN). Returns whether the row was one of these; the label is
// the same for the whole block, so the callers' early returns are uniform.
template <int V, typename T, bool kLoss, bool kGrad>
__device__ bool skip_row(float* losses, const BlockRow<T>& row, int64_t K, int* error) {
  const auto [n, label, x, d, parts, mine] = row;
  const bool ignored = label == kIgnoreIndex, bad = !ignored && (label < 0 || label >= K);
  if (!ignored && !bad) return false;
  if (bad && threadIdx.x == 0) record_input_error(error, kBadLabel, n, 0, label, K);
  if (kLoss && threadIdx.x == 0) losses[n] = bad ? NAN : 0.0f;
  if constexpr (kGrad) {
    float fill[V];
#pragma unroll
    for (int v = 0; v < V; ++v) fill[v] = bad ? NAN : 0.0f;
    for (int64_t k = parts.head + int64_t(threadIdx.x) * V; k < parts.body_end; k += int64_t(blockDim.x) * V)
      store_floats<V>(d + k, fill);
    if (mine >= 0) d[mine] = store_float<T>(fill[0]);
  }
  return true;
}

// The row's loss: −log softmax at the label, mixed with the uniform target under label smoothing.
__device__ __forceinline__ float smoothed_loss(float lse, float x_label, float total_x, float eps, int64_t K) {
  const float nll = lse - x_label;
  return eps != 0.0f ? (1.0f - eps) * nll + eps * (lse - total_x / float(K)) : nll;
}

// The weighted row's loss (class weights w, as torch's CrossEntropyLoss(weight=w)):
// (1−ε)·w[y]·(lse − x[y]) + (ε/K)·Σ_k w[k]·(lse − x[k]), the sum given as total_w = Σ w[k] and
// total_wx = Σ w[k]·x[k].
__device__ __forceinline__ float weighted_loss(float lse, float x_label, float w_label, float total_w,
                                               float total_wx, float eps, int64_t K) {
  const float nll = (1.0f - eps) * w_label * (lse - x_label);
  return eps != 0.0f ? nll + eps / float(K) * (total_w * lse - total_wx) : nll;
}

// The scale of a row's gradient: scale / divisor[0] when a divisor is given (read on the device, so
// a graph replays with the value of the batch it runs on).
__device__ __forceinline__ float row_scale(float scale, const float* divisor) {
  return divisor ? scale / *divisor : scale;
}

// dlogits[k] = scale · (softmax[k] − target[k]).
struct GradientRule {
  float lse, scale, smooth_target, label_target;
  int32_t label;
  __device__ __forceinline__ float operator()(int64_t k, float x) const {
    return scale * (expf(x - lse) - (k == label ? label_target : smooth_target));
  }
};

// With class weights w, W = Σ w[k], s the scale:
// dlogits[k] = s·((1−ε)·w[y] + ε·W/K)·softmax[k] − s·(1−ε)·w[y]·[k==y] − s·(ε/K)·w[k].
struct WeightedGradientRule {
  float lse, p_factor, label_target, smooth_factor;
  const float* weights;
  int32_t label;
  __device__ __forceinline__ float operator()(int64_t k, float x) const {
    return p_factor * expf(x - lse) - (k == label ? label_target : 0.0f) - smooth_factor * weights[k];
  }
};

template <bool kWeighted>
__device__ __forceinline__ auto gradient_rule(float lse, float scale, float eps, int64_t K, int32_t label,
                                              const float* weights, float total_w) {
  if constexpr (kWeighted) {
    const float label_part = (1.0f - eps) * weights[label];
    return WeightedGradientRule{lse, scale * (label_part + eps * total_w / float(K)), scale * label_part,
                                scale * eps / float(K), weights, label};
  } else {
    return GradientRule{lse, scale, eps / float(K), eps / float(K) + (1.0f - eps), label};
  }
}

// Softmax cross-entropy, one block per row: losses (kLoss) and/or dlogits (kGrad). One read pass
// gives the row's max and Σ exp (and Σ x for label smoothing); the gradient pass reads the row again
// (mostly from L2) and writes it. Every element the kernel needs is read before the first write, and
// each thread reads x[k] before writing d[k]: dlogits may alias logits. The label is the same for
// the whole block, so the early returns are uniform.
// With class weights (kWeighted) the read pass also sums w[k] and w[k]·x[k] for the smoothing term.
// Rows of at least kWideRow classes (a language model's vocabulary) get kWideThreads threads: one
// 1,024-thread block per SM keeps ~132 rows (13 MB at GPT-2's 50,257 bf16 logits) in flight, so the
// gradient pass re-reads its row from L2; 256-thread blocks kept ~800 rows (80 MB, more than an
// H100's 50 MB L2) in flight and re-read most rows from DRAM: three passes of DRAM traffic, not two.
constexpr int64_t kWideRow = 8192;
constexpr int kWideThreads = 1024;

template <int V, typename T, bool kLoss, bool kGrad, bool kWeighted>
__global__ void __launch_bounds__(kWideThreads)
    cross_entropy_kernel(float* losses, T* dlogits, const T* logits, const int32_t* labels, int64_t K, int64_t ld,
                         float eps, float scale, const float* weights, const float* divisor, int* error) {
  const BlockRow<T> block = block_row<V, T, kGrad>(dlogits, logits, labels, K, ld);
  if (skip_row<V, T, kLoss, kGrad>(losses, block, K, error)) return;
  const auto [n, label, x, d, parts, mine] = block;
  // x[label] is read before the block's first write (block_combine synchronises).
  const float x_label = kLoss && threadIdx.x == 0 ? load_float(x[label]) : 0.0f;
  OnlineSoftmax state;
  float sum_x = 0.0f;  // Σ x[k]; weighted: Σ w[k]·x[k]
  float sum_w = 0.0f;  // weighted: Σ w[k]
  auto accumulate = [&](const float (&v)[V], int64_t at) {
    state.add(v);
    if constexpr (kWeighted) {
#pragma unroll
      for (int i = 0; i < V; ++i) {
        const float w = weights[at + i];
        sum_x += w * v[i];
        sum_w += w;
      }
    } else if constexpr (kLoss) {
#pragma unroll
      for (int i = 0; i < V; ++i) sum_x += v[i];
    }
  };
  // Two vectors an iteration, both loaded before either is used: two loads in flight per thread.
  const int64_t stride = int64_t(blockDim.x) * V;
  int64_t k = parts.head + int64_t(threadIdx.x) * V;
  for (; k + stride < parts.body_end; k += 2 * stride) {
    float v0[V], v1[V];
    load_floats<V>(x + k, v0);
    load_floats<V>(x + k + stride, v1);
    accumulate(v0, k);
    accumulate(v1, k + stride);
  }
  if (k < parts.body_end) {
    float v[V];
    load_floats<V>(x + k, v);
    accumulate(v, k);
  }
  if (mine >= 0) {
    const float v[1] = {load_float(x[mine])};
    state.add(v);
    if constexpr (kWeighted) {
      sum_x += weights[mine] * v[0];
      sum_w += weights[mine];
    } else {
      sum_x += v[0];
    }
  }
  const OnlineSoftmax row = block_combine(state);
  const float lse = row.max + logf(row.sum);
  // Weighted: Σ w[k] and Σ w[k]·x[k] of the row, for the smoothing term of the loss and gradient.
  float total_w = 0.0f, total_wx = 0.0f;
  if constexpr (kWeighted) {
    if (eps != 0.0f) {
      total_wx = block_sum(sum_x);
      total_w = block_sum(sum_w);
    }
  }
  if constexpr (kLoss) {
    if constexpr (kWeighted) {
      if (threadIdx.x == 0) losses[n] = weighted_loss(lse, x_label, weights[label], total_w, total_wx, eps, K);
    } else {
      const float total_x = eps != 0.0f ? block_sum(sum_x) : 0.0f;
      if (threadIdx.x == 0) losses[n] = smoothed_loss(lse, x_label, total_x, eps, K);
    }
  }
  if constexpr (kGrad) {
    const auto rule = gradient_rule<kWeighted>(lse, row_scale(scale, divisor), eps, K, label, weights, total_w);
    auto gradient = [&](int64_t at, float (&v)[V]) {
#pragma unroll
      for (int i = 0; i < V; ++i) v[i] = rule(at + i, v[i]);
    };
    // Two vectors an iteration, loaded before either store (d may alias x, so the compiler cannot
    // hoist a later load above an earlier store by itself).
    int64_t k = parts.head + int64_t(threadIdx.x) * V;
    for (; k + stride < parts.body_end; k += 2 * stride) {
      float v0[V], v1[V];
      load_floats<V>(x + k, v0);
      load_floats<V>(x + k + stride, v1);
      gradient(k, v0);
      gradient(k + stride, v1);
      store_floats<V>(d + k, v0);
      store_floats<V>(d + k + stride, v1);
    }
    if (k < parts.body_end) {
      float v[V];
      load_floats<V>(x + k, v);
      gradient(k, v);
      store_floats<V>(d + k, v);
    }
    if (mine >= 0) d[mine] = store_float<T>(rule(mine, load_float(x[mine])));
  }
}

// Rows of a language model's vocabulary (kWideRow classes and up) whose logits fit in shared
// memory: the row is staged there once (cp.async, every copy in flight at once), and the max, the
// Σ exp and the gradient read it from there, so DRAM sees each logit read once and each gradient
// written once. Two CTAs per SM (GPT-2's bf16 rows are 100 KB) overlap one row's copies with the
// other's arithmetic and stores; the global-memory kernel above keeps one row per SM in flight and
// waits on each pass's loads (several times the DRAM time at GPT-2's vocabulary).
// Element e of the row sits at row[e] with row + parts.head 16-byte aligned in shared memory, so
// the vector copies keep global memory's alignment. Max and sum are two exact passes, reduced in a
// fixed order (deterministic).
constexpr int kStagedThreads = 512;

template <int V, typename T, bool kLoss, bool kGrad>
__global__ void __launch_bounds__(kStagedThreads, 2)
    cross_entropy_staged_kernel(float* losses, T* dlogits, const T* logits, const int32_t* labels, int64_t K,
                                int64_t ld, float eps, float scale, const float* divisor, int* error) {
  extern __shared__ __align__(16) unsigned char staged_bytes[];
  const BlockRow<T> block = block_row<V, T, kGrad>(dlogits, logits, labels, K, ld);
  if (skip_row<V, T, kLoss, kGrad>(losses, block, K, error)) return;
  const auto [n, label, x, d, parts, mine] = block;
  T* row = reinterpret_cast<T*>(staged_bytes) + (V - parts.head % V) % V;
  const int64_t stride = int64_t(blockDim.x) * V, first = parts.head + int64_t(threadIdx.x) * V;
  for (int64_t k = first; k < parts.body_end; k += stride) cp_async16(row + k, x + k, true);
  cp_async_commit();
  if (mine >= 0) row[mine] = x[mine];
  cp_async_wait<0>();
  __syncthreads();

  float m = -INFINITY;
  for (int64_t k = first; k < parts.body_end; k += stride) {
    float v[V];
    load_floats<V>(row + k, v);
#pragma unroll
    for (int i = 0; i < V; ++i) m = fmaxf(m, v[i]);
  }
  if (mine >= 0) m = fmaxf(m, load_float(row[mine]));
  m = block_max(m);
  float sum = 0.0f, sum_x = 0.0f;
  for (int64_t k = first; k < parts.body_end; k += stride) {
    float v[V];
    load_floats<V>(row + k, v);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      sum += expf(v[i] - m);
      if constexpr (kLoss) sum_x += v[i];
    }
  }
  if (mine >= 0) {
    const float v = load_float(row[mine]);
    sum += expf(v - m);
    sum_x += v;
  }
  const float lse = m + logf(block_sum(sum));
  if constexpr (kLoss) {
    const float total_x = eps != 0.0f ? block_sum(sum_x) : 0.0f;
    if (threadIdx.x == 0) losses[n] = smoothed_loss(lse, load_float(row[label]), total_x, eps, K);
  }
  if constexpr (kGrad) {
    const GradientRule rule = gradient_rule<false>(lse, row_scale(scale, divisor), eps, K, label, nullptr, 0.0f);
    for (int64_t k = first; k < parts.body_end; k += stride) {
      float v[V];
      load_floats<V>(row + k, v);
#pragma unroll
      for (int i = 0; i < V; ++i) v[i] = rule(k + i, v[i]);
      store_floats<V>(d + k, v);
    }
    if (mine >= 0) d[mine] = store_float<T>(rule(mine, load_float(row[mine])));
  }
}

// Shared memory of the staged kernel for a row of K elements (V − 1 elements of alignment slack),
// or 0 when that is more than one CTA may have on the current device.
size_t staged_row_bytes(int64_t K, size_t element_bytes, int V) {
  int device = 0, limit = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
        "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  const size_t bytes = size_t(K + V - 1) * element_bytes;
  return bytes <= size_t(limit) ? bytes : 0;
}

// One block: Σ w[y] over the rows, a fixed order (per-thread strides, then block_sum).
__global__ void class_weight_sum_kernel(float* sum, const int32_t* labels, int64_t N, const float* weights,
                                        int64_t K) {
  float mine = 0.0f;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
    const int32_t y = labels[n];
    if (y >= 0 && y < K) mine += weights[y];
  }
  const float total = block_sum(mine);
  if (threadIdx.x == 0) sum[0] = total;
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

namespace {

// Launches cross_entropy_kernel<V, E, kLoss, kGrad, weighted>: 16-byte vectors unless dlogits and
// logits sit at different offsets modulo 16 bytes (then rows cannot share one split into vectors).
template <bool kLoss, bool kGrad>
void launch_cross_entropy(float* losses, void* dlogits, const void* logits, DType dtype, const int32_t* labels,
                          int64_t N, int64_t K, int64_t ld, float label_smoothing, float scale,
                          const float* weights, const float* divisor, const char* what) {
  if (N == 0) return;
  WW_CHECK(K > 0 && ld >= K && N <= INT32_MAX, what, ": N = ", N, ", K = ", K, ", row stride ", ld);
  const bool vectors = !kGrad || (reinterpret_cast<uintptr_t>(dlogits) - reinterpret_cast<uintptr_t>(logits)) % 16 == 0;
  dispatch_activation(dtype, what, [&](auto tag) {
    using E = decltype(tag);
    constexpr int V = 16 / int(sizeof(E));
    const auto x = static_cast<const E*>(logits);
    const auto d = static_cast<E*>(dlogits);
    const size_t staged = !weights && K >= kWideRow && vectors ? staged_row_bytes(K, sizeof(E), V) : 0;
    if (staged > 0) {
      auto kernel = cross_entropy_staged_kernel<V, E, kLoss, kGrad>;
      check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(staged)),
            "cudaFuncSetAttribute (cross_entropy_staged_kernel)");
      kernel<<<unsigned(N), kStagedThreads, staged, stream()>>>(losses, d, x, labels, K, ld, label_smoothing, scale,
                                                               divisor, input_error_record());
      return;
    }
    const int threads = K >= kWideRow ? kWideThreads : kThreads;
    auto launch = [&](auto kernel) {
      kernel<<<unsigned(N), threads, 0, stream()>>>(losses, d, x, labels, K, ld, label_smoothing, scale, weights,
                                                    divisor, input_error_record());
    };
    if (weights) {
      if (vectors) launch(cross_entropy_kernel<V, E, kLoss, kGrad, true>);
      else launch(cross_entropy_kernel<1, E, kLoss, kGrad, true>);
    } else {
      if (vectors) launch(cross_entropy_kernel<V, E, kLoss, kGrad, false>);
      else launch(cross_entropy_kernel<1, E, kLoss, kGrad, false>);
    }
  });
  check_launch_and_inputs(what);
}

}  // namespace

void cross_entropy_forward(float* losses, const void* logits, DType dtype, const int32_t* labels, int64_t N,
                           int64_t K, int64_t ld, float label_smoothing, const float* class_weights) {
  launch_cross_entropy<true, false>(losses, nullptr, logits, dtype, labels, N, K, ld, label_smoothing, 0.0f,
                                    class_weights, nullptr, "cross_entropy_forward");
}

void cross_entropy_backward(void* dlogits, const void* logits, DType dtype, const int32_t* labels, int64_t N,
                            int64_t K, int64_t ld, float label_smoothing, float scale, const float* class_weights,
                            const float* scale_divisor) {
  launch_cross_entropy<false, true>(nullptr, dlogits, logits, dtype, labels, N, K, ld, label_smoothing, scale,
                                    class_weights, scale_divisor, "cross_entropy_backward");
}

void cross_entropy_forward_backward(float* losses, void* dlogits, const void* logits, DType dtype,
                                    const int32_t* labels, int64_t N, int64_t K, int64_t ld, float label_smoothing,
                                    float scale, const float* class_weights, const float* scale_divisor) {
  launch_cross_entropy<true, true>(losses, dlogits, logits, dtype, labels, N, K, ld, label_smoothing, scale,
                                   class_weights, scale_divisor, "cross_entropy_forward_backward");
}

void class_weight_sum(float* sum, const int32_t* labels, int64_t N, const float* class_weights, int64_t K) {
  class_weight_sum_kernel<<<1, kThreads, 0, stream()>>>(sum, labels, N, class_weights, K);
  check_launch("class_weight_sum_kernel");
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
