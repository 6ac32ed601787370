#include "wattwise/ops/elementwise.h"

#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#ifdef WW_HAVE_CUDA
#include "kernels/cuda/input_errors.h"
#endif
#include "ops/checks.h"
#include "ops/dispatch.h"
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
  dispatch(
      op, out.device(),
      [&] {
        if (b_dropout.p > 0.0f)
          kernels::cpu::residual_dropout_forward(out.data<float>(), a.data<float>(), b.data<float>(), a.numel(),
                                                 b_dropout.p, b_dropout.seed, b_dropout.offset + (base ? *base : 0));
        else
          kernels::cpu::residual_forward(out.data<float>(), a.data<float>(), b.data<float>(), a.numel());
      },
      WW_CUDA([&] {
        kernels::cuda::residual_forward(out.raw(), a.raw(), b.raw(), a.numel(), a.dtype(),
                                        {b_dropout.p, b_dropout.seed, b_dropout.offset, base});
      }));
}

void add_inplace(const Tensor& acc, const Tensor& x) {
  const char* op = "add_inplace";
  require_activation(acc, op, "acc");
  require_activation_like(x, acc, op, "x", "acc");
  require_numel(x, acc.numel(), op, "x");
  require_same_device(acc, x, op);
  if (acc.raw() != x.raw()) require_no_overlap(acc, x, op, "acc", "x");
  dispatch(
      op, acc.device(), [&] { kernels::cpu::add_inplace(acc.data<float>(), x.data<float>(), acc.numel()); },
      WW_CUDA([&] { kernels::cuda::add_inplace(acc.raw(), x.raw(), acc.numel(), acc.dtype()); }));
}

void scale_inplace(const Tensor& x, float factor) {
  const char* op = "scale_inplace";
  require_activation(x, op, "x");
  dispatch(
      op, x.device(), [&] { kernels::cpu::scale_inplace(x.data<float>(), factor, x.numel()); },
      WW_CUDA([&] { kernels::cuda::scale_inplace(x.raw(), factor, x.numel(), x.dtype()); }));
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
  dispatch(
      op, inp.device(),
      [&] { kernels::cpu::select_token_forward(out.data<float>(), inp.data<float>(), B, T, C, index); },
      WW_CUDA([&] { kernels::cuda::select_token_forward(out.raw(), inp.raw(), B, T, C, index, inp.dtype()); }));
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
  dispatch(
      op, dinp.device(),
      [&] { kernels::cpu::select_token_backward(dinp.data<float>(), dout.data<float>(), B, T, C, index); },
      WW_CUDA([&] { kernels::cuda::select_token_backward(dinp.raw(), dout.raw(), B, T, C, index, dinp.dtype()); }));
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
  dispatch(
      op, inp.device(),
      [&] { kernels::cpu::masked_mean_forward(out.data<float>(), inp.data<float>(), mask.data<int32_t>(), B, T, C); },
      WW_CUDA([&] {
        kernels::cuda::masked_mean_forward(out.raw(), inp.raw(), mask.data<int32_t>(), B, T, C, inp.dtype());
      }));
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
  dispatch(
      op, dinp.device(),
      [&] {
        kernels::cpu::masked_mean_backward(dinp.data<float>(), dout.data<float>(), mask.data<int32_t>(), B, T, C);
      },
      WW_CUDA([&] {
        kernels::cuda::masked_mean_backward(dinp.raw(), dout.raw(), mask.data<int32_t>(), B, T, C, dinp.dtype());
      }));
}

namespace {
bool castable(DType d) { return d == DType::F32 || d == DType::F16 || d == DType::BF16; }
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
  dispatch(
      op, out.device(), [&] { kernels::cpu::cast(out.raw(), out.dtype(), inp.raw(), inp.dtype(), n); },
      WW_CUDA([&] { kernels::cuda::cast(out.raw(), out.dtype(), inp.raw(), inp.dtype(), n); }));
}

void check_device_input_errors() {
#ifdef WW_HAVE_CUDA
  kernels::cuda::raise_input_errors();
#endif
}

}  // namespace ww::ops
