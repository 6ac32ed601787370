#include "wattwise/ops/layernorm.h"

#include <cmath>

#include "kernels/cpu/layernorm.h"
#ifdef WW_HAVE_CUDA
#include "kernels/cuda/elementwise.h"
#endif
#include "ops/checks.h"
#include "ops/extra_checks.h"

namespace ww::ops {

namespace {

// C from weight [C]; N rows of inp by element count.
int64_t layernorm_rows(const Tensor& inp, const Tensor& weight, const char* op) {
  require_f32_cpu_or_cuda(weight, op, "weight");
  require_f32_cpu_or_cuda(inp, op, "inp");
  require_same_device(inp, weight, op);
  const int64_t C = weight.numel();
  if (C == 0) fail(op, ": argument 'weight' is empty");
  if (inp.numel() % C != 0)
    fail(op, ": argument 'inp' must have a multiple of ", C, " elements (weight is ", weight.describe(),
         "), got ", inp.describe());
  return inp.numel() / C;
}

void require_row_stats(const Tensor& t, int64_t N, const Tensor& like, const char* op, const char* arg) {
  require_f32_cpu_or_cuda(t, op, arg);
  require_numel(t, N, op, arg);
  require_same_device(t, like, op);
}

}  // namespace

void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& weight, const Tensor& bias, float eps) {
  const char* op = "layernorm_forward";
  const int64_t N = layernorm_rows(inp, weight, op), C = weight.numel();
  require_f32_cpu_or_cuda(bias, op, "bias");
  require_numel(bias, C, op, "bias");
  require_same_device(bias, weight, op);
  require_f32_cpu_or_cuda(out, op, "out");
  require_numel(out, N * C, op, "out");
  require_same_device(out, inp, op);
  require_row_stats(mean, N, inp, op, "mean");
  require_row_stats(rstd, N, inp, op, "rstd");
  if (!(eps >= 0.0f) || !std::isfinite(eps)) fail(op, ": eps must be a finite number >= 0, got ", eps);
  if (out.raw() != inp.raw()) require_no_overlap(out, inp, op, "out", "inp");
  if (out.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::layernorm_forward(out.data<float>(), mean.data<float>(), rstd.data<float>(), inp.data<float>(),
                                     weight.data<float>(), bias.data<float>(), N, C, eps);
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::layernorm_forward(out.data<float>(), mean.data<float>(), rstd.data<float>(), inp.data<float>(),
                                  weight.data<float>(), bias.data<float>(), N, C, eps);
}

void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& inp, const Tensor& weight,
                        const Tensor& mean, const Tensor& rstd) {
  const char* op = "layernorm_backward";
  const int64_t N = layernorm_rows(inp, weight, op), C = weight.numel();
  require_f32_cpu_or_cuda(dout, op, "dout");
  require_numel(dout, N * C, op, "dout");
  require_same_device(dout, inp, op);
  require_row_stats(mean, N, inp, op, "mean");
  require_row_stats(rstd, N, inp, op, "rstd");
  if (dinp.defined()) {
    require_f32_cpu_or_cuda(dinp, op, "dinp");
    require_numel(dinp, N * C, op, "dinp");
    require_same_device(dinp, inp, op);
    // dinp is written row by row while later rows of dout and inp are still to be read, and the
    // parameter gradients read dout and inp after all of dinp is written.
    require_no_overlap(dinp, dout, op, "dinp", "dout");
    require_no_overlap(dinp, inp, op, "dinp", "inp");
  }
  for (const auto& [grad, name] : {std::pair{&dweight, "dweight"}, std::pair{&dbias, "dbias"}}) {
    if (!grad->defined()) continue;
    require_f32_cpu_or_cuda(*grad, op, name);
    require_numel(*grad, C, op, name);
    require_same_device(*grad, inp, op);
  }
  float* dinp_data = dinp.defined() ? dinp.data<float>() : nullptr;
  float* dweight_data = dweight.defined() ? dweight.data<float>() : nullptr;
  float* dbias_data = dbias.defined() ? dbias.data<float>() : nullptr;
  if (dout.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    kernels::cuda::layernorm_backward(dinp_data, dweight_data, dbias_data, dout.data<float>(), inp.data<float>(),
                                      weight.data<float>(), mean.data<float>(), rstd.data<float>(), N, C);
    return;
#else
    cuda_not_implemented(op);
#endif
  }
  kernels::cpu::layernorm_backward(dinp_data, dweight_data, dbias_data, dout.data<float>(), inp.data<float>(),
                                   weight.data<float>(), mean.data<float>(), rstd.data<float>(), N, C);
}

}  // namespace ww::ops
