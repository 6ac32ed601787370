#pragma once
// Optimizer updates over the flat parameter and gradient buffers (models::ParameterStore's
// flat_values() / flat_grads()): one pass over every parameter of the model, which the CUDA
// backend runs as one fused kernel. The update rules are torch.optim's single-tensor code written
// out with the same float operations in the same order (scalars such as bias corrections computed
// in double on the host, as Python does, then rounded to float once), so a step here matches a
// step there to float rounding.
//
// Gradients are read, never written: the caller zeroes them for the next step.
//
// Weight-decay selection (`decay_ranges`): an i64 tensor [R, 2] of half-open element ranges
// [begin, end) into the flat buffers, sorted and non-overlapping, on the same device as the
// parameters. One row per run of consecutive decayed parameters keeps R small (about two per
// transformer layer) instead of a byte per element, and a GPU block finds the ranges that cover
// its chunk by binary search. An undefined Tensor means every element decays; a [0, 2] tensor
// means none does. train::decay_ranges(store) builds it from the parameters' weight_decay flags.
#include <cstdint>

#include "wattwise/core/tensor.h"
#include "wattwise/core/upload.h"

namespace ww::ops {

struct AdamStepArgs {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
  int64_t step = 1;        // 1 for the first update; bias correction uses it
  bool decoupled = true;   // true: AdamW (param *= 1 − lr·wd); false: Adam (grad += wd·param,
                           // torch.optim.Adam's weight_decay)
  float grad_scale = 1.0f; // gradients are multiplied by this first: clipping, loss-scale
                           // unscaling and 1/accumulation steps fold in here
};

// m = lerp(m, g, 1−β1); v = β2·v + (1−β2)·g²; p −= lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε).
// params, exp_avg, exp_avg_sq updated in place; all f32 with the same element count.
void adamw_step(const Tensor& params, const Tensor& grads, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const Tensor& decay_ranges, const AdamStepArgs& args);

struct SgdStepArgs {
  double lr = 1e-3;
  double momentum = 0.0, dampening = 0.0;
  bool nesterov = false;   // needs momentum > 0 and dampening == 0, as torch
  double weight_decay = 0.0;
  int64_t step = 1;        // on step 1 the momentum buffer is set to the gradient (torch's first step)
  float grad_scale = 1.0f;
};

// Exactly torch.optim.SGD: g += wd·p; buf = step 1 ? g : momentum·buf + (1−dampening)·g;
// g = nesterov ? g + momentum·buf : buf; p −= lr·g. momentum_buffer may be undefined when
// momentum == 0.
void sgd_step(const Tensor& params, const Tensor& grads, const Tensor& momentum_buffer,
              const Tensor& decay_ranges, const SgdStepArgs& args);

// L2 norm over every element of `grads` (f32), accumulated in double in a fixed order (the same
// result whatever the thread count). NaN and Inf propagate.
float global_grad_norm(const Tensor& grads);

// ---- Steps decided on the GPU ----
// The host path above reads the gradient norm back before it can clip or skip a step. On a GPU the
// whole step can instead run without the host: prepare_* uploads the scalars the host knows before
// the step (learning rate, bias corrections, base grad_scale, max_grad_norm) into a small device
// buffer without waiting; *_step_on_device then computes the global norm, the clipping factor and
// whether the norm is finite on the device, and applies or skips the update there (so it can be
// recorded in a CUDA graph); read_step_status copies the outcome back (waits for the stream).
// The same floats as the host path: the norm is float(√Σg²)·grad_scale, the clip factor
// min(1, max_grad_norm / (norm + 1e-6)) in float, the update grad_scale·clip.
struct DeviceStepBuffers {
  Tensor control;   // kernels::StepControl bytes
  Tensor partials;  // per-block partial sums of the norm (8-byte elements)
};
DeviceStepBuffers make_device_step_buffers(const Tensor& params);
void prepare_adamw_on_device(const DeviceStepBuffers& buffers, const AdamStepArgs& args, double max_grad_norm,
                             HostToDevice& uploader);
void prepare_sgd_on_device(const DeviceStepBuffers& buffers, const SgdStepArgs& args, double max_grad_norm,
                           HostToDevice& uploader);
// `norm_summed`: a sharded step (ZeRO), whose norm is of every rank's part: sum_of_squares_on_device
// left this part's Σg² at step_sum_of_squares(buffers), the ranks' sums were added up there
// (ProcessGroup::all_reduce_sum_f64), and the step takes that sum instead of computing its own.
void adamw_step_on_device(const Tensor& params, const Tensor& grads, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                          const Tensor& decay_ranges, const DeviceStepBuffers& buffers, double beta1,
                          bool norm_summed = false);
void sgd_step_on_device(const Tensor& params, const Tensor& grads, const Tensor& momentum_buffer,
                        const Tensor& decay_ranges, const DeviceStepBuffers& buffers, bool norm_summed = false);
void sum_of_squares_on_device(const DeviceStepBuffers& buffers, const Tensor& grads);
double* step_sum_of_squares(const DeviceStepBuffers& buffers);  // one double in device memory
struct DeviceStepStatus {
  float grad_norm = 0, clip_coef = 1;
  bool applied = false;
};
DeviceStepStatus read_step_status(const DeviceStepBuffers& buffers);

}  // namespace ww::ops
