#include "wattwise/ops/cross_entropy.h"

#include <cmath>

#include "kernels/cross_entropy.h"
#include "ops/checks.h"
#include "ops/dispatch.h"
#include "ops/extra_checks.h"

namespace ww::ops {

namespace {

struct ClassSizes {
  int64_t N, K, ld;  // rows, classes, row stride
};

// logits [N, L] (L = last dimension), labels i32 [N]; the classes are the first `classes` columns
// (kAllColumns: all L).
constexpr int64_t kAllColumns = -1;
ClassSizes check_logits_labels(const Tensor& logits, const Tensor& labels, float label_smoothing,
                               int64_t classes, const char* op) {
  require_activation(logits, op, "logits");
  if (logits.dim() < 1) fail(op, ": argument 'logits' must be [N, K], got ", logits.describe());
  const int64_t ld = logits.size(-1);
  if (ld == 0) fail(op, ": argument 'logits' has no classes: ", logits.describe());
  if (classes != kAllColumns && !(classes >= 1 && classes <= ld))
    fail(op, ": ", classes, " classes do not fit the rows of 'logits' ", logits.describe());
  const int64_t K = classes == kAllColumns ? ld : classes;
  const int64_t N = logits.numel() / ld;
  require_i32(labels, op, "labels");
  require_numel(labels, N, op, "labels");
  require_same_device(labels, logits, op);
  if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f))
    fail(op, ": label_smoothing must be in [0, 1], got ", label_smoothing);
  return {N, K, ld};
}

// Optional class weights: f32 [K] on the logits' device; null data pointer when undefined.
const float* check_class_weights(const Tensor& class_weights, int64_t K, const Tensor& logits, const char* op) {
  if (!class_weights.defined()) return nullptr;
  require_f32_cpu_or_cuda(class_weights, op, "class_weights");
  require_numel(class_weights, K, op, "class_weights");
  require_same_device(class_weights, logits, op);
  return class_weights.data<float>();
}

// Optional scale divisor: f32 [1] on the logits' device.
const float* check_scale_divisor(const Tensor& divisor, const Tensor& logits, const char* op) {
  if (!divisor.defined()) return nullptr;
  require_f32_cpu_or_cuda(divisor, op, "scale_divisor");
  require_numel(divisor, 1, op, "scale_divisor");
  require_same_device(divisor, logits, op);
  return divisor.data<float>();
}

// pred and target f32 with N elements each.
int64_t check_regression(const Tensor& pred, const Tensor& target, const char* op) {
  require_activation(pred, op, "pred");
  require_f32_cpu_or_cuda(target, op, "target");
  require_numel(target, pred.numel(), op, "target");
  require_same_device(target, pred, op);
  return pred.numel();
}

}  // namespace

namespace {

void cross_entropy_forward_impl(const Tensor& losses, const Tensor& logits, int64_t classes, const Tensor& labels,
                                float label_smoothing, const Tensor& class_weights, const char* op) {
  const auto [N, K, ld] = check_logits_labels(logits, labels, label_smoothing, classes, op);
  require_f32_cpu_or_cuda(losses, op, "losses");
  require_numel(losses, N, op, "losses");
  require_same_device(losses, logits, op);
  require_no_overlap(losses, logits, op, "losses", "logits");
  const float* w = check_class_weights(class_weights, K, logits, op);
  dispatch(
      op, logits.device(),
      [&] {
        kernels::cpu::cross_entropy_forward(losses.data<float>(), logits.data<float>(), labels.data<int32_t>(), N, K,
                                            ld, label_smoothing, w);
      },
      WW_CUDA([&] {
        kernels::cuda::cross_entropy_forward(losses.data<float>(), logits.raw(), logits.dtype(),
                                             labels.data<int32_t>(), N, K, ld, label_smoothing, w);
      }));
}

void cross_entropy_forward_backward_impl(const Tensor& losses, const Tensor& dlogits, const Tensor& logits,
                                         int64_t classes, const Tensor& labels, float label_smoothing, float scale,
                                         const Tensor& class_weights, const Tensor& scale_divisor, const char* op) {
  const auto [N, K, ld] = check_logits_labels(logits, labels, label_smoothing, classes, op);
  require_f32_cpu_or_cuda(losses, op, "losses");
  require_numel(losses, N, op, "losses");
  require_same_device(losses, logits, op);
  require_no_overlap(losses, logits, op, "losses", "logits");
  require_activation_like(dlogits, logits, op, "dlogits", "logits");
  require_numel(dlogits, N * ld, op, "dlogits");
  require_same_device(dlogits, logits, op);
  if (dlogits.raw() != logits.raw()) require_no_overlap(dlogits, logits, op, "dlogits", "logits");
  require_no_overlap(losses, dlogits, op, "losses", "dlogits");
  if (!std::isfinite(scale)) fail(op, ": scale must be finite, got ", scale);
  const float* w = check_class_weights(class_weights, K, logits, op);
  const float* divisor = check_scale_divisor(scale_divisor, logits, op);
  dispatch(
      op, logits.device(),
      [&] {
        kernels::cpu::cross_entropy_forward_backward(losses.data<float>(), dlogits.data<float>(), logits.data<float>(),
                                                     labels.data<int32_t>(), N, K, ld, label_smoothing, scale, w,
                                                     divisor);
      },
      WW_CUDA([&] {
        kernels::cuda::cross_entropy_forward_backward(losses.data<float>(), dlogits.raw(), logits.raw(),
                                                      logits.dtype(), labels.data<int32_t>(), N, K, ld,
                                                      label_smoothing, scale, w, divisor);
      }));
}

}  // namespace

