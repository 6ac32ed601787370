#include "wattwise/ops/layernorm.h"

#include <cmath>

#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/layernorm.h"
#include "ops/checks.h"
#include "ops/dispatch.h"
#include "ops/extra_checks.h"

namespace ww::ops {

namespace {

// C from weight [C] (always f32); N rows of inp (an activation) by element count.
int64_t layernorm_rows(const Tensor& inp, const Tensor& weight, const char* op, const char* inp_name = "inp") {
  require_f32_cpu_or_cuda(weight, op, "weight");
  require_activation(inp, op, inp_name);
  require_same_device(inp, weight, op);
  const int64_t C = weight.numel();
  if (C == 0) fail(op, ": argument 'weight' is empty");
  if (inp.numel() % C != 0)
    fail(op, ": argument '", inp_name, "' must have a multiple of ", C, " elements (weight is ", weight.describe(),
         "), got ", inp.describe());
  return inp.numel() / C;
}

// mean, rstd: f32 [N] whatever the activation dtype.
void require_row_stats(const Tensor& t, int64_t N, const Tensor& like, const char* op, const char* arg) {
  require_f32_cpu_or_cuda(t, op, arg);
  require_numel(t, N, op, arg);
  require_same_device(t, like, op);
}

void check_forward_params(const Tensor& mean, const Tensor& rstd, const Tensor& weight, const Tensor& bias,
                          int64_t N, const Tensor& like, float eps, const char* op) {
  require_f32_cpu_or_cuda(bias, op, "bias");
  require_numel(bias, weight.numel(), op, "bias");
  require_same_device(bias, weight, op);
  require_row_stats(mean, N, like, op, "mean");
  require_row_stats(rstd, N, like, op, "rstd");
  if (!(eps >= 0.0f) || !std::isfinite(eps)) fail(op, ": eps must be a finite number >= 0, got ", eps);
}

}  // namespace

void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& weight, const Tensor& bias, float eps) {
  const char* op = "layernorm_forward";
  const int64_t N = layernorm_rows(inp, weight, op), C = weight.numel();
  require_activation_like(out, inp, op, "out", "inp");
  require_numel(out, N * C, op, "out");
  require_same_device(out, inp, op);
  check_forward_params(mean, rstd, weight, bias, N, inp, eps, op);
  if (out.raw() != inp.raw()) require_no_overlap(out, inp, op, "out", "inp");
  dispatch(
      op, out.device(),
      [&] {
        kernels::cpu::layernorm_forward(out.data<float>(), mean.data<float>(), rstd.data<float>(), inp.data<float>(),
                                        weight.data<float>(), bias.data<float>(), N, C, eps);
      },
      WW_CUDA([&] {
        kernels::cuda::layernorm_forward(out.raw(), mean.data<float>(), rstd.data<float>(), inp.raw(), inp.dtype(),
                                         weight.data<float>(), bias.data<float>(), N, C, eps);
      }));
}

