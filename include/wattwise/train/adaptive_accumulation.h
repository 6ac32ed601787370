#pragma once
// Variance-aware adaptive gradient accumulation (`train.grad_accum auto`): the number of
// micro-batches per optimizer step follows the gradient noise scale, within bounds.
//
// The estimate is the "simple noise scale" of McCandlish et al. 2018 (An Empirical Model of
// Large-Batch Training, appendix A.1): for a mean gradient over b examples,
// E|G_b|² = |G|² + tr(Σ)/b. Each step already holds two such norms: that of its first micro-batch
// (b_small examples; in data-parallel training each rank's own rows, before any sum, the ranks'
// squares averaged) and that of the whole step (B_big examples, the norm the optimizer clips with).
// Two equations, two unknowns:
//   |G|²   ≈ (B_big |G_big|² - b_small |G_small|²) / (B_big - b_small)
//   tr(Σ)  ≈ (|G_small|² - |G_big|²) / (1/b_small - 1/B_big)
// Each is noisy, so each is smoothed by an exponential moving average (bias-corrected as Adam's
// moments are) and the noise scale is their ratio, B_noise = tr(Σ)/|G|², in examples. The next
// step accumulates k = round(B_noise / micro-batch examples) micro-batches, clamped to [min, max],
// so the effective batch tracks B_noise. A step of one micro-batch measures nothing, so min >= 2.
//
// The learning rate follows the effective batch: lr = schedule(step) x (k / min)^p, p = 1 (linear:
// Goyal et al. 2017), 1/2 (sqrt: the rule for Adam, Malladi et al. 2022) or 0 (none); train.lr is
// the rate at the smallest effective batch.
//
// Every input is the same on every rank (the step's norm is global, the first micro-batch's is
// summed over the ranks), so every rank chooses the same k; the state is checkpointed, so a resumed
// run chooses what the uninterrupted one would have.
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ww::train {

enum class LrScaling { None, Linear, Sqrt };
LrScaling parse_lr_scaling(std::string_view name);  // "none", "linear", "sqrt"; else an error naming the key
std::string_view lr_scaling_name(LrScaling scaling);

struct AdaptiveAccumulationOptions {
  int64_t min_micro_batches = 2, max_micro_batches = 64;
  double smoothing = 0.9;  // EMA factor of both estimates, [0, 1)
  LrScaling lr_scaling = LrScaling::Sqrt;
  // Validates; errors name the train.* keys.
  void validate() const;
};

// One step's two gradient norms (squared, of mean gradients, unscaled).
struct NoiseMeasurement {
  double small_squared_norm = 0;  // |G_small|²: the first micro-batch's (mean over ranks)
  double small_examples = 0;      // b_small: examples behind it (mean over ranks)
  double big_squared_norm = 0;    // |G_big|²: the whole step's
  double big_examples = 0;        // B_big: examples in the whole step
};

// What a checkpoint keeps: with it a resumed policy chooses as the uninterrupted one would.
struct AdaptiveAccumulationState {
  int64_t micro_batches = 2;  // k of the next step
  double gradient_ema = 0;    // EMA of |G|² estimates (not bias-corrected)
  double noise_ema = 0;       // EMA of tr(Σ) estimates
  int64_t measurements = 0;   // steps measured so far
};
nlohmann::json to_json(const AdaptiveAccumulationState& state);
// Errors name `origin` and the field.
AdaptiveAccumulationState adaptive_state_from_json(const nlohmann::json& j, const std::string& origin);

class AdaptiveAccumulation {
 public:
  // `micro_batch_examples`: examples of one whole micro-batch (over every rank).
  AdaptiveAccumulation(const AdaptiveAccumulationOptions& options, int64_t micro_batch_examples);

  // Micro-batches of the next optimizer step.
  int64_t micro_batches() const { return state_.micro_batches; }
  // The learning rate multiplier of a step of `k` micro-batches: (k / min)^p.
  double lr_multiplier(int64_t k) const;
  // Feeds one applied step's norms (a non-finite one is ignored) and chooses the next k.
  void observe(const NoiseMeasurement& m);
  // The smoothed noise scale in examples; NaN before the first measurement, +inf while the
  // smoothed |G|² is not positive (the gradient is all noise).
  double noise_scale() const;
  // The smoothed estimates (bias-corrected); NaN before the first measurement.
  double gradient_squared_norm() const;
  double noise_trace() const;

  const AdaptiveAccumulationOptions& options() const { return options_; }
  const AdaptiveAccumulationState& state() const { return state_; }
  void restore(const AdaptiveAccumulationState& state);

 private:
  int64_t choose() const;

  AdaptiveAccumulationOptions options_;
  int64_t micro_batch_examples_;
  AdaptiveAccumulationState state_;
};

}  // namespace ww::train
