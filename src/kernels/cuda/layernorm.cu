#include "kernels/layernorm.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/element_dropout.cuh"

namespace ww::kernels::cuda {

namespace {

constexpr int64_t kLayerNormRowsPerChunk = 32;  // rows per partial sum of dweight/dbias
constexpr int kLayerNormWarps = 4;              // rows (one warp each) per block
// Row elements a lane keeps in registers between passes: whole rows up to C = 32·32 = 1024 (GPT-2,
// BERT-base: 768); longer rows re-read the rest (from L1/L2).
constexpr int kLaneFloats = 32;

// Sum over the warp; every lane gets the same bits (each butterfly step adds the same pair).
__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// LayerNorm forward, one warp per row, V elements per access (16-byte vectors where C and the
// pointers allow, else V = 1). Statistics in float, two passes over the register-resident row (mean,
// then squared deviations: no cancellation for rows far from 0). kResidual: the row is a + b, stored
// rounded to T into `sum` and normalised as stored. Every element is read and written by the same
// lane, after the warp reductions: out may alias the input; sum may alias a or b. sum null (kResidual,
// inference: nothing keeps the sum for a backward pass): the sum is not stored, a quarter of the
// bytes, and a row longer than the register cache recomputes it from a and b where it would re-read.
// kDropout: b's dropout is compiled in only where a launch has one (its Philox state costs registers,
// hence occupancy, on the bandwidth-bound path without it). kPrefetch (few rows, e.g. batch-1
// inference's 128: one short wave, latency-bound): weight and bias of the cached columns are loaded
// with the row, not after the reductions, taking one memory round trip off each warp's chain at the
// cost of registers that a many-row launch needs for occupancy.
template <int V, typename T, bool kResidual, bool kDropout = false, bool kPrefetch = false>
__global__ void layernorm_forward_kernel(T* out, T* sum, float* mean, float* rstd, const T* a, const T* b,
                                         const float* weight, const float* bias, int64_t N, int64_t C, float eps,
                                         DropoutRule b_dropout, const uint64_t* offset_base) {
  constexpr int kCache = kLaneFloats / V;
  const int lane = int(threadIdx.x & 31);
  const int64_t n = int64_t(blockIdx.x) * kLayerNormWarps + (threadIdx.x >> 5);
  if (n >= N) return;  // uniform over the warp
  const int64_t vectors = C / V, offset = n * C;
  const T* row = kResidual ? (sum ? sum + offset : nullptr) : a + offset;  // what passes 2 and 3 re-read
  const uint64_t b_stream = kResidual && kDropout ? dropout_stream(b_dropout, offset_base) : 0;
  // Pass 1: load (for the residual: add and store the sum), keep the first kCache vectors, sum.
  auto first_load = [&](int64_t i, float (&v)[V]) {
    if constexpr (kResidual) {
      float vb[V];
      load_floats<V>(a + offset + i * V, v);
      load_floats<V>(b + offset + i * V, vb);
      if constexpr (kDropout) drop_as_stored<T, V>(vb, offset + i * V, b_dropout, b_stream);
#pragma unroll
      for (int k = 0; k < V; ++k) v[k] += vb[k];
      if (sum) store_floats<V>(sum + offset + i * V, v);
#pragma unroll
      for (int k = 0; k < V; ++k) v[k] = load_float(store_float<T>(v[k]));  // the value as stored
    } else {
      load_floats<V>(row + i * V, v);
    }
  };
  // The row again past the register cache: re-read, or recomputed when the sum is not stored.
  auto reload = [&](int64_t i, float (&v)[V]) {
    if (kResidual && !sum) first_load(i, v);
    else load_floats<V>(row + i * V, v);
  };
  float cache[kCache][V];
  float total = 0.0f;
  constexpr int kParamCache = kPrefetch ? kCache : 1;
  float weight_cache[kParamCache][V], bias_cache[kParamCache][V];
#pragma unroll
  for (int j = 0; j < kCache; ++j) {
    const int64_t i = lane + 32 * j;
    if (i < vectors) {
      if constexpr (kPrefetch) {
        load_floats<V>(weight + i * V, weight_cache[j]);
        load_floats<V>(bias + i * V, bias_cache[j]);
      }
      first_load(i, cache[j]);
#pragma unroll
      for (int k = 0; k < V; ++k) total += cache[j][k];
    }
  }
  for (int64_t i = lane + 32 * kCache; i < vectors; i += 32) {
    float v[V];
    first_load(i, v);
#pragma unroll
    for (int k = 0; k < V; ++k) total += v[k];
  }
  const float row_mean = warp_sum(total) / float(C);
  float squares = 0.0f;
#pragma unroll
  for (int j = 0; j < kCache; ++j) {
    if (lane + 32 * j < vectors) {
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const float d = cache[j][k] - row_mean;
        squares += d * d;
      }
    }
  }
  for (int64_t i = lane + 32 * kCache; i < vectors; i += 32) {
    float v[V];
    reload(i, v);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float d = v[k] - row_mean;
      squares += d * d;
    }
  }
  const float row_rstd = 1.0f / sqrtf(warp_sum(squares) / float(C) + eps);
  if (lane == 0) {
    mean[n] = row_mean;
    rstd[n] = row_rstd;
  }
  auto normalise_with = [&](int64_t i, float (&v)[V], const float (&w)[V], const float (&bb)[V]) {
#pragma unroll
    for (int k = 0; k < V; ++k) v[k] = (v[k] - row_mean) * row_rstd * w[k] + bb[k];
    store_floats<V>(out + offset + i * V, v);
  };
  auto normalise = [&](int64_t i, float (&v)[V]) {
    float w[V], bb[V];
    load_floats<V>(weight + i * V, w);
    load_floats<V>(bias + i * V, bb);
    normalise_with(i, v, w, bb);
  };
#pragma unroll
  for (int j = 0; j < kCache; ++j) {
    const int64_t i = lane + 32 * j;
    if (i >= vectors) continue;
    if constexpr (kPrefetch) normalise_with(i, cache[j], weight_cache[j], bias_cache[j]);
    else normalise(i, cache[j]);
  }
  for (int64_t i = lane + 32 * kCache; i < vectors; i += 32) {
    float v[V];
    reload(i, v);
    normalise(i, v);
  }
}

