#pragma once
// CUDA fp32 kernels for embeddings, LayerNorm, activations, dropout, residual/scale, token pooling
// and softmax. Plain functions on device pointers; same contracts as the CPU references in
// src/kernels/cpu/ (see those headers), launched on kernels::cuda::stream().
//
// Bad indices (ids, token types, mask values, class labels) live in device memory, so the kernels
// do not read them on the host. Instead a kernel that meets one never reads out of bounds (it
// writes 0, or NaN for a loss) and records the first bad value in a per-device "input error"
// record; raise_input_errors() copies that record to the host and throws ww::Error with the same
// kind of message as the CPU check. It runs after every such launch in debug builds, inside
// count_valid_labels (which synchronises anyway), and wherever the caller asks
// (ww::ops::check_device_input_errors()).
#include <cstdint>

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
void embeddings_forward(float* out, const int32_t* input_ids, const int32_t* token_type_ids,
                        const DeviceEmbeddingTables& tables, int64_t B, int64_t T, int64_t C,
                        int64_t position_offset);
// Deterministic and bit-identical to the CPU reference: one thread owns a column of a table and
// adds the tokens' gradients in token order (no atomics).
void embeddings_backward(const DeviceEmbeddingTables& grads, const float* dout, const int32_t* input_ids,
                         const int32_t* token_type_ids, int64_t B, int64_t T, int64_t C,
                         int64_t position_offset);

// One block per row; statistics in double as on the CPU. out may alias inp.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps);
// dinp: one block per row. dweight/dbias: per-(row chunk, column) partial sums in double, then a
// second kernel adds the chunks in order (deterministic, no float atomics). dinp/dweight/dbias may
// each be null.
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);

void gelu_forward(float* out, const float* inp, int64_t n);
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n);
void relu_forward(float* out, const float* inp, int64_t n);
void relu_backward(float* dinp, const float* inp, const float* dout, int64_t n);
void tanh_forward(float* out, const float* inp, int64_t n);
void tanh_backward(float* dinp, const float* out, const float* dout, int64_t n);

// The same Philox mask as the CPU kernel (bit for bit). Requires 0 <= p < 1.
void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset);
void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset);

void residual_forward(float* out, const float* a, const float* b, int64_t n);
void add_inplace(float* acc, const float* x, int64_t n);
void scale_inplace(float* x, float factor, int64_t n);

void select_token_forward(float* out, const float* inp, int64_t B, int64_t T, int64_t C, int64_t index);
void select_token_backward(float* dinp, const float* dout, int64_t B, int64_t T, int64_t C, int64_t index);

// A mask value other than 0/1 is recorded as an input error (and counted as a real token).
void masked_mean_forward(float* out, const float* inp, const int32_t* mask, int64_t B, int64_t T, int64_t C);
void masked_mean_backward(float* dinp, const float* dout, const int32_t* mask, int64_t B, int64_t T, int64_t C);

// Over the last dimension (cols), one block per row. out may alias inp; dinp may alias dout.
void softmax_forward(float* out, const float* inp, int64_t rows, int64_t cols);
void softmax_backward(float* dinp, const float* out, const float* dout, int64_t rows, int64_t cols);

}  // namespace ww::kernels::cuda
