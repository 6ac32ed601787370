#pragma once
// CUDA kernels for embeddings, LayerNorm, activations, dropout, residual/scale, token pooling,
// softmax and dtype casts. Plain functions on device pointers; same contracts as the CPU references
// in src/kernels/cpu/ (see those headers), launched on kernels::cuda::stream().
//
// Activations (void* arguments) are f32, f16 or bf16, all of one call in `dtype`; parameters,
// their gradients and LayerNorm statistics are always float. Every kernel computes in float (sums
// in double where the fp32 kernel does), so the f32 results are those of the fp32-only kernels.
//
// Bad indices (ids, token types, mask values, class labels) live in device memory, so the kernels
// do not read them on the host. Instead a kernel that meets one never reads out of bounds (it
// writes 0, or NaN for a loss) and records the first bad value in a per-device "input error"
// record; raise_input_errors() copies that record to the host and throws ww::Error with the same
// kind of message as the CPU check. It runs after every such launch in debug builds, inside
// count_valid_labels (which synchronises anyway), and wherever the caller asks
// (ww::ops::check_device_input_errors()).
#include <cstdint>

#include "wattwise/core/dtype.h"

namespace ww::kernels::cuda {

// Throws ww::Error describing the first bad input a kernel met since the last call, and clears it.
// Synchronises the stream.
void raise_input_errors();

// Embedding tables on the device (null = absent); for backward, the gradients of the tables.
struct DeviceEmbeddingTables {
  float* word = nullptr;
  int64_t vocab_size = 0;
  float* position = nullptr;
  int64_t num_positions = 0;
  float* token_type = nullptr;
  int64_t num_token_types = 0;
};

// Position range (position_offset + T <= num_positions) must be checked by the caller (host data).
// out [B,T,C] in `dtype`; the tables are float.
void embeddings_forward(void* out, DType dtype, const int32_t* input_ids, const int32_t* token_type_ids,
                        const DeviceEmbeddingTables& tables, int64_t B, int64_t T, int64_t C,
                        int64_t position_offset);
// Deterministic and bit-identical to the CPU reference for f32, in its documented order of additions
// (kernels/cpu/embedding.h: per row, chunks of 64 tokens in token order; no atomics). Word and
// token-type tables: a stable radix sort of the tokens by id, then one block per (chunk, column
// tile). Stream-ordered temporaries and no host synchronisation (CUDA-graph capturable). dout in
// `dtype`.
void embeddings_backward(const DeviceEmbeddingTables& grads, const void* dout, DType dtype, const int32_t* input_ids,
                         const int32_t* token_type_ids, int64_t B, int64_t T, int64_t C,
                         int64_t position_offset);

// LayerNorm: one warp per row (the row in registers up to C = 1024), statistics in float (two passes:
// mean, then squared deviations), 16-byte loads and stores where C and the pointers allow; within the
// fp32 tolerance of the CPU's double statistics. out may alias inp. inp/out in `dtype`; weight, bias,
// mean, rstd float.
void layernorm_forward(void* out, float* mean, float* rstd, const void* inp, DType dtype, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps);
// Element dropout applied to an operand as it is read (core/rng.h's element rule over the operand's
// flat index): the fused kernels see the values dropout_forward would have written into it, without
// writing them. p = 0: none. offset_base: null, or a device u64 added to offset (CUDA graphs).
struct ElementDropoutArgs {
  float p = 0.0f;
  uint64_t seed = 0, offset = 0;
  const uint64_t* offset_base = nullptr;
};

// sum = a + dropout(b) (rounded to `dtype`), out = LayerNorm(sum): one kernel, the code of
// layernorm_forward. sum may alias a or b exactly; out must not overlap them. b is not written.
// sum null: not stored (inference), out the same bits.
void residual_layernorm_forward(void* out, void* sum, float* mean, float* rstd, const void* a, const void* b,
                                DType dtype, const float* weight, const float* bias, int64_t N, int64_t C,
                                float eps, const ElementDropoutArgs& b_dropout = {});
// dinp: one warp per row; overwritten, or added to when accumulate. dweight/dbias: per-(32-row chunk,
// column) partial sums in float, then a second kernel adds the chunks in order (deterministic, no
// float atomics). dinp/dweight/dbias may each be null. dinp, dout, inp in `dtype`.
// workspace: null (a stream-ordered temporary is taken) or 2·ceil(N/32)·C floats.
void layernorm_backward(void* dinp, float* dweight, float* dbias, const void* dout, const void* inp, DType dtype,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        bool accumulate, float* workspace = nullptr);

void gelu_forward(void* out, const void* inp, int64_t n, DType dtype);
void gelu_backward(void* dinp, const void* inp, const void* dout, int64_t n, DType dtype);
void gelu_tanh_forward(void* out, const void* inp, int64_t n, DType dtype);
void gelu_tanh_backward(void* dinp, const void* inp, const void* dout, int64_t n, DType dtype);
void relu_forward(void* out, const void* inp, int64_t n, DType dtype);
void relu_backward(void* dinp, const void* inp, const void* dout, int64_t n, DType dtype);
void tanh_forward(void* out, const void* inp, int64_t n, DType dtype);
void tanh_backward(void* dinp, const void* out, const void* dout, int64_t n, DType dtype);

// The same Philox mask as the CPU kernel (bit for bit) for every dtype. Requires 0 <= p < 1.
// offset_base: null, or a device u64 added to offset when the kernel runs (CUDA graphs).
void dropout_forward(void* out, const void* inp, int64_t n, DType dtype, float p, uint64_t seed, uint64_t offset,
                     const uint64_t* offset_base = nullptr);
void dropout_backward(void* dinp, const void* dout, int64_t n, DType dtype, float p, uint64_t seed,
                      uint64_t offset, const uint64_t* offset_base = nullptr);

// out = a + dropout(b); b is not written (out may alias a or b).
void residual_forward(void* out, const void* a, const void* b, int64_t n, DType dtype,
                      const ElementDropoutArgs& b_dropout = {});
void add_inplace(void* acc, const void* x, int64_t n, DType dtype);
void scale_inplace(void* x, float factor, int64_t n, DType dtype);

void select_token_forward(void* out, const void* inp, int64_t B, int64_t T, int64_t C, int64_t index, DType dtype);
void select_token_backward(void* dinp, const void* dout, int64_t B, int64_t T, int64_t C, int64_t index,
                           DType dtype);

// A mask value other than 0/1 is recorded as an input error (and counted as a real token).
void masked_mean_forward(void* out, const void* inp, const int32_t* mask, int64_t B, int64_t T, int64_t C,
                         DType dtype);
void masked_mean_backward(void* dinp, const void* dout, const int32_t* mask, int64_t B, int64_t T, int64_t C,
                          DType dtype);

// Over the last dimension (cols), one block per row. out may alias inp; dinp may alias dout.
void softmax_forward(void* out, const void* inp, int64_t rows, int64_t cols, DType dtype);
void softmax_backward(void* dinp, const void* out, const void* dout, int64_t rows, int64_t cols, DType dtype);

// out = inp converted between f32, f16 and bf16 (round-to-nearest-even); same dtype copies.
// out and inp must not overlap unless they are the same dtype and pointer.
void cast(void* out, DType out_dtype, const void* inp, DType inp_dtype, int64_t n);

}  // namespace ww::kernels::cuda
