#include "kernels/embedding.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "wattwise/core/error.h"

namespace ww::kernels::cpu {

void check_embedding_ids(const int32_t* input_ids, const int32_t* token_type_ids, int64_t B, int64_t T,
                         const EmbeddingTables& tables, int64_t position_offset) {
  if (tables.position && (position_offset < 0 || position_offset + T > tables.num_positions))
    fail("embeddings: positions ", position_offset, "..", position_offset + T - 1,
         " are outside the position table (", tables.num_positions, " positions)");
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      const int32_t id = input_ids[b * T + t];
      if (tables.word && (id < 0 || id >= tables.vocab_size))
        fail("embeddings: input id ", id, " at batch row ", b, ", position ", t,
             " is outside the word table (vocab size ", tables.vocab_size, ")");
      const int32_t type = token_type_ids ? token_type_ids[b * T + t] : 0;
      if (tables.token_type && (type < 0 || type >= tables.num_token_types))
        fail("embeddings: token type id ", type, " at batch row ", b, ", position ", t,
             " is outside the token type table (", tables.num_token_types, " types)");
    }
  }
}

void embeddings_forward(float* out, const int32_t* input_ids, const int32_t* token_type_ids,
                        const EmbeddingTables& tables, int64_t B, int64_t T, int64_t C,
                        int64_t position_offset) {
  WW_CHECK(tables.word != nullptr, "embeddings_forward needs a word table");
  check_embedding_ids(input_ids, token_type_ids, B, T, tables, position_offset);
  const int64_t N = B * T;
#pragma omp parallel for schedule(static) if (N * C >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = n % T;
    const float* word = tables.word + int64_t(input_ids[n]) * C;
    float* o = out + n * C;
    for (int64_t c = 0; c < C; ++c) o[c] = word[c];
    if (tables.token_type) {
      const int64_t type = token_type_ids ? token_type_ids[n] : 0;
      const float* row = tables.token_type + type * C;
      for (int64_t c = 0; c < C; ++c) o[c] += row[c];
    }
    if (tables.position) {
      const float* row = tables.position + (position_offset + t) * C;
      for (int64_t c = 0; c < C; ++c) o[c] += row[c];
    }
  }
}

namespace {

// table[id] += Σ dout[n] over the tokens n with ids[n] == id (ids == null: id 0 for every token), in
// the fixed order of embedding.h: each id's tokens in token order, summed in chunks of
// kEmbeddingGradChunk from 0, the chunk sums added to the table value in order. The CUDA kernel adds
// in the same order, so the two agree bit for bit. Ids were checked by the caller.
void table_backward(float* table, int64_t rows, const float* dout, const int32_t* ids, int64_t N, int64_t C) {
  // A stable counting sort: tokens[first[id] .. first[id + 1]) are id's tokens in token order.
  std::vector<int64_t> first(size_t(rows) + 1, 0);
  for (int64_t n = 0; n < N; ++n) ++first[size_t(ids ? ids[n] : 0) + 1];
  for (int64_t r = 0; r < rows; ++r) first[size_t(r) + 1] += first[size_t(r)];
  std::vector<int64_t> next(first.begin(), first.end() - 1);
  std::vector<int64_t> tokens(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) tokens[size_t(next[size_t(ids ? ids[n] : 0)]++)] = n;
  std::vector<int64_t> used;  // ids with at least one token
  for (int64_t r = 0; r < rows; ++r)
    if (first[size_t(r) + 1] > first[size_t(r)]) used.push_back(r);

  const int64_t num_stripes = (C + kColumnStripe - 1) / kColumnStripe;
  // A thread owns a column stripe of every row: no races, and the order above is the same for any
  // number of threads.
#pragma omp parallel for schedule(static) if (N * C >= kParallelMinWork)
  for (int64_t s = 0; s < num_stripes; ++s) {
    const int64_t c0 = s * kColumnStripe, width = std::min(kColumnStripe, C - c0);
    float total[kColumnStripe], chunk[kColumnStripe];
    for (const int64_t id : used) {
      float* row = table + id * C + c0;
      for (int64_t c = 0; c < width; ++c) total[c] = row[c];
      for (int64_t j0 = first[size_t(id)]; j0 < first[size_t(id) + 1]; j0 += kEmbeddingGradChunk) {
        const int64_t j1 = std::min(j0 + kEmbeddingGradChunk, first[size_t(id) + 1]);
        for (int64_t c = 0; c < width; ++c) chunk[c] = 0.0f;
        for (int64_t j = j0; j < j1; ++j) {
          const float* d = dout + tokens[size_t(j)] * C + c0;
          for (int64_t c = 0; c < width; ++c) chunk[c] += d[c];
        }
        for (int64_t c = 0; c < width; ++c) total[c] += chunk[c];
      }
      for (int64_t c = 0; c < width; ++c) row[c] = total[c];
    }
  }
}

}  // namespace

void embeddings_backward(const EmbeddingTables& grads, const float* dout, const int32_t* input_ids,
                         const int32_t* token_type_ids, int64_t B, int64_t T, int64_t C,
                         int64_t position_offset) {
  check_embedding_ids(input_ids, token_type_ids, B, T, grads, position_offset);
  const int64_t N = B * T;
  if (grads.word) table_backward(grads.word, grads.vocab_size, dout, input_ids, N, C);
  if (grads.token_type) table_backward(grads.token_type, grads.num_token_types, dout, token_type_ids, N, C);
  if (grads.position) {
    // position[offset + t] += dout[b, t] in batch order (a thread owns a column stripe).
    const int64_t num_stripes = (C + kColumnStripe - 1) / kColumnStripe;
#pragma omp parallel for schedule(static) if (N * C >= kParallelMinWork)
    for (int64_t s = 0; s < num_stripes; ++s) {
      const int64_t c0 = s * kColumnStripe, c1 = std::min(c0 + kColumnStripe, C);
      for (int64_t n = 0; n < N; ++n) {
        const float* d = dout + n * C;
        float* row = grads.position + (position_offset + n % T) * C;
        for (int64_t c = c0; c < c1; ++c) row[c] += d[c];
      }
    }
  }
}

}  // namespace ww::kernels::cpu