// Where a lane's running dweight/dbias sum of column i·V + k (i = lane + 32·j) sits in its warp's
// shared-memory slice of 32·kLaneFloats floats: k-major, so a warp's accesses hit 32 banks.
template <int V>
__device__ __forceinline__ int param_slot(int64_t i, int k) {
  return k * 32 * (kLaneFloats / V) + int(i);
}

// dinp of LayerNorm for row n, by one warp (layout and vectors as the forward). x̂ and
// g = dout·weight stay in registers between the two passes. dinp must not alias dout. With kParams
// the lane also adds dout·x̂ and dout for its columns into its warp's shared-memory sums
// param_weight/param_bias (the row's share of dweight and dbias; slots by param_slot, each lane
// touching only its own): only for rows the lane's cache holds whole (C / V <= 32·kCache). The sums
// live in shared memory, not registers, so the fused kernel fits more warps per SM.
template <int V, typename T, bool kParams>
__device__ __forceinline__ void layernorm_backward_row(T* dinp, const T* dout, const T* inp, const float* weight,
                                                       const float* mean, const float* rstd, int64_t n, int64_t C,
                                                       bool accumulate, float* param_weight, float* param_bias) {
  constexpr int kCache = kLaneFloats / V;
  const int lane = int(threadIdx.x & 31);
  const int64_t vectors = C / V, offset = n * C;
  const float row_mean = mean[n], row_rstd = rstd[n];
  // Rounded products, as on the CPU: a fused multiply-add in the formula below would subtract
  // mean_g (the rounded product) from the exact product and leave its rounding error, times rstd.
  auto load = [&](int64_t i, float (&xhat)[V], float (&g)[V], float (&d)[V]) {
    float x[V], w[V];
    load_floats<V>(inp + offset + i * V, x);
    load_floats<V>(dout + offset + i * V, d);
    load_floats<V>(weight + i * V, w);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      xhat[k] = __fmul_rn(x[k] - row_mean, row_rstd);
      g[k] = __fmul_rn(d[k], w[k]);
    }
  };
  float cache_xhat[kCache][V], cache_g[kCache][V];
  float sum_g = 0.0f, sum_g_xhat = 0.0f;
