#include "wattwise/experiment/memory_plan.h"

#include "wattwise/core/checked.h"
#include "wattwise/core/error.h"

namespace ww::experiment {

nlohmann::json CheckpointingPlan::to_json() const {
  nlohmann::json predicted = nlohmann::json::object();
  for (const auto& [choice, bytes] : activation_bytes) predicted[choice] = bytes;
  return {{"requested", "auto"},
          {"chosen", chosen},
          {"budget_bytes", budget_bytes},
          {"budget_source", budget_source},
          {"model_state_bytes", model_state_bytes},
          {"predicted_activation_bytes", predicted},
          {"reason", reason}};
}

CheckpointingPlan plan_checkpointing(size_t budget_bytes, const std::string& budget_source, size_t model_state_bytes,
                                     const std::vector<std::pair<std::string, size_t>>& candidates) {
  WW_CHECK(!candidates.empty(), "checkpointing plan without candidates");
  CheckpointingPlan plan;
  plan.budget_bytes = budget_bytes;
  plan.budget_source = budget_source;
  plan.model_state_bytes = model_state_bytes;
  plan.activation_bytes = candidates;
  for (const auto& [choice, bytes] : candidates) {
    if (model_state_bytes + bytes > budget_bytes) continue;
    plan.chosen = choice;
    plan.reason = "train.checkpointing auto: " + choice + " (activations " + format_bytes(double(bytes)) + " + model state " +
                  format_bytes(double(model_state_bytes)) + " fit " + format_bytes(double(budget_bytes)) + ", " + budget_source;
    if (choice != candidates.front().first)
      plan.reason += "; " + candidates.front().first + " would need " + format_bytes(double(candidates.front().second)) +
                     " of activations";
    plan.reason += ")";
    return plan;
  }
  const auto& [last, last_bytes] = candidates.back();
  fail("train.checkpointing auto: training does not fit even with checkpointing ", last, ": model state ",
       format_bytes(double(model_state_bytes)), " + activations ", format_bytes(double(last_bytes)), " > ", format_bytes(double(budget_bytes)), " (",
       budget_source, "); lower train.batch_size or the sequence length, or give a larger train.memory_budget_mb");
}

size_t estimated_model_state_bytes(int64_t parameters, bool sixteen_bit, const std::string& optimizer, int zero,
                                   int ranks) {
  const size_t n = size_t(parameters);
  const size_t moments = optimizer == "sgd" ? 1 : 2;
  size_t optimizer_bytes = n * moments * sizeof(float);
  if (zero >= 1 && ranks > 1) optimizer_bytes = (optimizer_bytes + size_t(ranks) - 1) / size_t(ranks);
  return n * sizeof(float) * 2 + (sixteen_bit ? n * 2 : 0) + optimizer_bytes;
}

}  // namespace ww::experiment
