#pragma once
#include "wattwise/core/tensor.h"

namespace ww::ops {

// out[b,t,:] = word[input_ids[b,t]] + position[position_offset + t] + token_type[token_type_ids[b,t]]
// out [B,T,C] an activation (f32; on cuda also f16/bf16); tables ALWAYS f32; input_ids i32 [B,T]; token_type_ids i32 [B,T] or undefined (then token type 0 is
// added if `token_type` is defined); word [V,C]; position [P,C] or undefined; token_type [TT,C] or
// undefined. An id outside its table is an error naming the id and its position.
void embeddings_forward(const Tensor& out, const Tensor& input_ids, const Tensor& token_type_ids,
                        const Tensor& word, const Tensor& position, const Tensor& token_type,
                        int64_t position_offset = 0);

// Scatter-adds dout (activation dtype) into the tables' f32 gradients (accumulates). Undefined gradient tensors are skipped.
void embeddings_backward(const Tensor& dword, const Tensor& dposition, const Tensor& dtoken_type,
                         const Tensor& dout, const Tensor& input_ids, const Tensor& token_type_ids,
                         int64_t position_offset = 0);

}  // namespace ww::ops
