#include "wattwise/train/schedule.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numbers>
#include <string>

#include "wattwise/core/error.h"

namespace ww::train {

ScheduleKind parse_schedule_kind(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  if (lower == "constant") return ScheduleKind::Constant;
  if (lower == "linear") return ScheduleKind::Linear;
  if (lower == "cosine") return ScheduleKind::Cosine;
  fail("lr_schedule = '", name, "': expected one of constant, linear, cosine");
}

std::string_view schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Constant: return "constant";
    case ScheduleKind::Linear: return "linear";
    case ScheduleKind::Cosine: return "cosine";
  }
  return "?";
}

LrSchedule::LrSchedule(const ScheduleOptions& options) : options_(options) {
  const ScheduleOptions& o = options_;
  if (!std::isfinite(o.learning_rate) || o.learning_rate < 0)
    fail("lr schedule: learning_rate = ", o.learning_rate, ": expected a finite value >= 0");
  if (o.total_steps < 0)
    fail("lr schedule: total_steps = ", o.total_steps, ": expected a count >= 0");
  if (o.kind != ScheduleKind::Constant && o.total_steps == 0)
    fail("lr schedule: the ", schedule_kind_name(o.kind),
         " schedule needs total_steps > 0 (it decays to 0 at the last step)");
  if (o.warmup_steps && o.warmup_ratio)
    fail("lr schedule: warmup_steps and warmup_ratio are both set; set one of them");
  if (o.warmup_steps) {
    if (*o.warmup_steps < 0)
      fail("lr schedule: warmup_steps = ", *o.warmup_steps, ": expected a count >= 0");
    warmup_steps_ = *o.warmup_steps;
  }
  if (o.warmup_ratio) {
    double r = *o.warmup_ratio;
    if (!(r >= 0 && r <= 1))
      fail("lr schedule: warmup_ratio = ", r, ": expected 0 <= warmup_ratio <= 1");
    if (r > 0 && o.total_steps == 0)
      fail("lr schedule: warmup_ratio needs total_steps > 0");
    warmup_steps_ = int64_t(std::ceil(double(o.total_steps) * r));
  }
  if (o.total_steps > 0 && warmup_steps_ > o.total_steps)
    fail("lr schedule: warmup_steps = ", warmup_steps_, " exceeds total_steps = ", o.total_steps);
}

double LrSchedule::multiplier(int64_t step) const {
  if (step < 0) fail("lr schedule: step ", step, " is negative");
  const int64_t warmup = warmup_steps_, total = options_.total_steps;
  // The formulas below are transformers' lr lambdas, term for term.
  if (step < warmup) return double(step) / double(std::max<int64_t>(1, warmup));
  switch (options_.kind) {
    case ScheduleKind::Constant:
      return 1.0;
    case ScheduleKind::Linear:
      return std::max(0.0, double(total - step) / double(std::max<int64_t>(1, total - warmup)));
    case ScheduleKind::Cosine: {
      double progress = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
      const double num_cycles = 0.5;
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * num_cycles * 2.0 * progress)));
    }
  }
  return 1.0;
}

}  // namespace ww::train
