#pragma once
// Token + position + token-type embeddings (layouts as in ww::ops::embeddings_*), forward and
// backward, one kernel file per device (cpu/embedding.cpp, cuda/embedding.cu).
#include <cstdint>

#include "wattwise/core/dtype.h"

namespace ww::kernels {

// The tables an embeddings call reads or writes, in the memory of the call's device (the tables
// are float for every activation dtype). A null table is absent. For backward the pointers are the
// gradients of the tables.
struct EmbeddingTables {
  float* word = nullptr;
  int64_t vocab_size = 0;
  float* position = nullptr;
  int64_t num_positions = 0;
  float* token_type = nullptr;
  int64_t num_token_types = 0;
};

}  // namespace ww::kernels

namespace ww::kernels::cpu {

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

#ifdef WW_HAVE_CUDA
namespace ww::kernels::cuda {

// Ids live in device memory, so they are checked on the device: a bad id is recorded as an input
// error (kernels/cuda/input_errors.h) and its output written as 0. The position range
// (position_offset + T <= num_positions) is host data and must be checked by the caller.
// out [B,T,C] in `dtype` (f32, f16 or bf16); the tables are float.
void embeddings_forward(void* out, DType dtype, const int32_t* input_ids, const int32_t* token_type_ids,
                        const EmbeddingTables& tables, int64_t B, int64_t T, int64_t C,
                        int64_t position_offset);
// Deterministic and bit-identical to the CPU reference for f32, in its documented order of additions
// (per row, chunks of kEmbeddingGradChunk tokens in token order; no atomics). Word and token-type
// tables: a stable radix sort of the tokens by id, then one block per (chunk, column tile).
// Stream-ordered temporaries and no host synchronisation (CUDA-graph capturable). dout in `dtype`.
void embeddings_backward(const EmbeddingTables& grads, const void* dout, DType dtype, const int32_t* input_ids,
                         const int32_t* token_type_ids, int64_t B, int64_t T, int64_t C,
                         int64_t position_offset);

}  // namespace ww::kernels::cuda
#endif
