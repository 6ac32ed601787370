#pragma once
// The training loop of `wattwise train` (train_run.cpp owns the run around it): the epochs, the
// micro-batches (in data-parallel training, this rank's rows of each), the optimizer steps, and the
// points where the run evaluates, checkpoints and stops. Every rank of a job runs it the same way.
#include <cstdint>
#include <functional>
#include <optional>

#include <nlohmann/json.hpp>

#include "train_task.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/train/trainer.h"

namespace ww::experiment {

// What a training loop reports into metrics.json, and (with the data position and the trainer's
// state) what a checkpoint keeps.
struct RunOutcome {
  int64_t steps = 0, examples = 0, tokens = 0;
  double epochs = 0, seconds = 0, final_loss = 0;
  bool stopped_early = false;
  size_t peak_memory_bytes = 0;
  nlohmann::json best_metrics;
  double best_value = 0;
  int64_t best_step = -1;
  nlohmann::json history = nlohmann::json::array();
  nlohmann::json test = nullptr;
  int64_t evaluations = 0, evals_without_improvement = 0;
  // train.target: where the first evaluation that met it was (step, seconds, energy, samples so far;
  // null: not met yet), and whether the run stopped there.
  nlohmann::json target_reached = nullptr;
  bool stopped_at_target = false;
  // Data position: micro-batches of epoch `epoch` consumed (an optimizer step ends there).
  uint64_t epoch = 0;
  int64_t batch_in_epoch = 0;
  double model_flops = 0;  // of every training micro-batch so far (TrainTask::training_flops)
  // Micro-batches of the finished optimizer steps, and the steps of each size {"4": 10, ...}
  // (adaptive accumulation's record).
  int64_t micro_batches = 0;
  nlohmann::json steps_by_grad_accum = nlohmann::json::object();
  // The overhead guards' measurements and choices (overhead_guard.h; null: none asked).
  nlohmann::json overhead_guards = nullptr;
};

// What the training loop hands back to the run around it.
struct LoopHooks {
  std::function<void(const MicroBatch&)> micro_batch = [](const MicroBatch&) {};
  // After each optimizer step (the log, evaluations); may set the loop's `stop` (early stopping).
  std::function<void(const train::StepResult&)> step = [](const train::StepResult&) {};
  std::function<void()> epoch_end = [] {};  // the evaluation at an epoch's end
  // Every train.checkpoint_every steps (rank 0 writes it; with sharded optimizer state the other
  // ranks write their parts).
  std::function<void()> checkpoint = [] {};
};

// One micro-batch into the trainer: the whole of it in one process; data parallel, this rank's rows
// (contiguous, balanced: the ranks' counts differ by one at most, rank r has rows [B r / N,
// B (r + 1) / N), so every row is trained on once). Returns the step it completed, if any.
std::optional<train::StepResult> train_on_rows(train::Trainer& trainer, const models::Batch& batch,
                                               dist::ProcessGroup* group);

// The epochs from the position in `r` to the end of the run, the same on every rank: the
// micro-batches (this rank's rows of each), the optimizer steps, and the hooks (rank 0's: logs,
// evaluations, checkpoints; the other ranks' only one is their part of a checkpoint of sharded
// optimizer state). With several ranks they agree after every
// step and every epoch whether to stop (early stopping is rank 0's decision, a signal may reach
// any rank), so all leave the loop together. Returns whether a signal interrupted it.
bool train_epochs(TrainTask& task, train::Trainer& trainer, RunOutcome& r, int64_t total_steps,
                  int64_t checkpoint_every, bool record_plan, const GracefulInterrupt& interrupt,
                  dist::ProcessGroup* group, bool& stop, const LoopHooks& hooks);

}  // namespace ww::experiment
