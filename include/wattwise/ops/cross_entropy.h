#pragma once
#include "wattwise/core/tensor.h"

namespace ww::ops {

// Softmax cross-entropy per row with optional label smoothing ε (as torch.nn.CrossEntropyLoss):
//   loss[n] = (1−ε)·(−log p[n,y]) + ε·mean_k(−log p[n,k]);  label −100 ⇒ ignored, loss[n] = 0.
// logits [N,K] (and dlogits) an activation: f32, on cuda also f16/bf16 (math in double on the cpu, float on
// cuda);
// labels i32 [N], losses [N] f32. A label outside [0,K) (other than −100) is an
// error naming the row and the label.
//
// Class weights w (f32 [K] on the logits' device, every w[k] > 0; undefined: all 1), as
// torch.nn.CrossEntropyLoss(weight=w, label_smoothing=ε, reduction='none'):
//   loss[n] = (1−ε)·w[y]·(−log p[n,y]) + (ε/K)·Σ_k w[k]·(−log p[n,k]),
// the smoothing term weighted by each class's own weight, not the label's; torch's
// reduction='mean' is Σ_n loss[n] / Σ_n w[y_n] over the rows not ignored (class_weight_sum).
void cross_entropy_forward(const Tensor& losses, const Tensor& logits, const Tensor& labels,
                           float label_smoothing, const Tensor& class_weights = Tensor());

// dlogits[n,:] = scale · (softmax(logits[n]) − target[n])  for non-ignored rows, 0 for ignored.
// Pass scale = 1/num_valid_rows for a mean loss. dlogits overwritten; may alias logits.
// With class weights: scale · d loss[n] / d logits[n] of the weighted loss above. scale_divisor
// (f32 [1] on the logits' device, or undefined) divides scale on the device: pass class_weight_sum's
// result and scale = 1 for the gradient of torch's weighted mean, which a CUDA graph then replays
// with each batch's own sum.
void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& labels,
                            float label_smoothing, float scale, const Tensor& class_weights = Tensor(),
                            const Tensor& scale_divisor = Tensor());

// cross_entropy_forward then cross_entropy_backward in one pass (one kernel on cuda: the logits are
// read twice instead of four times), with the same results; dlogits may alias logits.
void cross_entropy_forward_backward(const Tensor& losses, const Tensor& dlogits, const Tensor& logits,
                                    const Tensor& labels, float label_smoothing, float scale,
                                    const Tensor& class_weights = Tensor(), const Tensor& scale_divisor = Tensor());

// sum (f32 [1], on the labels' device) = Σ_n class_weights[labels[n]] over the rows whose label is
// not −100: the denominator of the weighted mean. A label outside [0, K) is an error on the cpu; on
// cuda it adds nothing (the cross-entropy ops report it).
void class_weight_sum(const Tensor& sum, const Tensor& labels, const Tensor& class_weights);

// The same over the first `classes` columns of logits [N, L] (and dlogits), 1 <= classes <= L; the
// other columns are neither read nor written. For logits in padded rows (ops::linear_forward_padded).
void cross_entropy_forward_padded(const Tensor& losses, const Tensor& logits, int64_t classes, const Tensor& labels,
                                  float label_smoothing);
void cross_entropy_forward_backward_padded(const Tensor& losses, const Tensor& dlogits, const Tensor& logits,
                                           int64_t classes, const Tensor& labels, float label_smoothing,
                                           float scale);

// Number of rows whose label is not −100.
int64_t count_valid_labels(const Tensor& labels);

// Regression head (num_labels == 1), as HF's MSELoss: loss[n] = (pred[n] − target[n])².
// pred [N] or [N,1] (and dpred) an activation; target and losses f32 [N]. dpred = scale · 2 (pred − target), overwritten.
void mse_forward(const Tensor& losses, const Tensor& pred, const Tensor& target);
void mse_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, float scale);

}  // namespace ww::ops
