#include "wattwise/train/adaptive_accumulation.h"

#include <algorithm>
#include <limits>

#include "wattwise/core/error.h"

namespace ww::train {

LrScaling parse_lr_scaling(std::string_view name) {
  if (name == "none") return LrScaling::None;
  if (name == "linear") return LrScaling::Linear;
  if (name == "sqrt") return LrScaling::Sqrt;
  fail("train.grad_accum_lr_scaling '", name, "': expected none, linear or sqrt");
}

std::string_view lr_scaling_name(LrScaling scaling) {
  switch (scaling) {
    case LrScaling::None: return "none";
    case LrScaling::Linear: return "linear";
    case LrScaling::Sqrt: return "sqrt";
  }
  return "?";
}

void AdaptiveAccumulationOptions::validate() const {
  if (min_micro_batches < 2)
    fail("train.grad_accum_min ", min_micro_batches,
         ": adaptive accumulation needs at least 2 micro-batches per step (one micro-batch measures no gradient noise)");
  if (max_micro_batches < min_micro_batches)
    fail("train.grad_accum_max ", max_micro_batches, " is below train.grad_accum_min ", min_micro_batches);
  if (!(smoothing >= 0 && smoothing < 1)) fail("train.noise_scale_smoothing ", smoothing, ": expected [0, 1)");
}

nlohmann::json to_json(const AdaptiveAccumulationState& s) {
  return {{"micro_batches", s.micro_batches},
          {"gradient_ema", s.gradient_ema},
          {"noise_ema", s.noise_ema},
          {"measurements", s.measurements}};
}

AdaptiveAccumulationState adaptive_state_from_json(const nlohmann::json& j, const std::string& origin) {
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number())
      fail(origin, ": adaptive accumulation state has no number '", key, "'");
    return j[key];
  };
  AdaptiveAccumulationState s;
  s.micro_batches = field("micro_batches").get<int64_t>();
  s.gradient_ema = field("gradient_ema").get<double>();
  s.noise_ema = field("noise_ema").get<double>();
  s.measurements = field("measurements").get<int64_t>();
  if (s.micro_batches < 1 || s.measurements < 0 || !std::isfinite(s.gradient_ema) || !std::isfinite(s.noise_ema))
    fail(origin, ": adaptive accumulation state out of range (", to_json(s).dump(), ")");
  return s;
}

AdaptiveAccumulation::AdaptiveAccumulation(const AdaptiveAccumulationOptions& options, int64_t micro_batch_examples)
    : options_(options), micro_batch_examples_(micro_batch_examples) {
  options_.validate();
  WW_CHECK(micro_batch_examples > 0, "adaptive accumulation needs micro-batches of at least one example");
  state_.micro_batches = options_.min_micro_batches;
}

double AdaptiveAccumulation::lr_multiplier(int64_t k) const {
  const double ratio = double(k) / double(options_.min_micro_batches);
  switch (options_.lr_scaling) {
    case LrScaling::None: return 1.0;
    case LrScaling::Linear: return ratio;
    case LrScaling::Sqrt: return std::sqrt(ratio);
  }
  return 1.0;
}

void AdaptiveAccumulation::observe(const NoiseMeasurement& m) {
  const double b = m.small_examples, B = m.big_examples;
  if (!(std::isfinite(m.small_squared_norm) && std::isfinite(m.big_squared_norm)) || !(b > 0) || !(B > b)) return;
  const double gradient = (B * m.big_squared_norm - b * m.small_squared_norm) / (B - b);
  const double noise = (m.small_squared_norm - m.big_squared_norm) / (1.0 / b - 1.0 / B);
  const double beta = options_.smoothing;
  state_.gradient_ema = beta * state_.gradient_ema + (1 - beta) * gradient;
  state_.noise_ema = beta * state_.noise_ema + (1 - beta) * noise;
  ++state_.measurements;
  state_.micro_batches = choose();
}

double AdaptiveAccumulation::gradient_squared_norm() const {
  if (state_.measurements == 0) return std::nan("");
  return state_.gradient_ema / (1 - std::pow(options_.smoothing, double(state_.measurements)));
}

double AdaptiveAccumulation::noise_trace() const {
  if (state_.measurements == 0) return std::nan("");
  return state_.noise_ema / (1 - std::pow(options_.smoothing, double(state_.measurements)));
}

double AdaptiveAccumulation::noise_scale() const {
  if (state_.measurements == 0) return std::nan("");
  // The bias corrections cancel in the ratio.
  if (state_.gradient_ema <= 0) return std::numeric_limits<double>::infinity();
  return std::max(0.0, state_.noise_ema) / state_.gradient_ema;
}

int64_t AdaptiveAccumulation::choose() const {
  const double scale = noise_scale();
  const double lo = double(options_.min_micro_batches), hi = double(options_.max_micro_batches);
  if (std::isnan(scale)) return options_.min_micro_batches;
  const double k = std::clamp(std::round(scale / double(micro_batch_examples_)), lo, hi);  // inf clamps to hi
  return int64_t(k);
}

void AdaptiveAccumulation::restore(const AdaptiveAccumulationState& state) {
  if (state.micro_batches < options_.min_micro_batches || state.micro_batches > options_.max_micro_batches)
    fail("adaptive accumulation state: ", state.micro_batches, " micro-batches per step is outside train.grad_accum_min..max (",
         options_.min_micro_batches, "..", options_.max_micro_batches, ")");
  state_ = state;
}

}  // namespace ww::train
