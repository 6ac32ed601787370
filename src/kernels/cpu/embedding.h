#pragma once
// CPU reference for token + position + token-type embeddings (layouts as in ww::ops::embeddings_*).
#include <cstdint>

namespace ww::kernels::cpu {

// The tables an embeddings call reads or writes. A null table is absent. For backward the pointers
// are the gradients of the tables.
struct EmbeddingTables {
  float* word = nullptr;
  int64_t vocab_size = 0;
  float* position = nullptr;
  int64_t num_positions = 0;
  float* token_type = nullptr;
  int64_t num_token_types = 0;
};

// Throws ww::Error naming the batch row, position and id of the first id outside its table.
// token_type_ids may be null (token type 0 is used).
void check_embedding_ids(const int32_t* input_ids, const int32_t* token_type_ids, int64_t B, int64_t T,
                         const EmbeddingTables& tables, int64_t position_offset);

// out[b,t,:] = (word[id] + token_type[tt]) + position[position_offset + t], in Hugging Face's order.
// Ids are checked first; nothing is written when one is out of range.
void embeddings_forward(float* out, const int32_t* input_ids, const int32_t* token_type_ids,
                        const EmbeddingTables& tables, int64_t B, int64_t T, int64_t C,
                        int64_t position_offset);

// Word and token-type gradients are summed in chunks of this many tokens (see embeddings_backward).
constexpr int64_t kEmbeddingGradChunk = 64;

// grads.word[id] += dout[b,t], grads.position[offset+t] += dout[b,t], grads.token_type[tt] += dout[b,t].
// Deterministic, in a fixed order of fp32 additions that the CUDA kernels follow bit for bit:
//   word / token-type row r: its tokens n (ids[n] == r) in token order, split into consecutive chunks
//     of kEmbeddingGradChunk; each chunk summed from 0.0f in token order; then
//     row[r] = ((row[r] + chunk_0) + chunk_1) + ...   (chunks let a GPU sum one id's many tokens in
//     parallel, e.g. BERT's token-type row 0, which every token hits);
//   position row offset + t: row += dout[0, t], then += dout[1, t], ... (batch order).
void embeddings_backward(const EmbeddingTables& grads, const float* dout, const int32_t* input_ids,
                         const int32_t* token_type_ids, int64_t B, int64_t T, int64_t C,
                         int64_t position_offset);

}  // namespace ww::kernels::cpu
