#pragma once
// `train.checkpointing auto`: activation checkpointing only when training without it would not fit
// the device. Before the first step the run predicts, for the largest micro-batch it will train on,
// the activation arena under each choice (the models' own activation plans, which size the arena a
// step allocates) and adds the model state (f32 weights, their 16-bit working copy, gradients,
// optimizer state); the first choice in the order none, sqrt, every whose sum fits the budget is
// taken (each checkpointing recomputes every layer's forward once, so among those that fit, the
// one with fewer recomputed segments' worth of memory traffic comes first). The budget is
// train.memory_budget_mb, else 90% of the device's free memory (the rest for library workspaces and
// the allocator). metrics.json's execution.checkpointing_plan records the prediction, and the
// arena the run then allocated, so the prediction is verified on every run.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ww::experiment {

struct CheckpointingPlan {
  std::string chosen;            // none, sqrt or every
  size_t budget_bytes = 0;       // what the run may use
  std::string budget_source;     // "train.memory_budget_mb" or "90% of the free memory of cuda:0"
  size_t model_state_bytes = 0;  // estimated: weights, working copy, gradients, optimizer state
  std::vector<std::pair<std::string, size_t>> activation_bytes;  // each choice's predicted arena
  std::string reason;            // one line for the log
  nlohmann::json to_json() const;
};

// The first of `candidates` (choice → predicted activation bytes, in preference order) whose
// activations and `model_state_bytes` fit `budget_bytes`; none fitting is an error naming
// train.checkpointing auto and the sizes, with what to lower.
CheckpointingPlan plan_checkpointing(size_t budget_bytes, const std::string& budget_source, size_t model_state_bytes,
                                     const std::vector<std::pair<std::string, size_t>>& candidates);

// The model state of training `parameters` f32 parameters: master weights and gradients (4 bytes
// each), a 16-bit working copy when `sixteen_bit`, and the optimizer's state (AdamW and Adam two
// f32 moments, SGD one momentum buffer), of which each of `ranks` ranks holds 1/ranks under ZeRO 1
// and 2.
size_t estimated_model_state_bytes(int64_t parameters, bool sixteen_bit, const std::string& optimizer, int zero,
                                   int ranks);

}  // namespace ww::experiment