#pragma unroll
  for (int j = 0; j < kCache; ++j) {
    const int64_t i = lane + 32 * j;
    if (i < vectors) {
      float d[V];
      load(i, cache_xhat[j], cache_g[j], d);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        sum_g += cache_g[j][k];
        sum_g_xhat += cache_g[j][k] * cache_xhat[j][k];
        if constexpr (kParams) {
          param_weight[param_slot<V>(i, k)] += d[k] * cache_xhat[j][k];
          param_bias[param_slot<V>(i, k)] += d[k];
        }
      }
    }
  }
  if constexpr (!kParams)
    for (int64_t i = lane + 32 * kCache; i < vectors; i += 32) {
      float xhat[V], g[V], d[V];
      load(i, xhat, g, d);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        sum_g += g[k];
        sum_g_xhat += g[k] * xhat[k];
      }
    }
  const float mean_g = warp_sum(sum_g) / float(C);
  const float mean_g_xhat = warp_sum(sum_g_xhat) / float(C);
  auto write = [&](int64_t i, const float (&xhat)[V], const float (&g)[V]) {
    float value[V], before[V];
    if (accumulate) load_floats<V>(dinp + offset + i * V, before);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      value[k] = __fmul_rn(row_rstd, g[k] - mean_g - __fmul_rn(xhat[k], mean_g_xhat));
      if (accumulate) value[k] = __fadd_rn(before[k], value[k]);
    }
    store_floats<V>(dinp + offset + i * V, value);
  };
#pragma unroll
  for (int j = 0; j < kCache; ++j) {
    const int64_t i = lane + 32 * j;
    if (i < vectors) write(i, cache_xhat[j], cache_g[j]);
  }
  if constexpr (!kParams)
    for (int64_t i = lane + 32 * kCache; i < vectors; i += 32) {
      float xhat[V], g[V], d[V];
      load(i, xhat, g, d);
      write(i, xhat, g);
    }
}

// dinp of LayerNorm alone, one warp per row.
template <int V, typename T>
__global__ void layernorm_backward_input_kernel(T* dinp, const T* dout, const T* inp, const float* weight,
                                                const float* mean, const float* rstd, int64_t N, int64_t C,
                                                bool accumulate) {
  const int64_t n = int64_t(blockIdx.x) * kLayerNormWarps + (threadIdx.x >> 5);
  if (n >= N) return;  // uniform over the warp
  layernorm_backward_row<V, T, false>(dinp, dout, inp, weight, mean, rstd, n, C, accumulate, nullptr, nullptr);
}

// dinp and the dweight/dbias partials of one chunk of kLayerNormRowsPerChunk rows in one pass over
// dout and inp (the separate partials kernel read both again: ~40% of LayerNorm's backward time
// for GPT-2). Block = one chunk; warp w takes rows w, w + kLayerNormWarps, … of it and keeps its
// columns' sums in its shared-memory slice (in registers they took the kernel to 168 registers, 12
// warps per SM, latency-bound at 3× DRAM time for GPT-2); the warps' sums are added in order of w
// into partial[chunk][c], the layout layernorm_param_reduce_kernel reads. Rows must fit the lanes' caches (C / V <= 32·kCache).
template <int V, typename T>
__global__ void __launch_bounds__(32 * kLayerNormWarps, 5)
    layernorm_backward_fused_kernel(T* dinp, float* partial_weight, float* partial_bias, const T* dout, const T* inp,
                                    const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                                    bool accumulate) {
  __shared__ float warp_weight[kLayerNormWarps][32 * kLaneFloats], warp_bias[kLayerNormWarps][32 * kLaneFloats];
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t chunk = blockIdx.x, n0 = chunk * kLayerNormRowsPerChunk;
  for (int e = lane; e < 32 * kLaneFloats; e += 32) warp_weight[warp][e] = warp_bias[warp][e] = 0.0f;
  for (int64_t r = warp; r < kLayerNormRowsPerChunk && n0 + r < N; r += kLayerNormWarps)
    layernorm_backward_row<V, T, true>(dinp, dout, inp, weight, mean, rstd, n0 + r, C, accumulate,
                                       warp_weight[warp], warp_bias[warp]);
  __syncthreads();
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const int slot = param_slot<V>(c / V, int(c % V));
    float total_weight = 0.0f, total_bias = 0.0f;
#pragma unroll
    for (int w = 0; w < kLayerNormWarps; ++w) {
      total_weight += warp_weight[w][slot];
      total_bias += warp_bias[w][slot];
    }
    partial_weight[chunk * C + c] = total_weight;
    partial_bias[chunk * C + c] = total_bias;
  }
}

