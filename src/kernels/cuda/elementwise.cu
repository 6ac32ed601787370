#include "kernels/cuda/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <vector>

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "kernels/cpu/embedding.h"  // kEmbeddingGradChunk: the order of the CPU reference
#include "kernels/cuda/device_util.cuh"
#include "wattwise/core/rng.h"

namespace ww::kernels::cuda {

// ---------------------------------------------------------------------------------------------
// Input-error record

int* input_error_record() {
  static std::mutex mutex;
  static std::vector<int*> records;
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(mutex);
  if (int(records.size()) <= device) records.resize(size_t(device) + 1, nullptr);
  int*& record = records[size_t(device)];
  if (!record) {
    check(cudaMalloc(&record, kInputErrorFields * sizeof(int)), "cudaMalloc (input error record)");
    // On our stream, so kernels launched on it see the zeros.
    check(cudaMemsetAsync(record, 0, kInputErrorFields * sizeof(int), stream()), "cudaMemsetAsync");
  }
  return record;
}

void raise_input_errors() {
  int* record = input_error_record();
  int host[kInputErrorFields] = {};
  check(cudaMemcpyAsync(host, record, sizeof(host), cudaMemcpyDeviceToHost, stream()), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize");
  if (host[0] == kNoError) return;
  check(cudaMemsetAsync(record, 0, sizeof(host), stream()), "cudaMemsetAsync");
  check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize");
  const int row = host[1], position = host[2], value = host[3], limit = host[4];
  switch (host[0]) {
    case kBadWordId:
      fail("embeddings: input id ", value, " at batch row ", row, ", position ", position,
           " is outside the word table (vocab size ", limit, ")");
    case kBadTokenType:
      fail("embeddings: token type id ", value, " at batch row ", row, ", position ", position,
           " is outside the token type table (", limit, " types)");
    case kBadMaskValue:
      fail("masked_mean: mask value ", value, " at batch row ", row, ", position ", position,
           " must be 0 (padding) or 1 (real token)");
    case kBadLabel:
      fail("cross_entropy: label ", value, " at row ", row, " is outside [0, ", limit,
           ") (use -100 to ignore a row)");
    default:
      fail("CUDA kernels recorded an unknown input error kind ", host[0]);
  }
}

// ---------------------------------------------------------------------------------------------
// Embeddings

namespace {

// V columns per thread (16-byte loads from the f32 tables where C and the pointers allow, else 1):
// the scalar form ran BERT's batch-256 embeddings at ~0.6 TB/s on an H100 (177 µs per call).
template <int V, typename T>
__global__ void embeddings_forward_kernel(T* out, const int32_t* input_ids, const int32_t* token_type_ids,
                                          DeviceEmbeddingTables tables, int64_t N, int64_t T_len, int64_t C,
                                          int64_t position_offset, int* error) {
  const int64_t vectors_per_row = C / V;
  WW_GRID_STRIDE(v, N * vectors_per_row) {
    const int64_t n = v / vectors_per_row, c = (v % vectors_per_row) * V, t = n % T_len, i = n * C + c;
    const int32_t id = input_ids[n];
    const int32_t type = token_type_ids ? token_type_ids[n] : 0;
    bool valid = true;
    if (id < 0 || id >= tables.vocab_size) {
      if (c == 0) record_input_error(error, kBadWordId, n / T_len, t, id, tables.vocab_size);
      valid = false;
    }
    if (tables.token_type && (type < 0 || type >= tables.num_token_types)) {
      if (c == 0) record_input_error(error, kBadTokenType, n / T_len, t, type, tables.num_token_types);
      valid = false;
    }
    float value[V];
    if (!valid) {  // never read outside a table; the recorded error reports it
#pragma unroll
      for (int k = 0; k < V; ++k) value[k] = 0.0f;
      store_floats<V>(out + i, value);
      continue;
    }
    // Hugging Face's order, as the CPU reference: (word + token_type) + position.
    load_floats<V>(tables.word + int64_t(id) * C + c, value);
    float part[V];
    if (tables.token_type) {
      load_floats<V>(tables.token_type + int64_t(type) * C + c, part);
#pragma unroll
      for (int k = 0; k < V; ++k) value[k] += part[k];
    }
    if (tables.position) {
      load_floats<V>(tables.position + (position_offset + t) * C + c, part);
#pragma unroll
      for (int k = 0; k < V; ++k) value[k] += part[k];
    }
    store_floats<V>(out + i, value);
  }
}

// Table gradients (word, token type) in the CPU reference's order (kernels/cpu/embedding.h): the
// tokens are stably sorted by id, so each id's tokens form a run in token order; the run is cut
// into chunks of kChunk tokens, one block sums a chunk (in token order, from 0), and the chunk sums
// are added to the table value in order. Every element sees the CPU's additions: same bits. Grids
// are sized for the worst case (every sorted position a chunk start) since the host never reads
// device counts (CUDA-graph capture); blocks that start no chunk exit at once.
constexpr int kChunk = int(cpu::kEmbeddingGradChunk);

// Sort keys: the id, or `rows` for an id outside the table (sorted after every valid id, in token
// order, and never used as a row). ids == null means id 0 for every token.
__global__ void embedding_sort_keys_kernel(uint32_t* keys, int32_t* tokens, const int32_t* ids, int64_t N,
                                           int64_t rows) {
  WW_GRID_STRIDE(n, N) {
    const int32_t id = ids ? ids[n] : 0;
    keys[n] = id < 0 || id >= rows ? uint32_t(rows) : uint32_t(id);
    tokens[n] = int32_t(n);
  }
}

// heads[i] = i where sorted position i starts a run of equal keys, else 0; a max-scan then gives
// every position its run's start.
__global__ void embedding_run_heads_kernel(int32_t* heads, const uint32_t* keys, int64_t N) {
  WW_GRID_STRIDE(i, N) heads[i] = i == 0 || keys[i] != keys[i - 1] ? int32_t(i) : 0;
}

struct MaxOp {
  __host__ __device__ int32_t operator()(int32_t a, int32_t b) const { return a > b ? a : b; }
};

// Slot of the chunk starting at sorted position i in `partials`. Any 64 consecutive positions hold
// at most one chunk start of a long run (> kChunk tokens) that is the run's start and one that is
// not (long runs are longer than the window), so the slots are distinct; 2·ceil(N/kChunk) of them.
__device__ __forceinline__ int64_t chunk_slot(int64_t i, int64_t run_start) {
  return 2 * (i / kChunk) + (i == run_start ? 1 : 0);
}

// Block (sorted position i, column tile). If i starts a chunk, sums its tokens' dout rows over the
// tile's columns (V per thread, token order, from 0). A run of one chunk is added to the table at
// once; the chunks of a longer run go to partials for embedding_chunk_combine_kernel. The run of
// bad ids reports its first token (the first in token order) and is skipped.
template <int V, typename T>
__global__ void embedding_chunk_sums_kernel(float* table, float* partials, int64_t rows, const T* dout,
                                            const uint32_t* keys, const int32_t* tokens, const int32_t* run_start,
                                            const int32_t* ids, int64_t N, int64_t T_len, int64_t C, int error_kind,
                                            int* error) {
  const int64_t i = blockIdx.x, start = run_start[i];
  if ((i - start) % kChunk != 0) return;  // uniform over the block
  const uint32_t key = keys[i];
  if (key == uint32_t(rows)) {
    if (i == start && blockIdx.y == 0 && threadIdx.x == 0) {
      const int32_t n = tokens[i];
      record_input_error(error, error_kind, n / T_len, n % T_len, ids ? ids[n] : 0, rows);
    }
    return;
  }
  __shared__ int32_t chunk_tokens[kChunk];
  // Keys are sorted, so the chunk's tokens are the positions i + j (j < kChunk) with key `key`.
  bool in_chunk = false;
  if (threadIdx.x < kChunk) {
    const int64_t j = i + threadIdx.x;
    in_chunk = j < N && keys[j] == key;
    if (in_chunk) chunk_tokens[threadIdx.x] = tokens[j];
  }
  const int length = __syncthreads_count(in_chunk);  // blockDim.x >= kChunk
  const bool whole_run = i == start && (i + kChunk >= N || keys[i + kChunk] != key);
  const int64_t c = (int64_t(blockIdx.y) * blockDim.x + threadIdx.x) * V;
  if (c >= C) return;
  float sum[V];
#pragma unroll
  for (int v = 0; v < V; ++v) sum[v] = 0.0f;
  // Loads are independent of the sums: unrolled, several rows are in flight at once.
#pragma unroll 8
  for (int j = 0; j < length; ++j) {
    float x[V];
    load_floats<V>(dout + int64_t(chunk_tokens[j]) * C + c, x);
#pragma unroll
    for (int v = 0; v < V; ++v) sum[v] += x[v];
  }
  if (whole_run) {
    float* element = table + int64_t(key) * C + c;
    float value[V];
    load_floats<V>(element, value);
#pragma unroll
    for (int v = 0; v < V; ++v) value[v] += sum[v];
    store_floats<V>(element, value);
  } else {
    store_floats<V>(partials + chunk_slot(i, start) * C + c, sum);
  }
}

// Block (sorted position i, column tile): if i starts a long run, adds the run's chunk sums to the
// table value in chunk order.
template <int V>
__global__ void embedding_chunk_combine_kernel(float* table, const float* partials, int64_t rows,
                                               const uint32_t* keys, const int32_t* run_start, int64_t N, int64_t C) {
  const int64_t i = blockIdx.x;
  if (run_start[i] != i) return;
  const uint32_t key = keys[i];
  if (key == uint32_t(rows) || i + kChunk >= N || keys[i + kChunk] != key) return;  // bad ids, or one chunk
  const int64_t c = (int64_t(blockIdx.y) * blockDim.x + threadIdx.x) * V;
  if (c >= C) return;
  float* element = table + int64_t(key) * C + c;
  float value[V];
  load_floats<V>(element, value);
  for (int64_t s = i; s < N && keys[s] == key; s += kChunk) {
    float part[V];
    load_floats<V>(partials + chunk_slot(s, i) * C + c, part);
#pragma unroll
    for (int v = 0; v < V; ++v) value[v] += part[v];
  }
  store_floats<V>(element, value);
}

// dposition[offset + t, c] += Σ_b dout[b, t, c] in batch order (the CPU reference's order).
template <typename T>
__global__ void position_backward_kernel(float* dposition, const T* dout, int64_t B, int64_t T_len, int64_t C,
                                         int64_t position_offset) {
  WW_GRID_STRIDE(i, T_len * C) {
    const int64_t t = i / C, c = i % C;
    float* element = dposition + (position_offset + t) * C + c;
    float acc = *element;
    for (int64_t b = 0; b < B; ++b) acc += load_float(dout[(b * T_len + t) * C + c]);
    *element = acc;
  }
}

}  // namespace

void embeddings_forward(void* out, DType dtype, const int32_t* input_ids, const int32_t* token_type_ids,
                        const DeviceEmbeddingTables& tables, int64_t B, int64_t T, int64_t C,
                        int64_t position_offset) {
  const int64_t N = B * T;
  if (N * C == 0) return;
  dispatch_activation(dtype, "embeddings_forward", [&](auto tag) {
    using E = decltype(tag);
    constexpr int V = 4;  // 16 bytes of each f32 table
    const bool vectors = C % V == 0 && aligned_to(out, V * sizeof(E)) && aligned_to(tables.word, 16) &&
                         (!tables.token_type || aligned_to(tables.token_type, 16)) &&
                         (!tables.position || aligned_to(tables.position, 16));
    if (vectors)
      embeddings_forward_kernel<V, E><<<grid_for(N * C / V), kThreads, 0, stream()>>>(
          static_cast<E*>(out), input_ids, token_type_ids, tables, N, T, C, position_offset, input_error_record());
    else
      embeddings_forward_kernel<1, E><<<grid_for(N * C), kThreads, 0, stream()>>>(
          static_cast<E*>(out), input_ids, token_type_ids, tables, N, T, C, position_offset, input_error_record());
  });
  check_launch_and_inputs("embeddings_forward_kernel");
}

namespace {

size_t round_up_256(size_t bytes) { return (bytes + 255) / 256 * 256; }

// grad_table[ids[n]] += dout[n] for all n (see embedding_chunk_sums_kernel). Stream-ordered
// temporaries, no host synchronisation: capturable in a CUDA graph.
template <typename E>
void table_backward(float* table, int64_t rows, const E* dout, const int32_t* ids, int64_t N, int64_t T, int64_t C,
                    int error_kind, const char* what) {
  WW_CHECK(N <= INT32_MAX && rows < INT32_MAX, "embeddings_backward (", what, "): ", N, " tokens, ", rows,
           " rows: the CUDA kernel takes fewer than 2^31 of each");
  // Keys are in [0, rows]: sort only the bits that can differ.
  int end_bit = 1;
  while (end_bit < 32 && (uint64_t(rows) >> end_bit) != 0) ++end_bit;
  const int n_items = int(N);
  const int64_t num_slots = 2 * ((N + kChunk - 1) / kChunk);

  size_t sort_bytes = 0, scan_bytes = 0;
  check(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, static_cast<const uint32_t*>(nullptr),
                                        static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                        static_cast<int32_t*>(nullptr), n_items, 0, end_bit, stream()),
        "cub::DeviceRadixSort::SortPairs (size)");
  check(cub::DeviceScan::InclusiveScan(nullptr, scan_bytes, static_cast<const int32_t*>(nullptr),
                                       static_cast<int32_t*>(nullptr), MaxOp{}, n_items, stream()),
        "cub::DeviceScan::InclusiveScan (size)");
  const size_t index_bytes = round_up_256(size_t(N) * 4);
  const size_t partial_bytes = round_up_256(size_t(num_slots) * size_t(C) * sizeof(float));
  const size_t temp_bytes = round_up_256(std::max(sort_bytes, scan_bytes));
  char* workspace = nullptr;
  check(cudaMallocAsync(reinterpret_cast<void**>(&workspace), 6 * index_bytes + partial_bytes + temp_bytes, stream()),
        "cudaMallocAsync (embedding gradient workspace)");
  uint32_t* keys_in = reinterpret_cast<uint32_t*>(workspace);
  uint32_t* keys = reinterpret_cast<uint32_t*>(workspace + index_bytes);
  int32_t* tokens_in = reinterpret_cast<int32_t*>(workspace + 2 * index_bytes);
  int32_t* tokens = reinterpret_cast<int32_t*>(workspace + 3 * index_bytes);
  int32_t* heads = reinterpret_cast<int32_t*>(workspace + 4 * index_bytes);
  int32_t* run_start = reinterpret_cast<int32_t*>(workspace + 5 * index_bytes);
  float* partials = reinterpret_cast<float*>(workspace + 6 * index_bytes);
  void* temp = workspace + 6 * index_bytes + partial_bytes;

  embedding_sort_keys_kernel<<<grid_for(N), kThreads, 0, stream()>>>(keys_in, tokens_in, ids, N, rows);
  check_launch("embedding_sort_keys_kernel");
  check(cub::DeviceRadixSort::SortPairs(temp, sort_bytes, keys_in, keys, tokens_in, tokens, n_items, 0, end_bit,
                                        stream()),
        "cub::DeviceRadixSort::SortPairs (embedding ids)");
  embedding_run_heads_kernel<<<grid_for(N), kThreads, 0, stream()>>>(heads, keys, N);
  check_launch("embedding_run_heads_kernel");
  check(cub::DeviceScan::InclusiveScan(temp, scan_bytes, heads, run_start, MaxOp{}, n_items, stream()),
        "cub::DeviceScan::InclusiveScan (embedding runs)");

  // 4 columns a thread (16-byte table and fp32 dout accesses) where C and the pointers allow.
  const bool vector4 = C % 4 == 0 && aligned_to(table, 16) && aligned_to(dout, 4 * sizeof(E));
  const int V = vector4 ? 4 : 1;
  const int64_t lanes = (C + V - 1) / V;
  // At least kChunk threads (the chunk's tokens are gathered one a thread), at most kThreads.
  const int threads = int(std::clamp<int64_t>((lanes + 31) / 32 * 32, kChunk, kThreads));
  const int64_t tiles = (lanes + threads - 1) / threads;
  WW_CHECK(tiles <= 65535, "embeddings_backward (", what, "): C = ", C, " is too wide");
  const dim3 grid{unsigned(N), unsigned(tiles)};
  if (vector4) {
    embedding_chunk_sums_kernel<4><<<grid, threads, 0, stream()>>>(table, partials, rows, dout, keys, tokens,
                                                                   run_start, ids, N, T, C, error_kind,
                                                                   input_error_record());
    check_launch("embedding_chunk_sums_kernel");
    embedding_chunk_combine_kernel<4><<<grid, threads, 0, stream()>>>(table, partials, rows, keys, run_start, N, C);
  } else {
    embedding_chunk_sums_kernel<1><<<grid, threads, 0, stream()>>>(table, partials, rows, dout, keys, tokens,
                                                                   run_start, ids, N, T, C, error_kind,
                                                                   input_error_record());
    check_launch("embedding_chunk_sums_kernel");
    embedding_chunk_combine_kernel<1><<<grid, threads, 0, stream()>>>(table, partials, rows, keys, run_start, N, C);
  }
  check_launch("embedding_chunk_combine_kernel");
  check(cudaFreeAsync(workspace, stream()), "cudaFreeAsync (embedding gradient workspace)");
  check_launch_and_inputs("embedding_chunk_sums_kernel");  // debug builds: a bad id raises here
}

}  // namespace

void embeddings_backward(const DeviceEmbeddingTables& grads, const void* dout, DType dtype, const int32_t* input_ids,
                         const int32_t* token_type_ids, int64_t B, int64_t T, int64_t C,
                         int64_t position_offset) {
  const int64_t N = B * T;
  if (N * C == 0) return;
  dispatch_activation(dtype, "embeddings_backward", [&](auto tag) {
    using E = decltype(tag);
    const E* d = static_cast<const E*>(dout);
    if (grads.word) table_backward(grads.word, grads.vocab_size, d, input_ids, N, T, C, kBadWordId, "word");
    if (grads.token_type)
      table_backward(grads.token_type, grads.num_token_types, d, token_type_ids, N, T, C, kBadTokenType,
                     "token type");
    if (grads.position) {
      position_backward_kernel<E><<<grid_for(T * C), kThreads, 0, stream()>>>(grads.position, d, B, T, C,
                                                                             position_offset);
      check_launch("position_backward_kernel");
    }
  });
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

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

// Element dropout as the fused kernels apply it to an operand they read: the rule's parameters, the
// stream offset resolved on the device (offset_base is read there: CUDA graphs).
struct DropoutRule {
  bool on;
  uint32_t threshold;
  float scale;
  uint64_t seed, offset;
  __host__ static DropoutRule from(const ElementDropoutArgs& d) {
    return {d.p > 0.0f, element_dropout_threshold(d.p), element_dropout_keep_scale(d.p), d.seed, d.offset};
  }
};
__device__ __forceinline__ uint64_t dropout_stream(const DropoutRule& d, const uint64_t* offset_base) {
  return d.offset + (offset_base ? *offset_base : 0);
}

// Elements e0.. of the operand (values v) as dropout_forward leaves them: kept ones times the keep
// scale rounded to T, dropped ones 0; so a fused kernel adds exactly what dropout followed by the add
// did. One Philox call per block of eight elements (V <= 8 elements from e0 share one block when
// e0 % 8 + V <= 8, always so for the kernels' aligned vectors).
template <typename T, int V>
__device__ __forceinline__ void drop_as_stored(float (&v)[V], int64_t e0, const DropoutRule& d, uint64_t stream) {
  const auto apply = [&](int k, const Philox4& r, int half) {
    v[k] = element_dropout_keeps(r, half, d.threshold) ? load_float(store_float<T>(v[k] * d.scale)) : 0.0f;
  };
  if ((e0 & 7) + V <= 8) {
    const Philox4 r = philox_block(d.seed, stream, uint64_t(e0) >> 3);
#pragma unroll
    for (int k = 0; k < V; ++k) apply(k, r, int((e0 + k) & 7));
  } else {
    for (int k = 0; k < V; ++k) apply(k, philox_block(d.seed, stream, uint64_t(e0 + k) >> 3), int((e0 + k) & 7));
  }
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
// thread per column walking all chunks (which took ~100 µs for 256 chunks × 768 columns on an H100).
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

// ---------------------------------------------------------------------------------------------
// Activations (same formulas as the CPU reference, in float)

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

template <typename T, typename F>
__global__ void unary_kernel(T* out, const T* inp, int64_t n, F f) {
  WW_GRID_STRIDE(i, n) out[i] = store_float<T>(f(load_float(inp[i])));
}

template <typename T, typename F>
__global__ void binary_kernel(T* out, const T* x, const T* y, int64_t n, F f) {
  WW_GRID_STRIDE(i, n) out[i] = store_float<T>(f(load_float(x[i]), load_float(y[i])));
}

// 16-bit elements move in 16-byte packs (8 per load/store) when every pointer is 16-byte aligned;
// the packs cover the first n / 8 · 8 elements and the scalar kernel the rest. f32 keeps the
// scalar kernels. Each element is still read and written by one thread only, so out may alias an
// input exactly.
template <typename T>
struct alignas(16) Pack {
  static constexpr int kSize = 16 / int(sizeof(T));
  T v[kSize];
};

template <typename T, typename F>
__global__ void unary_pack_kernel(T* out, const T* inp, int64_t packs, F f) {
  WW_GRID_STRIDE(i, packs) {
    const Pack<T> x = reinterpret_cast<const Pack<T>*>(inp)[i];
    Pack<T> result;
#pragma unroll
    for (int k = 0; k < Pack<T>::kSize; ++k) result.v[k] = store_float<T>(f(load_float(x.v[k])));
    reinterpret_cast<Pack<T>*>(out)[i] = result;
  }
}

template <typename T, typename F>
__global__ void binary_pack_kernel(T* out, const T* x, const T* y, int64_t packs, F f) {
  WW_GRID_STRIDE(i, packs) {
    const Pack<T> a = reinterpret_cast<const Pack<T>*>(x)[i];
    const Pack<T> b = reinterpret_cast<const Pack<T>*>(y)[i];
    Pack<T> result;
#pragma unroll
    for (int k = 0; k < Pack<T>::kSize; ++k) result.v[k] = store_float<T>(f(load_float(a.v[k]), load_float(b.v[k])));
    reinterpret_cast<Pack<T>*>(out)[i] = result;
  }
}

// Elements the pack kernels cover (0 = scalar kernels only).
template <typename T>
int64_t packed_elements(int64_t n, std::initializer_list<const void*> pointers) {
  if constexpr (sizeof(T) != 2) {
    return 0;
  } else {
    for (const void* p : pointers)
      if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return 0;
    return n / Pack<T>::kSize * Pack<T>::kSize;
  }
}

template <typename F>
void launch_unary(void* out, const void* inp, int64_t n, DType dtype, F f, const char* name) {
  if (n == 0) return;
  dispatch_activation(dtype, name, [&](auto tag) {
    using E = decltype(tag);
    E* o = static_cast<E*>(out);
    const E* x = static_cast<const E*>(inp);
    const int64_t packed = packed_elements<E>(n, {out, inp});
    if constexpr (sizeof(E) == 2) {
      const int64_t packs = packed / Pack<E>::kSize;
      if (packs > 0) unary_pack_kernel<E, F><<<grid_for(packs), kThreads, 0, stream()>>>(o, x, packs, f);
    }
    if (packed < n) unary_kernel<E, F><<<grid_for(n - packed), kThreads, 0, stream()>>>(o + packed, x + packed, n - packed, f);
  });
  check_launch(name);
}

template <typename F>
void launch_binary(void* out, const void* x, const void* y, int64_t n, DType dtype, F f, const char* name) {
  if (n == 0) return;
  dispatch_activation(dtype, name, [&](auto tag) {
    using E = decltype(tag);
    E* o = static_cast<E*>(out);
    const E* a = static_cast<const E*>(x);
    const E* b = static_cast<const E*>(y);
    const int64_t packed = packed_elements<E>(n, {out, x, y});
    if constexpr (sizeof(E) == 2) {
      const int64_t packs = packed / Pack<E>::kSize;
      if (packs > 0) binary_pack_kernel<E, F><<<grid_for(packs), kThreads, 0, stream()>>>(o, a, b, packs, f);
    }
    if (packed < n)
      binary_kernel<E, F><<<grid_for(n - packed), kThreads, 0, stream()>>>(o + packed, a + packed, b + packed,
                                                                           n - packed, f);
  });
  check_launch(name);
}

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

// ---------------------------------------------------------------------------------------------
// Dropout

namespace {

// out = base + dropout(x), or dropout(x) with base null (dropout itself; base may alias out or x):
// a thread per block of eight elements, one Philox call (core/rng.h's element rule, as on the
// CPU), one 16-byte load and store per operand with Vector (two for f32). At four elements per call
// dropout was bound by Philox's multiplies: 25 µs for GPT-2's 16,384 × 768 bf16 activations on an
// H200, against ~11 µs for their bytes.
template <typename T, bool Vector>
__global__ void dropout_map_kernel(T* out, const T* base, const T* x, int64_t n, DropoutRule d,
                                   const uint64_t* offset_base) {
  const uint64_t stream = dropout_stream(d, offset_base);
  WW_GRID_STRIDE(block, (n + 7) / 8) {
    const int64_t first = block * 8, count = n - first < 8 ? n - first : 8;
    if (Vector && count == 8) {
      float y[8];
      load_floats<8>(x + first, y);
      drop_as_stored<T, 8>(y, first, d, stream);
      if (base) {
        float b[8];
        load_floats<8>(base + first, b);
#pragma unroll
        for (int j = 0; j < 8; ++j) y[j] += b[j];
      }
      store_floats<8>(out + first, y);
      continue;
    }
    for (int64_t j = 0; j < count; ++j) {
      float y[1] = {load_float(x[first + j])};
      drop_as_stored<T, 1>(y, first + j, d, stream);
      out[first + j] = store_float<T>(base ? load_float(base[first + j]) + y[0] : y[0]);
    }
  }
}

void launch_dropout_map(void* out, const void* base, const void* x, int64_t n, DType dtype,
                        const ElementDropoutArgs& dropout, const char* what) {
  const DropoutRule rule = DropoutRule::from(dropout);
  dispatch_activation(dtype, what, [&](auto tag) {
    using E = decltype(tag);
    // Every block of eight starts a multiple of 16 bytes past the tensor's start (of 32 for f32,
    // whose two 16-byte halves need 16): aligned when the tensors are 16-byte aligned.
    const bool vector = aligned_to(out, 16) && aligned_to(x, 16) && (!base || aligned_to(base, 16));
    const auto kernel = vector ? dropout_map_kernel<E, true> : dropout_map_kernel<E, false>;
    kernel<<<grid_for((n + 7) / 8), kThreads, 0, stream()>>>(static_cast<E*>(out), static_cast<const E*>(base),
                                                            static_cast<const E*>(x), n, rule, dropout.offset_base);
  });
  check_launch(what);
}

void apply_dropout_mask(void* out, const void* inp, int64_t n, DType dtype, float p, uint64_t seed,
                        uint64_t offset, const uint64_t* offset_base) {
  WW_CHECK(p >= 0.0f && p < 1.0f, "dropout probability ", p, " outside [0, 1)");
  if (n == 0) return;
  if (p == 0.0f) {
    if (out != inp)
      check(cudaMemcpyAsync(out, inp, size_t(n) * dtype_size(dtype), cudaMemcpyDeviceToDevice, stream()),
            "cudaMemcpyAsync (dropout p = 0)");
    return;
  }
  launch_dropout_map(out, nullptr, inp, n, dtype, {p, seed, offset, offset_base}, "dropout_kernel");
}

}  // namespace

void dropout_forward(void* out, const void* inp, int64_t n, DType dtype, float p, uint64_t seed, uint64_t offset,
                     const uint64_t* offset_base) {
  apply_dropout_mask(out, inp, n, dtype, p, seed, offset, offset_base);
}
void dropout_backward(void* dinp, const void* dout, int64_t n, DType dtype, float p, uint64_t seed,
                      uint64_t offset, const uint64_t* offset_base) {
  apply_dropout_mask(dinp, dout, n, dtype, p, seed, offset, offset_base);
}

// ---------------------------------------------------------------------------------------------
// Residual, accumulate, scale, token selection

namespace {

struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};

template <typename T>
__global__ void scale_kernel(T* x, float factor, int64_t n) {
  WW_GRID_STRIDE(i, n) x[i] = store_float<T>(load_float(x[i]) * factor);
}

template <typename T>
__global__ void select_token_forward_kernel(T* out, const T* inp, int64_t B, int64_t T_len, int64_t C,
                                            int64_t index) {
  WW_GRID_STRIDE(i, B * C) {
    const int64_t b = i / C, c = i % C;
    out[i] = inp[(b * T_len + index) * C + c];
  }
}

template <typename T>
__global__ void select_token_backward_kernel(T* dinp, const T* dout, int64_t B, int64_t T_len, int64_t C,
                                             int64_t index) {
  WW_GRID_STRIDE(i, B * C) {
    const int64_t b = i / C, c = i % C;
    T& element = dinp[(b * T_len + index) * C + c];
    element = store_float<T>(load_float(element) + load_float(dout[i]));
  }
}

}  // namespace

void residual_forward(void* out, const void* a, const void* b, int64_t n, DType dtype,
                      const ElementDropoutArgs& b_dropout) {
  WW_CHECK(b_dropout.p >= 0.0f && b_dropout.p < 1.0f, "dropout probability ", b_dropout.p, " outside [0, 1)");
  if (b_dropout.p == 0.0f) return launch_binary(out, a, b, n, dtype, Add{}, "residual_kernel");
  if (n > 0) launch_dropout_map(out, a, b, n, dtype, b_dropout, "residual_forward (dropout)");
}
void add_inplace(void* acc, const void* x, int64_t n, DType dtype) {
  launch_binary(acc, acc, x, n, dtype, Add{}, "residual_kernel (add_inplace)");
}
void scale_inplace(void* x, float factor, int64_t n, DType dtype) {
  if (n == 0) return;
  dispatch_activation(dtype, "scale_inplace", [&](auto tag) {
    using E = decltype(tag);
    scale_kernel<E><<<grid_for(n), kThreads, 0, stream()>>>(static_cast<E*>(x), factor, n);
  });
  check_launch("scale_kernel");
}
void select_token_forward(void* out, const void* inp, int64_t B, int64_t T, int64_t C, int64_t index, DType dtype) {
  if (B * C == 0) return;
  dispatch_activation(dtype, "select_token_forward", [&](auto tag) {
    using E = decltype(tag);
    select_token_forward_kernel<E><<<grid_for(B * C), kThreads, 0, stream()>>>(
        static_cast<E*>(out), static_cast<const E*>(inp), B, T, C, index);
  });
  check_launch("select_token_forward_kernel");
}
void select_token_backward(void* dinp, const void* dout, int64_t B, int64_t T, int64_t C, int64_t index,
                           DType dtype) {
  if (B * C == 0) return;
  dispatch_activation(dtype, "select_token_backward", [&](auto tag) {
    using E = decltype(tag);
    select_token_backward_kernel<E><<<grid_for(B * C), kThreads, 0, stream()>>>(
        static_cast<E*>(dinp), static_cast<const E*>(dout), B, T, C, index);
  });
  check_launch("select_token_backward_kernel");
}

// ---------------------------------------------------------------------------------------------
// Masked mean

namespace {

// Real tokens of batch row b (mask != 0), counted by the whole block. Records values other than
// 0/1 when `report` is set.
__device__ int64_t count_real_tokens(const int32_t* mask, int64_t b, int64_t T, bool report, int* error) {
  int64_t count = 0;
  for (int64_t t0 = 0; t0 < T; t0 += blockDim.x) {
    const int64_t t = t0 + threadIdx.x;
    const int32_t value = t < T ? mask[b * T + t] : 0;
    if (report && value != 0 && value != 1) record_input_error(error, kBadMaskValue, b, t, value, 0);
    count += __syncthreads_count(value != 0);
  }
  return count;
}

// One block per batch row; each thread sums whole columns over t in order (in double, as the CPU).
template <typename T>
__global__ void masked_mean_forward_kernel(T* out, const T* inp, const int32_t* mask, int64_t T_len, int64_t C,
                                           int* error) {
  const int64_t b = blockIdx.x;
  const int64_t count = count_real_tokens(mask, b, T_len, true, error);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    double sum = 0.0;
    for (int64_t t = 0; t < T_len; ++t)
      if (mask[b * T_len + t]) sum += load_float(inp[(b * T_len + t) * C + c]);
    out[b * C + c] = store_float<T>(count ? float(sum / double(count)) : 0.0f);
  }
}

// One block per (b, t).
template <typename T>
__global__ void masked_mean_backward_kernel(T* dinp, const T* dout, const int32_t* mask, int64_t T_len,
                                            int64_t C, int* error) {
  const int64_t b = blockIdx.x / T_len, t = blockIdx.x % T_len;
  const int64_t count = count_real_tokens(mask, b, T_len, t == 0, error);
  const bool real = mask[b * T_len + t] != 0;
  T* row = dinp + (b * T_len + t) * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
    row[c] = store_float<T>(real ? load_float(dout[b * C + c]) / float(count) : 0.0f);
}

}  // namespace

void masked_mean_forward(void* out, const void* inp, const int32_t* mask, int64_t B, int64_t T, int64_t C,
                         DType dtype) {
  if (B == 0 || C == 0) return;
  dispatch_activation(dtype, "masked_mean_forward", [&](auto tag) {
    using E = decltype(tag);
    masked_mean_forward_kernel<E><<<unsigned(B), kThreads, 0, stream()>>>(
        static_cast<E*>(out), static_cast<const E*>(inp), mask, T, C, input_error_record());
  });
  check_launch_and_inputs("masked_mean_forward_kernel");
}

void masked_mean_backward(void* dinp, const void* dout, const int32_t* mask, int64_t B, int64_t T, int64_t C,
                          DType dtype) {
  if (B * T == 0 || C == 0) return;
  dispatch_activation(dtype, "masked_mean_backward", [&](auto tag) {
    using E = decltype(tag);
    masked_mean_backward_kernel<E><<<unsigned(B * T), kThreads, 0, stream()>>>(
        static_cast<E*>(dinp), static_cast<const E*>(dout), mask, T, C, input_error_record());
  });
  check_launch_and_inputs("masked_mean_backward_kernel");
}

// ---------------------------------------------------------------------------------------------
// Softmax

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

// ---------------------------------------------------------------------------------------------
// Casts

namespace {

template <typename Out, typename In>
__global__ void cast_kernel(Out* out, const In* inp, int64_t n) {
  WW_GRID_STRIDE(i, n) out[i] = store_float<Out>(load_float(inp[i]));  // f16/bf16 → float is exact
}

// Four elements per thread and step (8- and 16-byte accesses): the mixed-precision weight refresh
// casts every parameter each step (124M for GPT-2 small), a DRAM stream.
template <typename Out, typename In>
__global__ void cast4_kernel(Out* out, const In* inp, int64_t quads) {
  WW_GRID_STRIDE(q, quads) {
    float v[4];
    load_floats<4>(inp + 4 * q, v);
    store_floats<4>(out + 4 * q, v);
  }
}

}  // namespace

void cast(void* out, DType out_dtype, const void* inp, DType inp_dtype, int64_t n) {
  if (n == 0) return;
  if (out_dtype == inp_dtype) {
    if (out != inp)
      check(cudaMemcpyAsync(out, inp, size_t(n) * dtype_size(out_dtype), cudaMemcpyDeviceToDevice, stream()),
            "cudaMemcpyAsync (cast)");
    return;
  }
  dispatch_activation(out_dtype, "cast", [&](auto out_tag) {
    using O = decltype(out_tag);
    dispatch_activation(inp_dtype, "cast", [&](auto inp_tag) {
      using I = decltype(inp_tag);
      auto* o = static_cast<O*>(out);
      const auto* x = static_cast<const I*>(inp);
      const bool aligned = aligned_to(o, 4 * sizeof(O)) && aligned_to(x, 4 * sizeof(I));
      const int64_t quads = aligned ? n / 4 : 0, rest = n - 4 * quads;
      if (quads > 0) cast4_kernel<O, I><<<grid_for(quads), kThreads, 0, stream()>>>(o, x, quads);
      if (rest > 0) cast_kernel<O, I><<<grid_for(rest), kThreads, 0, stream()>>>(o + 4 * quads, x + 4 * quads, rest);
    });
  });
  check_launch("cast_kernel");
}

}  // namespace ww::kernels::cuda
