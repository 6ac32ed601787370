#pragma once
// CUDA losses: softmax cross-entropy (label smoothing, ignore index −100) and squared error.
// Same contracts as src/kernels/cpu/cross_entropy.h. logits/dlogits and pred/dpred are activations
// (f32, f16 or bf16 in `dtype`, math in float); losses, targets are float. A label outside [0, K)
// other than −100 is recorded as an input error (see elementwise.h); its row gets NaN.
//
// Cross-entropy: one block per row, one read pass for the max and Σ exp (online, in float: within
// the fp32 tolerance of the CPU's double reference), 16-byte loads and stores between the unaligned
// ends of a row. Deterministic (fixed reduction order). dlogits may alias logits. Rows are ld >= K
// elements apart (logits and dlogits alike); only their first K columns are read or written.
#include <cstdint>

#include "wattwise/core/dtype.h"

namespace ww::kernels::cuda {

void cross_entropy_forward(float* losses, const void* logits, DType dtype, const int32_t* labels, int64_t N,
                           int64_t K, int64_t ld, float label_smoothing);
void cross_entropy_backward(void* dlogits, const void* logits, DType dtype, const int32_t* labels, int64_t N,
                            int64_t K, int64_t ld, float label_smoothing, float scale);
// Both in one kernel (each row read twice, written once, instead of read four times): the losses
// and the gradient of cross_entropy_forward and cross_entropy_backward.
void cross_entropy_forward_backward(float* losses, void* dlogits, const void* logits, DType dtype,
                                    const int32_t* labels, int64_t N, int64_t K, int64_t ld, float label_smoothing,
                                    float scale);
// Copies one integer back (synchronises the stream) and raises pending input errors.
int64_t count_valid_labels(const int32_t* labels, int64_t N);

void mse_forward(float* losses, const void* pred, DType dtype, const float* target, int64_t N);
void mse_backward(void* dpred, const void* pred, DType dtype, const float* target, int64_t N, float scale);

}  // namespace ww::kernels::cuda
