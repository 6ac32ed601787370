#include "kernels/embedding.h"

#include <algorithm>
#include <cstdint>

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "kernels/cuda/device_util.cuh"

namespace ww::kernels::cuda {

namespace {

// V columns per thread (16-byte loads from the f32 tables where C and the pointers allow, else 1):
// the scalar form left most of the memory bandwidth unused at BERT's batch-256 embeddings.
template <int V, typename T>
__global__ void embeddings_forward_kernel(T* out, const int32_t* input_ids, const int32_t* token_type_ids,
                                          EmbeddingTables tables, int64_t N, int64_t T_len, int64_t C,
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

// Table gradients (word, token type) in the CPU reference's order (kernels/embedding.h): the
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
                        const EmbeddingTables& tables, int64_t B, int64_t T, int64_t C,
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

void embeddings_backward(const EmbeddingTables& grads, const void* dout, DType dtype, const int32_t* input_ids,
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

}  // namespace ww::kernels::cuda
