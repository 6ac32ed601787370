#include "wattwise/ops/softmax.h"

#include "kernels/softmax.h"
#include "ops/checks.h"
#include "ops/dispatch.h"
#include "ops/extra_checks.h"

namespace ww::ops {

void softmax_forward(const Tensor& out, const Tensor& inp) {
  const char* op = "softmax_forward";
  require_activation(inp, op, "inp");
  require_activation_like(out, inp, op, "out", "inp");
  if (inp.dim() < 1) fail(op, ": inp must have at least one dimension, got ", inp.describe());
  require_numel(out, inp.numel(), op, "out");
  require_same_device(out, inp, op);
  const int64_t cols = inp.size(-1);
  if (inp.numel() == 0) return;

  dispatch(
      op, inp.device(),
      [&] { kernels::cpu::softmax_forward(out.data<float>(), inp.data<float>(), inp.numel() / cols, cols); },
      WW_CUDA([&] { kernels::cuda::softmax_forward(out.raw(), inp.raw(), inp.numel() / cols, cols, inp.dtype()); }));
}

void softmax_backward(const Tensor& dinp, const Tensor& out, const Tensor& dout) {
  const char* op = "softmax_backward";
  require_activation(out, op, "out");
  require_activation_like(dout, out, op, "dout", "out");
  require_activation_like(dinp, out, op, "dinp", "out");
  if (out.dim() < 1) fail(op, ": out must have at least one dimension, got ", out.describe());
  require_numel(dout, out.numel(), op, "dout");
  require_numel(dinp, out.numel(), op, "dinp");
  require_same_device(dout, out, op);
  require_same_device(dinp, out, op);
  const int64_t cols = out.size(-1);
  if (out.numel() == 0) return;

  dispatch(
      op, out.device(),
      [&] {
        kernels::cpu::softmax_backward(dinp.data<float>(), out.data<float>(), dout.data<float>(), out.numel() / cols,
                                       cols);
      },
      WW_CUDA([&] {
        kernels::cuda::softmax_backward(dinp.raw(), out.raw(), dout.raw(), out.numel() / cols, cols, out.dtype());
      }));
}

}  // namespace ww::ops
