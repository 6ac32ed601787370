#include "wattwise/ops/optimizer.h"

#include <cmath>

#include "kernels/optimizer.h"
#include "kernels/optimizer_math.h"
#include "ops/dispatch.h"

namespace ww::ops {
namespace {

void check_buffer(const Tensor& t, const Tensor& params, const char* op, const char* what) {
  if (!t.defined()) fail(op, ": ", what, " is missing");
  if (t.dtype() != DType::F32) fail(op, ": ", what, " must be f32, got ", t.describe());
  if (t.numel() != params.numel())
    fail(op, ": ", what, " has ", t.numel(), " elements, params has ", params.numel());
  if (!(t.device() == params.device()))
    fail(op, ": ", what, " is on ", t.device().str(), ", params on ", params.device().str());
}

// Returns the number of ranges, or −1 for "every element decays" (undefined tensor).
int64_t check_decay_ranges(const Tensor& ranges, const Tensor& params, const char* op) {
  if (!ranges.defined()) return -1;
  if (ranges.dtype() != DType::I64 || ranges.dim() != 2 || ranges.size(1) != 2)
    fail(op, ": decay_ranges must be i64 [R, 2], got ", ranges.describe());
  if (!(ranges.device() == params.device()))
    fail(op, ": decay_ranges is on ", ranges.device().str(), ", params on ", params.device().str());
  int64_t count = ranges.size(0);
  if (ranges.device().is_cpu()) {
    const int64_t* r = ranges.data<int64_t>();
    int64_t previous_end = 0;
    for (int64_t i = 0; i < count; ++i) {
      int64_t begin = r[2 * i], end = r[2 * i + 1];
      if (begin < previous_end || end < begin || end > params.numel())
        fail(op, ": decay range ", i, " [", begin, ", ", end, ") is out of order or past the ",
             params.numel(), " parameters");
      previous_end = end;
    }
  }
  return count;
}

void check_hyper(bool ok, const char* op, const char* name, double value, const char* expected) {
  if (!ok) fail(op, ": ", name, " = ", value, " is invalid; expected ", expected);
}

[[noreturn]] void no_kernel(const char* op, const Tensor& params) {
  fail(op, ": no kernel for device ", params.device().str(), " in this build");
}

}  // namespace

namespace {

// Checks the hyperparameters and computes the per-step scalars as torch does (Python floats, i.e.
// double, rounded to float where a kernel uses them).
kernels::AdamScalars adam_scalars(const AdamStepArgs& a, const char* op) {
  check_hyper(std::isfinite(a.lr) && a.lr >= 0, op, "lr", a.lr, "a finite value >= 0");
  check_hyper(a.beta1 >= 0 && a.beta1 < 1, op, "beta1", a.beta1, "0 <= beta1 < 1");
  check_hyper(a.beta2 >= 0 && a.beta2 < 1, op, "beta2", a.beta2, "0 <= beta2 < 1");
  check_hyper(std::isfinite(a.eps) && a.eps >= 0, op, "eps", a.eps, "a finite value >= 0");
  check_hyper(std::isfinite(a.weight_decay) && a.weight_decay >= 0, op, "weight_decay",
              a.weight_decay, "a finite value >= 0");
  check_hyper(a.step >= 1, op, "step", double(a.step), "1 or more");
  check_hyper(std::isfinite(a.grad_scale), op, "grad_scale", a.grad_scale, "a finite value");
  double t = double(a.step);
  double bias_correction1 = 1.0 - std::pow(a.beta1, t);
  double bias_correction2 = 1.0 - std::pow(a.beta2, t);
  kernels::AdamScalars s{};
  s.grad_scale = a.grad_scale;
  s.decay_enabled = a.weight_decay != 0.0;
  s.decoupled = a.decoupled;
  s.decay_factor = float(1.0 - a.lr * a.weight_decay);
  s.weight_decay = float(a.weight_decay);
  s.one_minus_beta1 = float(1.0 - a.beta1);
  s.beta2 = float(a.beta2);
  s.one_minus_beta2 = float(1.0 - a.beta2);
  s.bias_correction2_sqrt = float(std::sqrt(bias_correction2));
  s.eps = float(a.eps);
  s.neg_step_size = float(-(a.lr / bias_correction1));
  return s;
}

kernels::SgdScalars sgd_scalars(const SgdStepArgs& a, const char* op) {
  check_hyper(std::isfinite(a.lr) && a.lr >= 0, op, "lr", a.lr, "a finite value >= 0");
  check_hyper(std::isfinite(a.momentum) && a.momentum >= 0, op, "momentum", a.momentum,
              "a finite value >= 0");
  check_hyper(std::isfinite(a.dampening), op, "dampening", a.dampening, "a finite value");
  check_hyper(std::isfinite(a.weight_decay) && a.weight_decay >= 0, op, "weight_decay",
              a.weight_decay, "a finite value >= 0");
  if (a.nesterov && (a.momentum <= 0 || a.dampening != 0))
    fail(op, ": nesterov needs momentum > 0 and dampening = 0 (got momentum ", a.momentum,
         ", dampening ", a.dampening, ")");
  check_hyper(a.step >= 1, op, "step", double(a.step), "1 or more");
  check_hyper(std::isfinite(a.grad_scale), op, "grad_scale", a.grad_scale, "a finite value");
  kernels::SgdScalars s{};
  s.grad_scale = a.grad_scale;
  s.decay_enabled = a.weight_decay != 0.0;
  s.weight_decay = float(a.weight_decay);
  s.use_momentum = a.momentum != 0.0;
  s.first_step = a.step == 1;
  s.momentum = float(a.momentum);
  s.one_minus_dampening = float(1.0 - a.dampening);
  s.nesterov = a.nesterov;
  s.neg_lr = float(-a.lr);
  return s;
}

}  // namespace

void adamw_step(const Tensor& params, const Tensor& grads, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const Tensor& decay_ranges, const AdamStepArgs& a) {
  const char* op = "adamw_step";
  check_buffer(params, params, op, "params");
  check_buffer(grads, params, op, "grads");
  check_buffer(exp_avg, params, op, "exp_avg");
  check_buffer(exp_avg_sq, params, op, "exp_avg_sq");
  int64_t num_ranges = check_decay_ranges(decay_ranges, params, op);
  const kernels::AdamScalars s = adam_scalars(a, op);

  const int64_t* ranges = num_ranges < 0 ? nullptr : decay_ranges.data<int64_t>();
  dispatch(
      params.device(),
      [&] {
        kernels::cpu::adamw_step(params.data<float>(), grads.data<float>(), exp_avg.data<float>(),
                                 exp_avg_sq.data<float>(), params.numel(), ranges, num_ranges, s);
      },
      WW_CUDA([&] {
        kernels::cuda::adamw_step(params.data<float>(), grads.data<float>(), exp_avg.data<float>(),
                                  exp_avg_sq.data<float>(), params.numel(), ranges, num_ranges, s);
      }),
      [&] { no_kernel(op, params); });
}

void sgd_step(const Tensor& params, const Tensor& grads, const Tensor& momentum_buffer,
              const Tensor& decay_ranges, const SgdStepArgs& a) {
  const char* op = "sgd_step";
  check_buffer(params, params, op, "params");
  check_buffer(grads, params, op, "grads");
  const bool use_momentum = a.momentum != 0.0;
  if (use_momentum) check_buffer(momentum_buffer, params, op, "momentum_buffer");
  int64_t num_ranges = check_decay_ranges(decay_ranges, params, op);
  const kernels::SgdScalars s = sgd_scalars(a, op);

  const int64_t* ranges = num_ranges < 0 ? nullptr : decay_ranges.data<int64_t>();
  float* momentum = use_momentum ? momentum_buffer.data<float>() : nullptr;
  dispatch(
      params.device(),
      [&] {
        kernels::cpu::sgd_step(params.data<float>(), grads.data<float>(), momentum, params.numel(), ranges,
                               num_ranges, s);
      },
      WW_CUDA([&] {
        kernels::cuda::sgd_step(params.data<float>(), grads.data<float>(), momentum, params.numel(), ranges,
                                num_ranges, s);
      }),
      [&] { no_kernel(op, params); });
}

float global_grad_norm(const Tensor& grads) {
  if (!grads.defined()) fail("global_grad_norm: grads is missing");
  if (grads.dtype() != DType::F32) fail("global_grad_norm: grads must be f32, got ", grads.describe());
  const double sum_of_squares = dispatch(
      grads.device(), [&] { return kernels::cpu::sum_of_squares(grads.data<float>(), grads.numel()); },
      WW_CUDA([&] { return kernels::cuda::sum_of_squares(grads.data<float>(), grads.numel()); }),
      [&] { no_kernel("global_grad_norm", grads); });
  return float(std::sqrt(sum_of_squares));
}

DeviceStepBuffers make_device_step_buffers(const Tensor& params) {
  if (!params.device().is_cuda()) fail("device-decided optimizer steps need a cuda device, got ", params.describe());
  const auto cpu_has_none = [&]() -> DeviceStepBuffers { no_kernel("make_device_step_buffers", params); };
  return dispatch(
      params.device(), cpu_has_none,
      WW_CUDA([&] {
        DeviceStepBuffers b;
        b.control = Tensor::zeros({int64_t(sizeof(kernels::StepControl))}, DType::U8, params.device());
        b.partials = Tensor::zeros({int64_t(kernels::cuda::norm_partials_count(params.numel()))}, DType::I64,
                                   params.device());
        return b;
      }),
      cpu_has_none);
}

namespace {
void upload_control(const DeviceStepBuffers& b, const kernels::StepControl& c, HostToDevice& uploader) {
  if (!b.control.defined() || b.control.nbytes() != sizeof(c)) fail("device step: control buffer not made by make_device_step_buffers");
  uploader.begin();
  uploader.upload(b.control, Tensor::view(const_cast<kernels::StepControl*>(&c), {int64_t(sizeof(c))}, DType::U8));
  uploader.end();
}

kernels::StepControl control_for(float grad_scale, double max_grad_norm, const char* op) {
  check_hyper(std::isfinite(grad_scale) && grad_scale > 0, op, "grad_scale", grad_scale, "a finite value > 0");
  check_hyper(std::isfinite(max_grad_norm) && max_grad_norm >= 0, op, "max_grad_norm", max_grad_norm,
              "a finite value >= 0");
  kernels::StepControl c{};
  c.base_grad_scale = grad_scale;
  c.max_grad_norm = float(max_grad_norm);
  return c;
}
}  // namespace

void prepare_adamw_on_device(const DeviceStepBuffers& buffers, const AdamStepArgs& args, double max_grad_norm,
                             HostToDevice& uploader) {
  const char* op = "prepare_adamw_on_device";
  kernels::StepControl c = control_for(args.grad_scale, max_grad_norm, op);
  c.adam = adam_scalars(args, op);
  upload_control(buffers, c, uploader);
}

void prepare_sgd_on_device(const DeviceStepBuffers& buffers, const SgdStepArgs& args, double max_grad_norm,
                           HostToDevice& uploader) {
  const char* op = "prepare_sgd_on_device";
  kernels::StepControl c = control_for(args.grad_scale, max_grad_norm, op);
  c.sgd = sgd_scalars(args, op);
  upload_control(buffers, c, uploader);
}

void adamw_step_on_device(const Tensor& params, const Tensor& grads, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                          const Tensor& decay_ranges, [[maybe_unused]] const DeviceStepBuffers& buffers,
                          [[maybe_unused]] double beta1, [[maybe_unused]] bool norm_summed) {
  const char* op = "adamw_step_on_device";
  check_buffer(params, params, op, "params");
  check_buffer(grads, params, op, "grads");
  check_buffer(exp_avg, params, op, "exp_avg");
  check_buffer(exp_avg_sq, params, op, "exp_avg_sq");
  [[maybe_unused]] const int64_t num_ranges = check_decay_ranges(decay_ranges, params, op);
  const auto no_device_step = [&] { no_kernel(op, params); };  // the CPU steps decide on the host
  dispatch(
      params.device(), no_device_step,
      WW_CUDA([&] {
        kernels::cuda::adamw_step_controlled(
            params.data<float>(), grads.data<float>(), exp_avg.data<float>(), exp_avg_sq.data<float>(),
            params.numel(), num_ranges < 0 ? nullptr : decay_ranges.data<int64_t>(), num_ranges,
            static_cast<kernels::StepControl*>(buffers.control.raw()), static_cast<double*>(buffers.partials.raw()),
            kernels::lerp_weight_is_small(float(1.0 - beta1)), norm_summed);
      }),
      no_device_step);
}

void sgd_step_on_device(const Tensor& params, const Tensor& grads, const Tensor& momentum_buffer,
                        const Tensor& decay_ranges, [[maybe_unused]] const DeviceStepBuffers& buffers,
                        [[maybe_unused]] bool norm_summed) {
  const char* op = "sgd_step_on_device";
  check_buffer(params, params, op, "params");
  check_buffer(grads, params, op, "grads");
  if (momentum_buffer.defined()) check_buffer(momentum_buffer, params, op, "momentum_buffer");
  [[maybe_unused]] const int64_t num_ranges = check_decay_ranges(decay_ranges, params, op);
  const auto no_device_step = [&] { no_kernel(op, params); };  // the CPU steps decide on the host
  dispatch(
      params.device(), no_device_step,
      WW_CUDA([&] {
        kernels::cuda::sgd_step_controlled(
            params.data<float>(), grads.data<float>(),
            momentum_buffer.defined() ? momentum_buffer.data<float>() : nullptr, params.numel(),
            num_ranges < 0 ? nullptr : decay_ranges.data<int64_t>(), num_ranges,
            static_cast<kernels::StepControl*>(buffers.control.raw()), static_cast<double*>(buffers.partials.raw()),
            norm_summed);
      }),
      no_device_step);
}

void sum_of_squares_on_device(const DeviceStepBuffers& buffers, const Tensor& grads) {
  const char* op = "sum_of_squares_on_device";
  if (!buffers.partials.defined()) fail(op, ": buffers not made by make_device_step_buffers");
  if (grads.dtype() != DType::F32 || grads.device() != buffers.partials.device())
    fail(op, ": grads must be f32 on ", buffers.partials.device().str(), ", got ", grads.describe());
  const auto no_device_step = [&] { no_kernel(op, grads); };
  dispatch(
      grads.device(), no_device_step,
      WW_CUDA([&] {
        WW_CHECK(int64_t(kernels::cuda::norm_partials_count(grads.numel())) <= buffers.partials.numel(),
                 op, ": ", grads.numel(), " gradients need more partials than the buffers hold");
        kernels::cuda::sum_of_squares_into(static_cast<double*>(buffers.partials.raw()), grads.data<float>(),
                                           grads.numel());
      }),
      no_device_step);
}

double* step_sum_of_squares(const DeviceStepBuffers& buffers) {
  WW_CHECK(buffers.partials.defined(), "step_sum_of_squares: buffers not made");
  return static_cast<double*>(buffers.partials.raw());
}

DeviceStepStatus read_step_status(const DeviceStepBuffers& buffers) {
  kernels::StepControl c{};
  Tensor::view(&c, {int64_t(sizeof(c))}, DType::U8).copy_from(buffers.control);
  return {c.grad_norm, c.clip_coef, c.applied != 0};
}

}  // namespace ww::ops