void cross_entropy_forward(const Tensor& losses, const Tensor& logits, const Tensor& labels,
                           float label_smoothing, const Tensor& class_weights) {
  cross_entropy_forward_impl(losses, logits, kAllColumns, labels, label_smoothing, class_weights,
                             "cross_entropy_forward");
}

void cross_entropy_forward_padded(const Tensor& losses, const Tensor& logits, int64_t classes, const Tensor& labels,
                                  float label_smoothing) {
  cross_entropy_forward_impl(losses, logits, classes, labels, label_smoothing, Tensor(),
                             "cross_entropy_forward_padded");
}

void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& labels,
                            float label_smoothing, float scale, const Tensor& class_weights,
                            const Tensor& scale_divisor) {
  const char* op = "cross_entropy_backward";
  const auto [N, K, ld] = check_logits_labels(logits, labels, label_smoothing, kAllColumns, op);
  require_activation_like(dlogits, logits, op, "dlogits", "logits");
  require_numel(dlogits, N * K, op, "dlogits");
  require_same_device(dlogits, logits, op);
  if (dlogits.raw() != logits.raw()) require_no_overlap(dlogits, logits, op, "dlogits", "logits");
  if (!std::isfinite(scale)) fail(op, ": scale must be finite, got ", scale);
  const float* w = check_class_weights(class_weights, K, logits, op);
  const float* divisor = check_scale_divisor(scale_divisor, logits, op);
  dispatch(
      op, logits.device(),
      [&] {
        kernels::cpu::cross_entropy_backward(dlogits.data<float>(), logits.data<float>(), labels.data<int32_t>(), N,
                                             K, ld, label_smoothing, scale, w, divisor);
      },
      WW_CUDA([&] {
        kernels::cuda::cross_entropy_backward(dlogits.raw(), logits.raw(), logits.dtype(), labels.data<int32_t>(), N,
                                              K, ld, label_smoothing, scale, w, divisor);
      }));
}

void cross_entropy_forward_backward(const Tensor& losses, const Tensor& dlogits, const Tensor& logits,
                                    const Tensor& labels, float label_smoothing, float scale,
                                    const Tensor& class_weights, const Tensor& scale_divisor) {
  cross_entropy_forward_backward_impl(losses, dlogits, logits, kAllColumns, labels, label_smoothing, scale,
                                      class_weights, scale_divisor, "cross_entropy_forward_backward");
}

void cross_entropy_forward_backward_padded(const Tensor& losses, const Tensor& dlogits, const Tensor& logits,
                                           int64_t classes, const Tensor& labels, float label_smoothing,
                                           float scale) {
  cross_entropy_forward_backward_impl(losses, dlogits, logits, classes, labels, label_smoothing, scale, Tensor(),
                                      Tensor(), "cross_entropy_forward_backward_padded");
}

void class_weight_sum(const Tensor& sum, const Tensor& labels, const Tensor& class_weights) {
  const char* op = "class_weight_sum";
  require_i32(labels, op, "labels");
  require_f32_cpu_or_cuda(class_weights, op, "class_weights");
  require_f32_cpu_or_cuda(sum, op, "sum");
  require_numel(sum, 1, op, "sum");
  require_same_device(labels, class_weights, op);
  require_same_device(sum, class_weights, op);
  const int64_t K = class_weights.numel();
  if (K == 0) fail(op, ": argument 'class_weights' has no classes: ", class_weights.describe());
  dispatch(
      op, labels.device(),
      [&] {
        kernels::cpu::class_weight_sum(sum.data<float>(), labels.data<int32_t>(), labels.numel(),
                                       class_weights.data<float>(), K);
      },
      WW_CUDA([&] {
        kernels::cuda::class_weight_sum(sum.data<float>(), labels.data<int32_t>(), labels.numel(),
                                        class_weights.data<float>(), K);
      }));
}

int64_t count_valid_labels(const Tensor& labels) {
  const char* op = "count_valid_labels";
  require_i32(labels, op, "labels");
  return dispatch(
      op, labels.device(), [&] { return kernels::cpu::count_valid_labels(labels.data<int32_t>(), labels.numel()); },
      WW_CUDA([&] { return kernels::cuda::count_valid_labels(labels.data<int32_t>(), labels.numel()); }));
}

void mse_forward(const Tensor& losses, const Tensor& pred, const Tensor& target) {
  const char* op = "mse_forward";
  const int64_t N = check_regression(pred, target, op);
  require_f32_cpu_or_cuda(losses, op, "losses");
  require_numel(losses, N, op, "losses");
  require_same_device(losses, pred, op);
  dispatch(
      op, pred.device(),
      [&] { kernels::cpu::mse_forward(losses.data<float>(), pred.data<float>(), target.data<float>(), N); },
      WW_CUDA([&] {
        kernels::cuda::mse_forward(losses.data<float>(), pred.raw(), pred.dtype(), target.data<float>(), N);
      }));
}

void mse_backward(const Tensor& dpred, const Tensor& pred, const Tensor& target, float scale) {
  const char* op = "mse_backward";
  const int64_t N = check_regression(pred, target, op);
  require_activation_like(dpred, pred, op, "dpred", "pred");
  require_numel(dpred, N, op, "dpred");
  require_same_device(dpred, pred, op);
  dispatch(
      op, pred.device(),
      [&] { kernels::cpu::mse_backward(dpred.data<float>(), pred.data<float>(), target.data<float>(), N, scale); },
      WW_CUDA([&] {
        kernels::cuda::mse_backward(dpred.raw(), pred.raw(), pred.dtype(), target.data<float>(), N, scale);
      }));
}

}  // namespace ww::ops
