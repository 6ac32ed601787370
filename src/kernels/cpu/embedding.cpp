#include "kernels/cpu/embedding.h"

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

void embeddings_backward(const EmbeddingTables& grads, const float* dout, const int32_t* input_ids,
                         const int32_t* token_type_ids, int64_t B, int64_t T, int64_t C,
                         int64_t position_offset) {
  check_embedding_ids(input_ids, token_type_ids, B, T, grads, position_offset);
  const int64_t N = B * T;
  const int64_t num_stripes = (C + kColumnStripe - 1) / kColumnStripe;
  // Scatter-add with repeated ids: a thread owns a column stripe of every table and walks the tokens
  // in order, so there are no races and the summation order is fixed.
#pragma omp parallel for schedule(static) if (N * C >= kParallelMinWork)
  for (int64_t s = 0; s < num_stripes; ++s) {
    const int64_t c0 = s * kColumnStripe, c1 = c0 + kColumnStripe < C ? c0 + kColumnStripe : C;
    for (int64_t n = 0; n < N; ++n) {
      const float* d = dout + n * C;
      if (grads.word) {
        float* row = grads.word + int64_t(input_ids[n]) * C;
        for (int64_t c = c0; c < c1; ++c) row[c] += d[c];
      }
      if (grads.token_type) {
        const int64_t type = token_type_ids ? token_type_ids[n] : 0;
        float* row = grads.token_type + type * C;
        for (int64_t c = c0; c < c1; ++c) row[c] += d[c];
      }
      if (grads.position) {
        float* row = grads.position + (position_offset + n % T) * C;
        for (int64_t c = c0; c < c1; ++c) row[c] += d[c];
      }
    }
  }
}

}  // namespace ww::kernels::cpu
