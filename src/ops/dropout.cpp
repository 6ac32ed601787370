#include "wattwise/ops/dropout.h"

#include "kernels/dropout.h"
#include "ops/checks.h"
#include "ops/dispatch.h"
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

const uint64_t* dropout_offset_base(const Tensor& base, const Tensor& like, const char* op) {
  if (!base.defined()) return nullptr;
  if (base.dtype() != DType::I64 || base.numel() != 1)
    fail(op, ": offset_base must be an i64 tensor of one element, got ", base.describe());
  if (!(base.device() == like.device()))
    fail(op, ": offset_base is on ", base.device().str(), " but the data on ", like.device().str());
  return reinterpret_cast<const uint64_t*>(base.raw());
}

const uint64_t* checked_dropout_base(const ElementDropout& dropout, const Tensor& like, const char* op) {
  if (!(dropout.p >= 0.0f && dropout.p < 1.0f))
    fail(op, ": dropout probability p must be in [0, 1), got ", dropout.p);
  return dropout_offset_base(dropout.offset_base, like, op);
}

void dropout_forward(const Tensor& out, const Tensor& inp, float p, uint64_t seed, uint64_t offset,
                     const Tensor& offset_base) {
  const char* op = "dropout_forward";
  check_dropout(out, inp, p, op, "out", "inp");
  const uint64_t* base = dropout_offset_base(offset_base, inp, op);
  dispatch(
      op, out.device(),
      [&] {
        kernels::cpu::dropout_forward(out.data<float>(), inp.data<float>(), inp.numel(), p, seed,
                                      offset + (base ? *base : 0));
      },
      WW_CUDA([&] {
        kernels::cuda::dropout_forward(out.raw(), inp.raw(), inp.numel(), inp.dtype(), p, seed, offset, base);
      }));
}

void dropout_backward(const Tensor& dinp, const Tensor& dout, float p, uint64_t seed, uint64_t offset,
                      const Tensor& offset_base) {
  const char* op = "dropout_backward";
  check_dropout(dinp, dout, p, op, "dinp", "dout");
  const uint64_t* base = dropout_offset_base(offset_base, dout, op);
  dispatch(
      op, dout.device(),
      [&] {
        kernels::cpu::dropout_backward(dinp.data<float>(), dout.data<float>(), dout.numel(), p, seed,
                                       offset + (base ? *base : 0));
      },
      WW_CUDA([&] {
        kernels::cuda::dropout_backward(dinp.raw(), dout.raw(), dout.numel(), dout.dtype(), p, seed, offset, base);
      }));
}

}  // namespace ww::ops
