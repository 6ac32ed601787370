#include "wattwise/ops/dropout.h"

#include "kernels/cpu/dropout.h"
#ifdef WW_HAVE_CUDA
#include "kernels/cuda/elementwise.h"
#endif
#include "ops/checks.h"
#include "ops/extra_checks.h"

namespace ww::ops {

namespace {

void check_dropout(const Tensor& out, const Tensor& inp, float p, const char* op, const char* out_name,
                   const char* inp_name) {
  require_activation(inp, op, inp_name);
  require_activation_like(out, inp, op, out_name, inp_name);
  require_numel(out, inp.numel(), op, out_name);
  require_same_device(out, inp, op);
  if (!(p >= 0.0f && p < 1.0f)) fail(op, ": dropout probability p must be in [0, 1), got ", p);
  if (out.raw() != inp.raw()) require_no_overlap(out, inp, op, out_name, inp_name);
}

}  // namespace

void dropout_forward(const Tensor& out, const Tensor& inp, float p, uint64_t seed, uint64_t offset) {
  const char* op = "dropout_forward";
  check_dropout(out, inp, p, op, "out", "inp");
  if (out.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::dropout_forward(out.raw(), inp.raw(), inp.numel(), inp.dtype(), p, seed, offset);
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::dropout_forward(out.data<float>(), inp.data<float>(), inp.numel(), p, seed, offset);
}

void dropout_backward(const Tensor& dinp, const Tensor& dout, float p, uint64_t seed, uint64_t offset) {
  const char* op = "dropout_backward";
  check_dropout(dinp, dout, p, op, "dinp", "dout");
  if (dout.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::dropout_backward(dinp.raw(), dout.raw(), dout.numel(), dout.dtype(), p, seed, offset);
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::dropout_backward(dinp.data<float>(), dout.data<float>(), dout.numel(), p, seed, offset);
}

}  // namespace ww::ops
