#pragma once
// Per-element optimizer updates shared by the CPU and CUDA kernels, so both backends run the same
// float operations in the same order (torch.optim's single-tensor code). Host-side scalars
// (bias corrections, step sizes) are computed once per step in double and rounded to float here.
#include <cmath>
#include <cstdint>

#include "wattwise/core/host_device.h"

namespace ww::kernels {

struct AdamScalars {
  float grad_scale;
  bool decay_enabled;          // weight_decay != 0 (torch skips the decay ops entirely at 0)
  bool decoupled;              // AdamW: p *= decay_factor; Adam: g += weight_decay·p
  float decay_factor;          // 1 − lr·wd
  float weight_decay;
  float one_minus_beta1;       // lerp weight for exp_avg
  float beta2, one_minus_beta2;
  float bias_correction2_sqrt; // √(1 − β2^t)
  float eps;
  float neg_step_size;         // −lr / (1 − β1^t)
};

struct SgdScalars {
  float grad_scale;
  bool decay_enabled;
  float weight_decay;
  bool use_momentum;
  bool first_step;             // momentum buffer starts as the gradient
  float momentum, one_minus_dampening;
  bool nesterov;
  float neg_lr;
};

// A step whose clipping and finiteness check are decided on the GPU (no host round trip, so it can
// be recorded in a CUDA graph): the host fills the first block before the step, the norm kernels
// fill the second, and the update kernels read grad_scale from it and skip when not applied.
struct StepControl {
  // Host: everything known before the step. adam/sgd.grad_scale are replaced on the device.
  AdamScalars adam;
  SgdScalars sgd;
  float base_grad_scale;  // 1 / (accumulation · loss scale)
  float max_grad_norm;    // 0: no clipping
  // Device: the step's outcome.
  double sum_of_squares;
  float grad_norm;        // √Σg² · base_grad_scale (what the host path reports)
  float clip_coef;
  int32_t applied;        // 0 when grad_norm is NaN or Inf: nothing was updated
};

// torch.lerp's formula (aten/src/ATen/native/Lerp.h), exact at both ends of the weight range:
// self + w·(end − self) for |w| < 0.5, else end − (end − self)·(1 − w). The choice is a template
// parameter so loops over elements stay branch-free.
WW_HOST_DEVICE inline bool lerp_weight_is_small(float weight) { return std::fabs(weight) < 0.5f; }

template <bool kSmallWeight>
WW_HOST_DEVICE inline float torch_lerp(float self, float end, float weight) {
  if constexpr (kSmallWeight) return self + weight * (end - self);
  else return end - (end - self) * (1.0f - weight);
}

// How weight decay enters an element's update: a compile-time choice, so the inner loops carry no
// branch on it (the kernels pick the instantiation per span of decayed / non-decayed elements).
enum class DecayMode { None, Decoupled, L2 };

// kSmallLerpWeight = lerp_weight_is_small(s.one_minus_beta1).
template <DecayMode kDecay, bool kSmallLerpWeight>
WW_HOST_DEVICE inline void adam_update(float& p, float g, float& m, float& v, const AdamScalars& s) {
  g = g * s.grad_scale;
  if constexpr (kDecay == DecayMode::Decoupled) p = p * s.decay_factor;  // param.mul_(1 - lr * wd)
  if constexpr (kDecay == DecayMode::L2) g = g + s.weight_decay * p;     // grad.add(param, alpha=wd)
  m = torch_lerp<kSmallLerpWeight>(m, g, s.one_minus_beta1);            // exp_avg.lerp_(grad, 1 - beta1)
  v = v * s.beta2;                                    // exp_avg_sq.mul_(beta2)
  v = v + s.one_minus_beta2 * g * g;                  //   .addcmul_(grad, grad, value=1 - beta2)
  float denom = std::sqrt(v) / s.bias_correction2_sqrt + s.eps;
  p = p + s.neg_step_size * m / denom;                // param.addcdiv_(exp_avg, denom, value=-step_size)
}

// The decay mode of an element, given whether its parameter takes weight decay.
WW_HOST_DEVICE inline DecayMode adam_decay_mode(bool decay, const AdamScalars& s) {
  if (!decay || !s.decay_enabled) return DecayMode::None;
  return s.decoupled ? DecayMode::Decoupled : DecayMode::L2;
}

template <DecayMode kDecay>
WW_HOST_DEVICE inline void sgd_update(float& p, float g, float* buf, const SgdScalars& s) {
  g = g * s.grad_scale;
  if constexpr (kDecay == DecayMode::L2) g = g + s.weight_decay * p;  // grad.add(param, alpha=wd)
  if (s.use_momentum) {
    float b = s.first_step ? g : *buf * s.momentum + s.one_minus_dampening * g;
    *buf = b;
    g = s.nesterov ? g + s.momentum * b : b;
  }
  p = p + s.neg_lr * g;                                      // param.add_(grad, alpha=-lr)
}

WW_HOST_DEVICE inline DecayMode sgd_decay_mode(bool decay, const SgdScalars& s) {
  return decay && s.decay_enabled ? DecayMode::L2 : DecayMode::None;
}

}  // namespace ww::kernels
