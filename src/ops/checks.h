#pragma once
// Argument checks shared by the op entry points: each names the op and the argument at fault.
#include "wattwise/core/tensor.h"
namespace ww::ops {
inline void require_f32_cpu_or_cuda(const Tensor& t, const char* op, const char* arg) {
  if (!t.defined()) fail(op, ": argument '", arg, "' is undefined (expected an f32 tensor)");
  if (t.dtype() != DType::F32)
    fail(op, ": argument '", arg, "' must be f32, got ", t.describe());
  if (!t.device().is_cpu() && !t.device().is_cuda())
    fail(op, ": argument '", arg, "' must be on the cpu or a cuda device, got ", t.describe());
}  // namespace ww::ops
// An activation argument: f32 on the CPU; f32, f16 or bf16 on a cuda device.
inline void require_activation_dtype(const Tensor& t, const char* op, const char* arg) {
  if (!t.defined())
    fail(op, ": argument '", arg, "' is undefined (expected an f32 tensor, or f16/bf16 on a cuda device)");
  if (!t.device().is_cpu() && !t.device().is_cuda())
    fail(op, ": argument '", arg, "' must be on the cpu or a cuda device, got ", t.describe());
  const DType d = t.dtype();
  if (d != DType::F32 && d != DType::F16 && d != DType::BF16)
    fail(op, ": argument '", arg, "' must be f32, f16 or bf16, got ", t.describe());
}
inline void require_activation(const Tensor& t, const char* op, const char* arg) {
  require_activation_dtype(t, op, arg);
  if (t.dtype() != DType::F32 && t.device().is_cpu())
    fail(op, ": argument '", arg, "' is ", dtype_name(t.dtype()), "; 16-bit tensors run on cuda devices only (got ",
         t.describe(), ")");
}
// All activation arguments of one call share one dtype.
inline void require_same_dtype(const Tensor& t, const Tensor& like, const char* op, const char* arg,
                               const char* like_arg) {
  if (t.dtype() != like.dtype())
    fail(op, ": argument '", arg, "' is ", t.describe(), " but '", like_arg, "' is ", like.describe(),
         " (the activation arguments of one call share one dtype)");
}
// An activation argument with the dtype of `like` (an already-checked activation argument).
inline void require_activation_like(const Tensor& t, const Tensor& like, const char* op, const char* arg,
                                    const char* like_arg) {
  require_activation_dtype(t, op, arg);
  require_same_dtype(t, like, op, arg, like_arg);
  require_activation(t, op, arg);
}
inline void require_same_device(const Tensor& a, const Tensor& b, const char* op) {
  if (a.defined() && b.defined() && !(a.device() == b.device()))
    fail(op, ": arguments must be on one device, got ", a.describe(), " and ", b.describe());
}  // namespace ww::ops
inline void require_numel(const Tensor& t, int64_t n, const char* op, const char* arg) {
  if (t.numel() != n)
    fail(op, ": argument '", arg, "' must have ", n, " elements, got ", t.describe());
}  // namespace ww::ops
}  // namespace ww::ops
