#pragma once
// Softmax cross-entropy (as torch.nn.CrossEntropyLoss with reduction='none': label smoothing,
// ignore index −100) and the squared-error regression loss, one kernel file per device
// (cpu/cross_entropy.cpp, cuda/cross_entropy.cu).
#include <cstdint>

#include "wattwise/core/dtype.h"

namespace ww::kernels::cpu {

constexpr int32_t kIgnoreIndex = -100;

// Throws ww::Error naming the row and the label of the first label outside [0, K) other than −100.
void check_class_labels(const int32_t* labels, int64_t N, int64_t K);

// losses[n] = (1−ε)·(lse − x[y]) + ε·(lse − mean_k x[k]), lse = log Σ_k exp(x[k]) (max-subtracted,
// in double); 0 for ignored rows. Labels are checked first. Rows are ld >= K floats apart (logits
// and dlogits alike); only their first K columns are read or written.
// With class weights w (K floats, or null: every w[k] = 1), as torch's CrossEntropyLoss(weight=w):
//   losses[n] = (1−ε)·w[y]·(lse − x[y]) + (ε/K)·Σ_k w[k]·(lse − x[k]).
void cross_entropy_forward(float* losses, const float* logits, const int32_t* labels, int64_t N,
                           int64_t K, int64_t ld, float label_smoothing, const float* class_weights = nullptr);

// dlogits[n,k] = scale·(softmax(x)[k] − (1−ε)·[k==y] − ε/K); 0 for ignored rows. May alias logits.
// With class weights, the gradient of the weighted loss above, W = Σ_k w[k]:
//   dlogits[n,k] = scale·(((1−ε)·w[y] + ε·W/K)·softmax(x)[k] − (1−ε)·w[y]·[k==y] − ε·w[k]/K),
// and with scale_divisor (one float, or null) scale / scale_divisor[0] in place of scale.
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* labels, int64_t N,
                            int64_t K, int64_t ld, float label_smoothing, float scale,
                            const float* class_weights = nullptr, const float* scale_divisor = nullptr);

// Both of the above in one pass over each row (the lse computed once): the same values, bit for bit,
// as cross_entropy_forward then cross_entropy_backward. dlogits may alias logits.
void cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits, const int32_t* labels,
                                    int64_t N, int64_t K, int64_t ld, float label_smoothing, float scale,
                                    const float* class_weights = nullptr, const float* scale_divisor = nullptr);

int64_t count_valid_labels(const int32_t* labels, int64_t N);

// sum[0] = Σ w[labels[n]] over the rows whose label is not −100 (in double): the denominator of the
// weighted mean loss. Labels are checked against [0, K) first.
void class_weight_sum(float* sum, const int32_t* labels, int64_t N, const float* class_weights, int64_t K);

// losses[n] = (pred[n] − target[n])²;  dpred[n] = scale · 2 · (pred[n] − target[n]).
void mse_forward(float* losses, const float* pred, const float* target, int64_t N);
void mse_backward(float* dpred, const float* pred, const float* target, int64_t N, float scale);

}  // namespace ww::kernels::cpu

#ifdef WW_HAVE_CUDA
namespace ww::kernels::cuda {

// The same contracts on device pointers. logits/dlogits and pred/dpred are activations (f32, f16
// or bf16 in `dtype`, math in float); losses, targets are float. A label outside [0, K) other than
// −100 is recorded as an input error (kernels/cuda/input_errors.h); its row gets NaN.
//
// Cross-entropy: one block per row, one read pass for the max and Σ exp (online, in float: within
// the fp32 tolerance of the CPU's double reference), 16-byte loads and stores between the unaligned
// ends of a row. Deterministic (fixed reduction order). dlogits may alias logits. Rows are ld >= K
// elements apart (logits and dlogits alike); only their first K columns are read or written.
// class_weights and scale_divisor are device pointers (or null), read by the kernels: a CUDA graph
// replays with the values they hold then. Weighted rows always take the global-memory kernel (a
// classifier's few classes; the staged kernel is for a language model's vocabulary).
void cross_entropy_forward(float* losses, const void* logits, DType dtype, const int32_t* labels, int64_t N,
                           int64_t K, int64_t ld, float label_smoothing, const float* class_weights = nullptr);
void cross_entropy_backward(void* dlogits, const void* logits, DType dtype, const int32_t* labels, int64_t N,
                            int64_t K, int64_t ld, float label_smoothing, float scale,
                            const float* class_weights = nullptr, const float* scale_divisor = nullptr);
// Both in one kernel (each row read twice, written once, instead of read four times): the losses
// and the gradient of cross_entropy_forward and cross_entropy_backward.
void cross_entropy_forward_backward(float* losses, void* dlogits, const void* logits, DType dtype,
                                    const int32_t* labels, int64_t N, int64_t K, int64_t ld, float label_smoothing,
                                    float scale, const float* class_weights = nullptr,
                                    const float* scale_divisor = nullptr);
// Copies one integer back (synchronises the stream) and raises pending input errors.
int64_t count_valid_labels(const int32_t* labels, int64_t N);
// One block, a fixed reduction order (deterministic); a label outside [0, K) other than −100 adds
// nothing (the cross-entropy kernels record it).
void class_weight_sum(float* sum, const int32_t* labels, int64_t N, const float* class_weights, int64_t K);

void mse_forward(float* losses, const void* pred, DType dtype, const float* target, int64_t N);
void mse_backward(void* dpred, const void* pred, DType dtype, const float* target, int64_t N, float scale);

}  // namespace ww::kernels::cuda
#endif
