#include "wattwise/ops/activation.h"

#include "kernels/activation.h"
#include "ops/checks.h"
#include "ops/dispatch.h"
#include "ops/extra_checks.h"

namespace ww::ops {

namespace {

using UnaryKernel = void (*)(float*, const float*, int64_t);
using BinaryKernel = void (*)(float*, const float*, const float*, int64_t);

// out = f(inp); same element count, dtype and device; out may alias inp exactly (elementwise).
// cuda_kernel: the CUDA kernel of the op (void*, const void*, n, dtype), or NoKernel.
template <typename CudaKernel>
void run_forward(UnaryKernel kernel, [[maybe_unused]] CudaKernel cuda_kernel, const Tensor& out, const Tensor& inp,
                 const char* op) {
  require_activation(inp, op, "inp");
  require_activation_like(out, inp, op, "out", "inp");
  require_numel(out, inp.numel(), op, "out");
  require_same_device(out, inp, op);
  if (out.raw() != inp.raw()) require_no_overlap(out, inp, op, "out", "inp");
  dispatch(
      op, out.device(), [&] { kernel(out.data<float>(), inp.data<float>(), inp.numel()); },
      WW_CUDA([&] { cuda_kernel(out.raw(), inp.raw(), inp.numel(), inp.dtype()); }));
}

// dinp = f'(saved) · dout; dinp may alias dout (or saved) exactly.
template <typename CudaKernel>
void run_backward(BinaryKernel kernel, [[maybe_unused]] CudaKernel cuda_kernel, const Tensor& dinp,
                  const Tensor& saved, const Tensor& dout, const char* op, const char* saved_name) {
  require_activation(dout, op, "dout");
  require_activation_like(dinp, dout, op, "dinp", "dout");
  require_activation_like(saved, dout, op, saved_name, "dout");
  require_numel(saved, dout.numel(), op, saved_name);
  require_numel(dinp, dout.numel(), op, "dinp");
  require_same_device(dinp, dout, op);
  require_same_device(saved, dout, op);
  if (dinp.raw() != dout.raw()) require_no_overlap(dinp, dout, op, "dinp", "dout");
  if (dinp.raw() != saved.raw()) require_no_overlap(dinp, saved, op, "dinp", saved_name);
  dispatch(
      op, dout.device(), [&] { kernel(dinp.data<float>(), saved.data<float>(), dout.data<float>(), dout.numel()); },
      WW_CUDA([&] { cuda_kernel(dinp.raw(), saved.raw(), dout.raw(), dout.numel(), dout.dtype()); }));
}

}  // namespace

void gelu_forward(const Tensor& out, const Tensor& inp) {
  run_forward(kernels::cpu::gelu_forward, WW_CUDA(kernels::cuda::gelu_forward), out, inp, "gelu_forward");
}
void gelu_backward(const Tensor& dinp, const Tensor& inp, const Tensor& dout) {
  run_backward(kernels::cpu::gelu_backward, WW_CUDA(kernels::cuda::gelu_backward), dinp, inp, dout, "gelu_backward",
               "inp");
}
void gelu_tanh_forward(const Tensor& out, const Tensor& inp) {
  run_forward(kernels::cpu::gelu_tanh_forward, WW_CUDA(kernels::cuda::gelu_tanh_forward), out, inp,
              "gelu_tanh_forward");
}
void gelu_tanh_backward(const Tensor& dinp, const Tensor& inp, const Tensor& dout) {
  run_backward(kernels::cpu::gelu_tanh_backward, WW_CUDA(kernels::cuda::gelu_tanh_backward), dinp, inp, dout,
               "gelu_tanh_backward", "inp");
}
void relu_forward(const Tensor& out, const Tensor& inp) {
  run_forward(kernels::cpu::relu_forward, WW_CUDA(kernels::cuda::relu_forward), out, inp, "relu_forward");
}
void relu_backward(const Tensor& dinp, const Tensor& inp, const Tensor& dout) {
  run_backward(kernels::cpu::relu_backward, WW_CUDA(kernels::cuda::relu_backward), dinp, inp, dout, "relu_backward",
               "inp");
}
void tanh_forward(const Tensor& out, const Tensor& inp) {
  run_forward(kernels::cpu::tanh_forward, WW_CUDA(kernels::cuda::tanh_forward), out, inp, "tanh_forward");
}
void tanh_backward(const Tensor& dinp, const Tensor& out, const Tensor& dout) {
  run_backward(kernels::cpu::tanh_backward, WW_CUDA(kernels::cuda::tanh_backward), dinp, out, dout, "tanh_backward",
               "out");
}

}  // namespace ww::ops
