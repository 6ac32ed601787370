#include "wattwise/ops/embedding.h"

#include "kernels/embedding.h"
#include "ops/checks.h"
#include "ops/dispatch.h"
#include "ops/extra_checks.h"

namespace ww::ops {

namespace {

// A table [rows, C] of the right width on the same device as `like`.
void check_table(const Tensor& table, int64_t C, const Tensor& like, const char* op, const char* arg) {
  require_f32_cpu_or_cuda(table, op, arg);
  require_dim(table, 2, op, arg);
  if (table.size(1) != C) fail(op, ": argument '", arg, "' must have ", C, " columns, got ", table.describe());
  require_same_device(table, like, op);
}

// Ids [B,T] i32 (token types optional, same shape).
void check_ids(const Tensor& input_ids, const Tensor& token_type_ids, const char* op) {
  require_i32(input_ids, op, "input_ids");
  require_dim(input_ids, 2, op, "input_ids");
  if (token_type_ids.defined()) {
    require_i32(token_type_ids, op, "token_type_ids");
    if (token_type_ids.shape() != input_ids.shape())
      fail(op, ": argument 'token_type_ids' must have the shape of input_ids ", shape_str(input_ids.shape()),
           ", got ", token_type_ids.describe());
    require_same_device(token_type_ids, input_ids, op);
  }
}

// The position range is host data, so CUDA checks it here as the CPU kernel does; ids are checked
// on the device (see kernels/cuda/input_errors.h: a bad id is recorded and reported by
// check_device_input_errors, and in debug builds right after the launch).
[[maybe_unused]] void check_positions(const kernels::EmbeddingTables& tables, int64_t T, int64_t position_offset) {
  if (tables.position && position_offset + T > tables.num_positions)
    fail("embeddings: positions ", position_offset, "..", position_offset + T - 1,
         " are outside the position table (", tables.num_positions, " positions)");
}

}  // namespace

void embeddings_forward(const Tensor& out, const Tensor& input_ids, const Tensor& token_type_ids,
                        const Tensor& word, const Tensor& position, const Tensor& token_type,
                        int64_t position_offset) {
  const char* op = "embeddings_forward";
  check_ids(input_ids, token_type_ids, op);
  require_f32_cpu_or_cuda(word, op, "word");
  require_dim(word, 2, op, "word");
  const int64_t B = input_ids.size(0), T = input_ids.size(1), C = word.size(1);
  require_same_device(word, input_ids, op);
  require_activation(out, op, "out");  // the tables stay f32
  require_numel(out, B * T * C, op, "out");
  require_same_device(out, word, op);
  if (position.defined()) check_table(position, C, word, op, "position");
  if (token_type.defined()) check_table(token_type, C, word, op, "token_type");
  if (token_type_ids.defined() && !token_type.defined())
    fail(op, ": token_type_ids were given but there is no token_type table");
  if (position_offset < 0) fail(op, ": position_offset must be >= 0, got ", position_offset);
  for (const Tensor* table : {&word, &position, &token_type})
    require_no_overlap(out, *table, op, "out", "an embedding table");
  kernels::EmbeddingTables tables;
  tables.word = word.data<float>();
  tables.vocab_size = word.size(0);
  if (position.defined()) {
    tables.position = position.data<float>();
    tables.num_positions = position.size(0);
  }
  if (token_type.defined()) {
    tables.token_type = token_type.data<float>();
    tables.num_token_types = token_type.size(0);
  }
  const int32_t* type_ids = token_type_ids.defined() ? token_type_ids.data<int32_t>() : nullptr;
  dispatch(
      op, out.device(),
      [&] {
        kernels::cpu::embeddings_forward(out.data<float>(), input_ids.data<int32_t>(), type_ids, tables, B, T, C,
                                         position_offset);
      },
      WW_CUDA([&] {
        check_positions(tables, T, position_offset);
        kernels::cuda::embeddings_forward(out.raw(), out.dtype(), input_ids.data<int32_t>(), type_ids, tables, B, T,
                                          C, position_offset);
      }));
}

void embeddings_backward(const Tensor& dword, const Tensor& dposition, const Tensor& dtoken_type,
                         const Tensor& dout, const Tensor& input_ids, const Tensor& token_type_ids,
                         int64_t position_offset) {
  const char* op = "embeddings_backward";
  check_ids(input_ids, token_type_ids, op);
  require_activation(dout, op, "dout");  // the tables' gradients stay f32
  require_same_device(dout, input_ids, op);
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  if (B * T == 0) return;
  if (dout.numel() % (B * T) != 0)
    fail(op, ": argument 'dout' must have B*T*C elements for input_ids ", shape_str(input_ids.shape()), ", got ",
         dout.describe());
  const int64_t C = dout.numel() / (B * T);
  if (dword.defined()) check_table(dword, C, dout, op, "dword");
  if (dposition.defined()) check_table(dposition, C, dout, op, "dposition");
  if (dtoken_type.defined()) check_table(dtoken_type, C, dout, op, "dtoken_type");
  if (position_offset < 0) fail(op, ": position_offset must be >= 0, got ", position_offset);
  for (const Tensor* table : {&dword, &dposition, &dtoken_type})
    require_no_overlap(*table, dout, op, "an embedding gradient", "dout");
  kernels::EmbeddingTables grads;
  if (dword.defined()) {
    grads.word = dword.data<float>();
    grads.vocab_size = dword.size(0);
  }
  if (dposition.defined()) {
    grads.position = dposition.data<float>();
    grads.num_positions = dposition.size(0);
  }
  if (dtoken_type.defined()) {
    grads.token_type = dtoken_type.data<float>();
    grads.num_token_types = dtoken_type.size(0);
  }
  const int32_t* type_ids = token_type_ids.defined() ? token_type_ids.data<int32_t>() : nullptr;
  dispatch(
      op, dout.device(),
      [&] {
        kernels::cpu::embeddings_backward(grads, dout.data<float>(), input_ids.data<int32_t>(), type_ids, B, T, C,
                                          position_offset);
      },
      WW_CUDA([&] {
        check_positions(grads, T, position_offset);
        kernels::cuda::embeddings_backward(grads, dout.raw(), dout.dtype(), input_ids.data<int32_t>(), type_ids, B, T,
                                           C, position_offset);
      }));
}

}  // namespace ww::ops
