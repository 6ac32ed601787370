#include "wattwise/ops/elementwise.h"

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
  require_f32_cpu_or_cuda(t, op, arg);
  require_dim(t, 3, op, arg);
}

}  // namespace

void residual_forward(const Tensor& out, const Tensor& a, const Tensor& b) {
  const char* op = "residual_forward";
  require_f32_cpu_or_cuda(out, op, "out");
  require_f32_cpu_or_cuda(a, op, "a");
  require_f32_cpu_or_cuda(b, op, "b");
  require_numel(b, a.numel(), op, "b");
  require_numel(out, a.numel(), op, "out");
  require_same_device(a, b, op);
  require_same_device(out, a, op);
  if (out.raw() != a.raw()) require_no_overlap(out, a, op, "out", "a");
  if (out.raw() != b.raw()) require_no_overlap(out, b, op, "out", "b");
  if (out.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::residual_forward(out.data<float>(), a.data<float>(), b.data<float>(), a.numel());
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::residual_forward(out.data<float>(), a.data<float>(), b.data<float>(), a.numel());
}

void add_inplace(const Tensor& acc, const Tensor& x) {
  const char* op = "add_inplace";
  require_f32_cpu_or_cuda(acc, op, "acc");
  require_f32_cpu_or_cuda(x, op, "x");
  require_numel(x, acc.numel(), op, "x");
  require_same_device(acc, x, op);
  if (acc.raw() != x.raw()) require_no_overlap(acc, x, op, "acc", "x");
  if (acc.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::add_inplace(acc.data<float>(), x.data<float>(), acc.numel());
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::add_inplace(acc.data<float>(), x.data<float>(), acc.numel());
}

void scale_inplace(const Tensor& x, float factor) {
  const char* op = "scale_inplace";
  require_f32_cpu_or_cuda(x, op, "x");
  if (x.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::scale_inplace(x.data<float>(), factor, x.numel());
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
  require_f32_cpu_or_cuda(out, op, "out");
  require_numel(out, B * C, op, "out");
  require_same_device(out, inp, op);
  require_no_overlap(out, inp, op, "out", "inp");
  if (inp.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::select_token_forward(out.data<float>(), inp.data<float>(), B, T, C, index);
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
  require_f32_cpu_or_cuda(dout, op, "dout");
  require_numel(dout, B * C, op, "dout");
  require_same_device(dout, dinp, op);
  require_no_overlap(dinp, dout, op, "dinp", "dout");
  if (dinp.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::select_token_backward(dinp.data<float>(), dout.data<float>(), B, T, C, index);
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
  require_f32_cpu_or_cuda(out, op, "out");
  require_numel(out, B * C, op, "out");
  require_same_device(out, inp, op);
  require_no_overlap(out, inp, op, "out", "inp");
  if (inp.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::masked_mean_forward(out.data<float>(), inp.data<float>(), mask.data<int32_t>(), B, T, C);
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
  require_f32_cpu_or_cuda(dout, op, "dout");
  require_numel(dout, B * C, op, "dout");
  require_same_device(dout, dinp, op);
  require_no_overlap(dinp, dout, op, "dinp", "dout");
  if (dinp.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::masked_mean_backward(dinp.data<float>(), dout.data<float>(), mask.data<int32_t>(), B, T, C);
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::masked_mean_backward(dinp.data<float>(), dout.data<float>(), mask.data<int32_t>(), B, T, C);
}

void check_device_input_errors() {
#ifdef WW_HAVE_CUDA
  kernels::cuda::raise_input_errors();
#endif
}

}  // namespace ww::ops