// Partial sums of dweight (Σ dout·x̂) and dbias (Σ dout) over one chunk of rows, V columns a
// thread, in float, in the fused kernel's order (so both give the same bits): rows r ≡ w (mod
// kLayerNormWarps) of the chunk summed in row order, then those kLayerNormWarps sums in order of w.
// Grid: (column tiles, chunks).
template <int V, typename T>
__global__ void layernorm_param_partials_kernel(float* partial_weight, float* partial_bias, const T* dout,
                                                const T* inp, const float* mean, const float* rstd,
                                                int64_t N, int64_t C) {
  const int64_t c = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  if (c >= C) return;
  const int64_t chunk = blockIdx.y;
  const int64_t n0 = chunk * kLayerNormRowsPerChunk;
  const int64_t n1 = n0 + kLayerNormRowsPerChunk < N ? n0 + kLayerNormRowsPerChunk : N;
  float acc_weight[kLayerNormWarps][V], acc_bias[kLayerNormWarps][V];
#pragma unroll
  for (int w = 0; w < kLayerNormWarps; ++w)
#pragma unroll
    for (int k = 0; k < V; ++k) acc_weight[w][k] = acc_bias[w][k] = 0.0f;
  for (int64_t base = n0; base < n1; base += kLayerNormWarps)
#pragma unroll
    for (int w = 0; w < kLayerNormWarps; ++w) {
      const int64_t n = base + w;
      if (n >= n1) break;
      float d[V], x[V];
      load_floats<V>(dout + n * C + c, d);
      load_floats<V>(inp + n * C + c, x);
      const float row_mean = mean[n], row_rstd = rstd[n];
#pragma unroll
      for (int k = 0; k < V; ++k) {
        acc_weight[w][k] += d[k] * __fmul_rn(x[k] - row_mean, row_rstd);
        acc_bias[w][k] += d[k];
      }
    }
  float total_weight[V], total_bias[V];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    total_weight[k] = total_bias[k] = 0.0f;
#pragma unroll
    for (int w = 0; w < kLayerNormWarps; ++w) {
      total_weight[k] += acc_weight[w][k];
      total_bias[k] += acc_bias[w][k];
    }
  }
  store_floats<V>(partial_weight + chunk * C + c, total_weight);
  store_floats<V>(partial_bias + chunk * C + c, total_bias);
}

// Adds the chunks and accumulates into the parameter gradients. Block (32 columns, 32 chunk
// groups): thread (x, y) adds chunks y, y + 32, … of its column, then y = 0 adds the 32 group
// sums in order of y: a fixed order (deterministic, no atomics) with 32× the parallelism of a
// thread per column walking all chunks (too few threads to hide the loads at 256 chunks × 768 columns).
constexpr int kReduceGroups = 32;

__global__ void layernorm_param_reduce_kernel(float* dweight, float* dbias, const float* partial_weight,
                                              const float* partial_bias, int64_t num_chunks, int64_t C) {
  __shared__ float group_weight[kReduceGroups][33], group_bias[kReduceGroups][33];
  const int64_t c = int64_t(blockIdx.x) * 32 + threadIdx.x;
  float acc_weight = 0.0f, acc_bias = 0.0f;
  if (c < C) {
#pragma unroll 4
    for (int64_t chunk = threadIdx.y; chunk < num_chunks; chunk += kReduceGroups) {
      acc_weight += partial_weight[chunk * C + c];
      acc_bias += partial_bias[chunk * C + c];
    }
  }
  group_weight[threadIdx.y][threadIdx.x] = acc_weight;
  group_bias[threadIdx.y][threadIdx.x] = acc_bias;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  float total_weight = 0.0f, total_bias = 0.0f;
  for (int g = 0; g < kReduceGroups; ++g) {
    total_weight += group_weight[g][threadIdx.x];
    total_bias += group_bias[g][threadIdx.x];
  }
  if (dweight) dweight[c] += total_weight;
  if (dbias) dbias[c] += total_bias;
}

