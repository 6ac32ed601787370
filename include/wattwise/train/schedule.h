#pragma once
// Learning-rate schedules as transformers builds them (optimization.py), so a run here and a run
// with Trainer see the same learning rate at every step:
//   constant  lr (after an optional linear warmup: get_constant_schedule_with_warmup)
//   linear    linear warmup from 0, then linear decay to 0 at total_steps
//             (get_linear_schedule_with_warmup)
//   cosine    linear warmup, then half a cosine down to 0 at total_steps
//             (get_cosine_schedule_with_warmup, num_cycles 0.5)
// `step` counts optimizer updates already taken (0 for the first update), as torch's LambdaLR does
// when scheduler.step() follows optimizer.step(): with warmup the first update uses lr 0.
#include <cstdint>
#include <optional>
#include <string_view>

namespace ww::train {

enum class ScheduleKind { Constant, Linear, Cosine };

// "constant", "linear", "cosine" (any case); anything else is an error naming `lr_schedule`.
ScheduleKind parse_schedule_kind(std::string_view name);
std::string_view schedule_kind_name(ScheduleKind kind);

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::Linear;
  double learning_rate = 5e-5;
  int64_t total_steps = 0;              // optimizer updates in the run; needed by linear and cosine
  std::optional<int64_t> warmup_steps;  // at most one of these two;
  std::optional<double> warmup_ratio;   // ratio r gives ceil(r · total_steps) steps, as transformers
};

class LrSchedule {
 public:
  // Validates; errors name the option ("lr schedule: warmup_ratio = 1.5: expected 0 <= ratio <= 1").
  explicit LrSchedule(const ScheduleOptions& options);

  // Learning rate for the update that follows `step` completed ones (step >= 0). Past total_steps
  // linear stays at 0 and cosine follows transformers' formula (it rises again), so size
  // total_steps to the run.
  double lr(int64_t step) const { return options_.learning_rate * multiplier(step); }
  double multiplier(int64_t step) const;  // lr(step) / learning_rate

  int64_t warmup_steps() const { return warmup_steps_; }
  int64_t total_steps() const { return options_.total_steps; }
  const ScheduleOptions& options() const { return options_; }

 private:
  ScheduleOptions options_;
  int64_t warmup_steps_ = 0;
};

}  // namespace ww::train
