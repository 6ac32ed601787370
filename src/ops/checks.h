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
inline void require_same_device(const Tensor& a, const Tensor& b, const char* op) {
  if (a.defined() && b.defined() && !(a.device() == b.device()))
    fail(op, ": arguments must be on one device, got ", a.describe(), " and ", b.describe());
}  // namespace ww::ops
inline void require_numel(const Tensor& t, int64_t n, const char* op, const char* arg) {
  if (t.numel() != n)
    fail(op, ": argument '", arg, "' must have ", n, " elements, got ", t.describe());
}  // namespace ww::ops
}  // namespace ww::ops