void require_grid_rows(int64_t N, const char* op) {
  if (N > INT32_MAX) fail(op, ": ", N, " rows is more than this CUDA kernel handles");
}

// 16-byte vectors (16 / sizeof(E) elements) when C is a multiple and every pointer is 16-byte
// aligned (then so is every row); else one element at a time.
template <typename E>
bool layernorm_vectors(int64_t C, std::initializer_list<const void*> pointers) {
  if (C % int64_t(16 / sizeof(E)) != 0) return false;
  for (const void* p : pointers)
    if (p && !aligned_to(p, 16)) return false;
  return true;
}

// Row counts up to which the residual LayerNorm prefetches its parameters (kPrefetch): batch-1 and
// other short-batch inference, whose launch is one partial wave.
constexpr int64_t kLayerNormPrefetchRows = 1024;

unsigned layernorm_row_blocks(int64_t N) { return unsigned((N + kLayerNormWarps - 1) / kLayerNormWarps); }

}  // namespace

void layernorm_forward(void* out, float* mean, float* rstd, const void* inp, DType dtype, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps) {
  if (N == 0 || C == 0) return;
  require_grid_rows(N, "layernorm_forward");
  dispatch_activation(dtype, "layernorm_forward", [&](auto tag) {
    using E = decltype(tag);
    constexpr int V = 16 / int(sizeof(E));
    auto o = static_cast<E*>(out);
    auto x = static_cast<const E*>(inp);
    if (layernorm_vectors<E>(C, {out, inp, weight, bias}))
      layernorm_forward_kernel<V, E, false><<<layernorm_row_blocks(N), 32 * kLayerNormWarps, 0, stream()>>>(
          o, nullptr, mean, rstd, x, nullptr, weight, bias, N, C, eps, DropoutRule{}, nullptr);
    else
      layernorm_forward_kernel<1, E, false><<<layernorm_row_blocks(N), 32 * kLayerNormWarps, 0, stream()>>>(
          o, nullptr, mean, rstd, x, nullptr, weight, bias, N, C, eps, DropoutRule{}, nullptr);
  });
  check_launch("layernorm_forward_kernel");
}

void residual_layernorm_forward(void* out, void* sum, float* mean, float* rstd, const void* a, const void* b,
                                DType dtype, const float* weight, const float* bias, int64_t N, int64_t C,
                                float eps, const ElementDropoutArgs& b_dropout) {
  if (N == 0 || C == 0) return;
  require_grid_rows(N, "residual_layernorm_forward");
  WW_CHECK(b_dropout.p >= 0.0f && b_dropout.p < 1.0f, "dropout probability ", b_dropout.p, " outside [0, 1)");
  const DropoutRule rule = DropoutRule::from(b_dropout);
  dispatch_activation(dtype, "residual_layernorm_forward", [&](auto tag) {
    using E = decltype(tag);
    constexpr int V = 16 / int(sizeof(E));
    auto o = static_cast<E*>(out);
    auto s = static_cast<E*>(sum);
    auto x = static_cast<const E*>(a);
    auto y = static_cast<const E*>(b);
    const auto launch = [&](auto kernel) {
      kernel<<<layernorm_row_blocks(N), 32 * kLayerNormWarps, 0, stream()>>>(o, s, mean, rstd, x, y, weight, bias, N,
                                                                            C, eps, rule, b_dropout.offset_base);
    };
    const bool vectors = layernorm_vectors<E>(C, {out, sum, a, b, weight, bias});
    if (vectors && rule.on) launch(layernorm_forward_kernel<V, E, true, true>);
    else if (vectors && N <= kLayerNormPrefetchRows) launch(layernorm_forward_kernel<V, E, true, false, true>);
    else if (vectors) launch(layernorm_forward_kernel<V, E, true, false>);
    else if (rule.on) launch(layernorm_forward_kernel<1, E, true, true>);
    else launch(layernorm_forward_kernel<1, E, true, false>);
  });
  check_launch("residual_layernorm_forward_kernel");
}

