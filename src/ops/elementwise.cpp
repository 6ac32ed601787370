#include "wattwise/ops/elementwise.h"

#include "kernels/cpu/dropout.h"
#include "kernels/cpu/elementwise.h"
#ifdef WW_HAVE_CUDA
#include "kernels/cuda/elementwise.h"
#endif
#include "ops/checks.h"
#include "ops/extra_checks.h"

namespace ww::ops {

namespace {

// Pooling input [B, T, C] (3-D, so B and T are known).
void require_btc(const Tensor& t, const char* op, const char* arg) {
  require_activation(t, op, arg);
  require_dim(t, 3, op, arg);
}

}  // namespace

void residual_forward(const Tensor& out, const Tensor& a, const Tensor& b, const ElementDropout& b_dropout) {
  const char* op = "residual_forward";
  require_activation(a, op, "a");
  require_activation_like(b, a, op, "b", "a");
  require_activation_like(out, a, op, "out", "a");
  require_numel(b, a.numel(), op, "b");
  require_numel(out, a.numel(), op, "out");
  require_same_device(a, b, op);
  require_same_device(out, a, op);
  if (out.raw() != a.raw()) require_no_overlap(out, a, op, "out", "a");
  if (out.raw() != b.raw()) require_no_overlap(out, b, op, "out", "b");
  const uint64_t* base = checked_dropout_base(b_dropout, a, op);
  if (out.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::residual_forward(out.raw(), a.raw(), b.raw(), a.numel(), a.dtype(),
                                    {b_dropout.p, b_dropout.seed, b_dropout.offset, base});
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  if (b_dropout.p > 0.0f)
    kernels::cpu::residual_dropout_forward(out.data<float>(), a.data<float>(), b.data<float>(), a.numel(),
                                           b_dropout.p, b_dropout.seed, b_dropout.offset + (base ? *base : 0));
  else
    kernels::cpu::residual_forward(out.data<float>(), a.data<float>(), b.data<float>(), a.numel());
}

void add_inplace(const Tensor& acc, const Tensor& x) {
  const char* op = "add_inplace";
  require_activation(acc, op, "acc");
  require_activation_like(x, acc, op, "x", "acc");
  require_numel(x, acc.numel(), op, "x");
  require_same_device(acc, x, op);
  if (acc.raw() != x.raw()) require_no_overlap(acc, x, op, "acc", "x");
  if (acc.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::add_inplace(acc.raw(), x.raw(), acc.numel(), acc.dtype());
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::add_inplace(acc.data<float>(), x.data<float>(), acc.numel());
}

void scale_inplace(const Tensor& x, float factor) {
  const char* op = "scale_inplace";
  require_activation(x, op, "x");
  if (x.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::scale_inplace(x.raw(), factor, x.numel(), x.dtype());
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::scale_inplace(x.data<float>(), factor, x.numel());
}

void select_token_forward(const Tensor& out, const Tensor& inp, int64_t index) {
  const char* op = "select_token_forward";
  require_btc(inp, op, "inp");
  const int64_t B = inp.size(0), T = inp.size(1), C = inp.size(2);
  if (index < 0 || index >= T) fail(op, ": token index ", index, " is outside [0, ", T, ") for inp ", inp.describe());
  require_activation_like(out, inp, op, "out", "inp");
  require_numel(out, B * C, op, "out");
  require_same_device(out, inp, op);
  require_no_overlap(out, inp, op, "out", "inp");
  if (inp.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::select_token_forward(out.raw(), inp.raw(), B, T, C, index, inp.dtype());
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::select_token_forward(out.data<float>(), inp.data<float>(), B, T, C, index);
}

void select_token_backward(const Tensor& dinp, const Tensor& dout, int64_t index) {
  const char* op = "select_token_backward";
  require_btc(dinp, op, "dinp");
  const int64_t B = dinp.size(0), T = dinp.size(1), C = dinp.size(2);
  if (index < 0 || index >= T)
    fail(op, ": token index ", index, " is outside [0, ", T, ") for dinp ", dinp.describe());
  require_activation_like(dout, dinp, op, "dout", "dinp");
  require_numel(dout, B * C, op, "dout");
  require_same_device(dout, dinp, op);
  require_no_overlap(dinp, dout, op, "dinp", "dout");
  if (dinp.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::select_token_backward(dinp.raw(), dout.raw(), B, T, C, index, dinp.dtype());
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::select_token_backward(dinp.data<float>(), dout.data<float>(), B, T, C, index);
}

namespace {
void check_mask(const Tensor& mask, int64_t B, int64_t T, const Tensor& like, const char* op) {
  require_i32(mask, op, "mask");
  if (mask.numel() != B * T)
    fail(op, ": argument 'mask' must be [", B, ", ", T, "], got ", mask.describe());
  require_same_device(mask, like, op);
}
}  // namespace

void masked_mean_forward(const Tensor& out, const Tensor& inp, const Tensor& mask) {
  const char* op = "masked_mean_forward";
  require_btc(inp, op, "inp");
  const int64_t B = inp.size(0), T = inp.size(1), C = inp.size(2);
  check_mask(mask, B, T, inp, op);
  require_activation_like(out, inp, op, "out", "inp");
  require_numel(out, B * C, op, "out");
  require_same_device(out, inp, op);
  require_no_overlap(out, inp, op, "out", "inp");
  if (inp.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::masked_mean_forward(out.raw(), inp.raw(), mask.data<int32_t>(), B, T, C, inp.dtype());
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::masked_mean_forward(out.data<float>(), inp.data<float>(), mask.data<int32_t>(), B, T, C);
}

void masked_mean_backward(const Tensor& dinp, const Tensor& dout, const Tensor& mask) {
  const char* op = "masked_mean_backward";
  require_btc(dinp, op, "dinp");
  const int64_t B = dinp.size(0), T = dinp.size(1), C = dinp.size(2);
  check_mask(mask, B, T, dinp, op);
  require_activation_like(dout, dinp, op, "dout", "dinp");
  require_numel(dout, B * C, op, "dout");
  require_same_device(dout, dinp, op);
  require_no_overlap(dinp, dout, op, "dinp", "dout");
  if (dinp.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::masked_mean_backward(dinp.raw(), dout.raw(), mask.data<int32_t>(), B, T, C, dinp.dtype());
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::masked_mean_backward(dinp.data<float>(), dout.data<float>(), mask.data<int32_t>(), B, T, C);
}

namespace {

bool castable(DType d) { return d == DType::F32 || d == DType::F16 || d == DType::BF16; }

// One element of a CPU cast through float (exact from 16-bit; rounded to nearest even to 16-bit).
float load_as_float(const void* data, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::F16: return half_to_float(static_cast<const uint16_t*>(data)[i]);
    case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(data)[i]);
    default: return static_cast<const float*>(data)[i];
  }
}
void store_from_float(void* data, DType dtype, int64_t i, float value) {
  switch (dtype) {
    case DType::F16: static_cast<uint16_t*>(data)[i] = float_to_half(value); break;
    case DType::BF16: static_cast<uint16_t*>(data)[i] = float_to_bf16(value); break;
    default: static_cast<float*>(data)[i] = value; break;
  }
}

}  // namespace

void cast(const Tensor& out, const Tensor& inp) {
  const char* op = "cast";
  for (const auto& [t, name] : {std::pair{&out, "out"}, std::pair{&inp, "inp"}}) {
    if (!t->defined()) fail(op, ": argument '", name, "' is undefined");
    if (!castable(t->dtype())) fail(op, ": argument '", name, "' must be f32, f16 or bf16, got ", t->describe());
    if (!t->device().is_cpu() && !t->device().is_cuda())
      fail(op, ": argument '", name, "' must be on the cpu or a cuda device, got ", t->describe());
  }
  require_numel(out, inp.numel(), op, "out");
  require_same_device(out, inp, op);
  if (!(out.raw() == inp.raw() && out.dtype() == inp.dtype())) require_no_overlap(out, inp, op, "out", "inp");
  const int64_t n = inp.numel();
  if (out.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::cast(out.raw(), out.dtype(), inp.raw(), inp.dtype(), n);
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  if (out.raw() == inp.raw()) return;  // same dtype and memory
  for (int64_t i = 0; i < n; ++i) store_from_float(out.raw(), out.dtype(), i, load_as_float(inp.raw(), inp.dtype(), i));
}

void check_device_input_errors() {
#ifdef WW_HAVE_CUDA
  kernels::cuda::raise_input_errors();
#endif
}

}  // namespace ww::ops