void residual_layernorm_forward(const Tensor& out, const Tensor& sum, const Tensor& mean, const Tensor& rstd,
                                const Tensor& a, const Tensor& b, const Tensor& weight, const Tensor& bias,
                                float eps, const ElementDropout& b_dropout) {
  const char* op = "residual_layernorm_forward";
  const int64_t N = layernorm_rows(a, weight, op, "a"), C = weight.numel();
  const bool keep_sum = sum.defined();
  require_activation_like(b, a, op, "b", "a");
  require_activation_like(out, a, op, "out", "a");
  for (const auto& [t, name] : {std::pair{&b, "b"}, std::pair{&out, "out"}}) {
    require_numel(*t, N * C, op, name);
    require_same_device(*t, a, op);
  }
  if (keep_sum) {
    require_activation_like(sum, a, op, "sum", "a");
    require_numel(sum, N * C, op, "sum");
    require_same_device(sum, a, op);
  }
  check_forward_params(mean, rstd, weight, bias, N, a, eps, op);
  // sum may be a or b itself (each element is read before it is written); out is written after
  // the whole row of sum is read, so it must not overlap any of them.
  if (keep_sum) {
    if (sum.raw() != a.raw()) require_no_overlap(sum, a, op, "sum", "a");
    if (sum.raw() != b.raw()) require_no_overlap(sum, b, op, "sum", "b");
    require_no_overlap(out, sum, op, "out", "sum");
  }
  require_no_overlap(out, a, op, "out", "a");
  require_no_overlap(out, b, op, "out", "b");
  const uint64_t* base = checked_dropout_base(b_dropout, a, op);
  dispatch(
      op, out.device(),
      [&] {
        // The CPU runs the two kernels: the same results as residual_forward then layernorm_forward.
        // Without a sum to keep, the sum goes into out and is normalised in place.
        float* sum_data = keep_sum ? sum.data<float>() : out.data<float>();
        if (b_dropout.p > 0.0f)
          kernels::cpu::residual_dropout_forward(sum_data, a.data<float>(), b.data<float>(), N * C, b_dropout.p,
                                                 b_dropout.seed, b_dropout.offset + (base ? *base : 0));
        else
          kernels::cpu::residual_forward(sum_data, a.data<float>(), b.data<float>(), N * C);
        kernels::cpu::layernorm_forward(out.data<float>(), mean.data<float>(), rstd.data<float>(), sum_data,
                                        weight.data<float>(), bias.data<float>(), N, C, eps);
      },
      WW_CUDA([&] {
        kernels::cuda::residual_layernorm_forward(out.raw(), keep_sum ? sum.raw() : nullptr, mean.data<float>(),
                                                  rstd.data<float>(), a.raw(), b.raw(), a.dtype(), weight.data<float>(),
                                                  bias.data<float>(), N, C, eps,
                                                  {b_dropout.p, b_dropout.seed, b_dropout.offset, base});
      }));
}

void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& inp, const Tensor& weight,
                        const Tensor& mean, const Tensor& rstd, bool accumulate,
                        [[maybe_unused]] const Tensor& workspace) {
  const char* op = "layernorm_backward";
  const int64_t N = layernorm_rows(inp, weight, op), C = weight.numel();
  require_activation_like(dout, inp, op, "dout", "inp");
  require_numel(dout, N * C, op, "dout");
  require_same_device(dout, inp, op);
  require_row_stats(mean, N, inp, op, "mean");
  require_row_stats(rstd, N, inp, op, "rstd");
  if (dinp.defined()) {
    require_activation_like(dinp, inp, op, "dinp", "inp");
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
  float* dweight_data = dweight.defined() ? dweight.data<float>() : nullptr;
  float* dbias_data = dbias.defined() ? dbias.data<float>() : nullptr;
  dispatch(
      op, dout.device(),
      [&] {
        kernels::cpu::layernorm_backward(dinp.defined() ? dinp.data<float>() : nullptr, dweight_data, dbias_data,
                                         dout.data<float>(), inp.data<float>(), weight.data<float>(),
                                         mean.data<float>(), rstd.data<float>(), N, C, accumulate);
      },
      WW_CUDA([&] {
        void* scratch = nullptr;
        if (workspace.defined()) {
          require_same_device(workspace, inp, op);
          if (int64_t(workspace.nbytes()) < layernorm_backward_workspace_bytes(N, C))
            fail(op, ": workspace ", workspace.describe(), " is smaller than the ",
                 layernorm_backward_workspace_bytes(N, C), " bytes ", N, " rows of ", C, " need");
          scratch = workspace.raw();
        }
        kernels::cuda::layernorm_backward(dinp.defined() ? dinp.raw() : nullptr, dweight_data, dbias_data,
                                          dout.raw(), inp.raw(), inp.dtype(), weight.data<float>(),
                                          mean.data<float>(), rstd.data<float>(), N, C, accumulate,
                                          static_cast<float*>(scratch));
      }));
}

int64_t layernorm_backward_workspace_bytes(int64_t N, int64_t C) {
  // Mirrors the CUDA kernel: [2, chunks of 32 rows, C] floats.
  const int64_t chunks = (N + 31) / 32;
  return 2 * chunks * C * int64_t(sizeof(float));
}

}  // namespace ww::ops
