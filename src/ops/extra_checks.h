#pragma once
// Argument checks used by the kernels' op entry points beyond the three shared ones in checks.h
// (kept separate so checks.h stays identical across branches).
#include <cstdint>

#include "wattwise/core/tensor.h"

namespace ww::ops {

// Integer inputs (ids, labels, masks).
inline void require_i32(const Tensor& t, const char* op, const char* arg) {
  if (!t.defined()) fail(op, ": argument '", arg, "' is undefined (expected an i32 tensor)");
  if (t.dtype() != DType::I32) fail(op, ": argument '", arg, "' must be i32, got ", t.describe());
}

inline void require_dim(const Tensor& t, int64_t dims, const char* op, const char* arg) {
  if (t.dim() != dims)
    fail(op, ": argument '", arg, "' must have ", dims, " dimensions, got ", t.describe());
}

// True when the two tensors' bytes intersect (same device assumed by the caller).
inline bool memory_overlaps(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.nbytes() == 0 || b.nbytes() == 0) return false;
  auto a0 = reinterpret_cast<uintptr_t>(a.raw()), b0 = reinterpret_cast<uintptr_t>(b.raw());
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// For outputs that the kernel writes while still reading the input.
inline void require_no_overlap(const Tensor& out, const Tensor& in, const char* op, const char* out_arg,
                               const char* in_arg) {
  if (memory_overlaps(out, in))
    fail(op, ": argument '", out_arg, "' must not share memory with '", in_arg, "'");
}

// Sizes handed to cblas_sgemm are 32-bit ints.
inline void require_blas_size(int64_t n, const char* op, const char* what) {
  if (n > INT32_MAX) fail(op, ": ", what, " = ", n, " is too large for BLAS (at most 2^31-1)");
}

[[noreturn]] inline void cuda_not_implemented(const char* op) {
  fail(op, ": the CUDA backend does not implement this yet");
}

}  // namespace ww::ops