void layernorm_backward(void* dinp, float* dweight, float* dbias, const void* dout, const void* inp, DType dtype,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        bool accumulate, float* workspace) {
  if (N == 0 || C == 0) return;
  require_grid_rows(N, "layernorm_backward");
  static_assert(kLayerNormRowsPerChunk == 32, "ops::layernorm_backward_workspace_bytes assumes 32 rows per chunk");
  dispatch_activation(dtype, "layernorm_backward", [&](auto tag) {
    using E = decltype(tag);
    constexpr int V = 16 / int(sizeof(E));
    const E* d = static_cast<const E*>(dout);
    const E* x = static_cast<const E*>(inp);
    const int64_t num_chunks = (N + kLayerNormRowsPerChunk - 1) / kLayerNormRowsPerChunk;
    const bool params = dweight || dbias;
    if (params && num_chunks > 65535) fail("layernorm_backward: ", N, " rows is more than this CUDA kernel handles");
    float* partials = workspace;  // [2, num_chunks, C]: weight partials, then bias partials
    if (params && !workspace)
      check(cudaMallocAsync(reinterpret_cast<void**>(&partials), size_t(2 * num_chunks * C) * sizeof(float),
                            stream()),
            "cudaMallocAsync (layernorm partials)");
    float* partial_bias = params ? partials + num_chunks * C : nullptr;
    // One pass for dinp and the partials where whole rows fit the lanes' registers (C <= 1024 in
    // 16-byte vectors: GPT-2, BERT, DistilBERT); else the two kernels below.
    const bool fused = dinp && params && C / V <= 32 * (kLaneFloats / V) &&
                       layernorm_vectors<E>(C, {dinp, dout, inp, weight, partials, partial_bias});
    if (fused) {
      layernorm_backward_fused_kernel<V, E><<<unsigned(num_chunks), 32 * kLayerNormWarps, 0, stream()>>>(
          static_cast<E*>(dinp), partials, partial_bias, d, x, weight, mean, rstd, N, C, accumulate);
      check_launch("layernorm_backward_fused_kernel");
    }
    if (dinp && !fused) {
      auto di = static_cast<E*>(dinp);
      if (layernorm_vectors<E>(C, {dinp, dout, inp, weight}))
        layernorm_backward_input_kernel<V, E><<<layernorm_row_blocks(N), 32 * kLayerNormWarps, 0, stream()>>>(
            di, d, x, weight, mean, rstd, N, C, accumulate);
      else
        layernorm_backward_input_kernel<1, E><<<layernorm_row_blocks(N), 32 * kLayerNormWarps, 0, stream()>>>(
            di, d, x, weight, mean, rstd, N, C, accumulate);
      check_launch("layernorm_backward_input_kernel");
    }
    if (!params) return;
    if (!fused) {
      if (layernorm_vectors<E>(C, {dout, inp, partials, partial_bias})) {
        const int64_t lanes = C / V;
        const int threads = int(std::min<int64_t>((lanes + 31) / 32 * 32, kThreads));
        const dim3 grid{blocks_for(lanes, threads), unsigned(num_chunks)};
        layernorm_param_partials_kernel<V, E><<<grid, threads, 0, stream()>>>(partials, partial_bias, d, x, mean,
                                                                              rstd, N, C);
      } else {
        const dim3 grid{blocks_for(C, kThreads), unsigned(num_chunks)};
        layernorm_param_partials_kernel<1, E><<<grid, kThreads, 0, stream()>>>(partials, partial_bias, d, x, mean,
                                                                               rstd, N, C);
      }
      check_launch("layernorm_param_partials_kernel");
    }
    layernorm_param_reduce_kernel<<<blocks_for(C, 32), dim3(32, kReduceGroups), 0, stream()>>>(
        dweight, dbias, partials, partial_bias, num_chunks, C);
    check_launch("layernorm_param_reduce_kernel");
    if (!workspace) check(cudaFreeAsync(partials, stream()), "cudaFreeAsync (layernorm partials)");
  });
}

}  // namespace ww::kernels::cuda
