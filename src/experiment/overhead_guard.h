#pragma once
// Overhead guards: model.attention fastest and the `auto` values of run.cuda_graphs and
// train.bucket_mb. At the start of a fresh run the training step is measured with and without each
// such optimisation (fused attention, CUDA graphs, gradient sums overlapped with backward in
// buckets): real optimizer steps on the run's first micro-batches, alternating, from a snapshot of
// the training state that is put back afterwards, so the run then trains exactly as if nothing had
// been measured. An optimisation that makes the step slower on this device is switched off, saying
// so in the log and in metrics.json (execution.overhead_guards). Every rank of a data-parallel job
// measures together and decides alike; a resumed run keeps the choices its checkpoint recorded.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train_task.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/experiment/train_config.h"
#include "wattwise/train/trainer.h"

namespace ww::experiment {

// Which optimisations the configuration asks to be measured.
struct GuardRequest {
  bool attention = false;       // model.attention fastest
  bool cuda_graphs = false;     // run.cuda_graphs auto
  bool bucket_overlap = false;  // train.bucket_mb auto
  bool any() const { return attention || cuda_graphs || bucket_overlap; }
};
GuardRequest guard_request_of(const TrainConfig& cfg);

// How the measurement runs: rounds of each setting alternating (which goes first swaps every
// round), each round one untimed step (recordings, allocations) then `steps_per_round` timed ones.
struct GuardPlan {
  int rounds = 5;
  int steps_per_round = 2;
  // The optimisation is switched off only when it was slower in every round (each round's two
  // times are a pair) and its median time per micro-batch exceeds the median without it by more
  // than this fraction: equal within the noise keeps it on.
  double tolerance = 0.03;
};

struct GuardVerdict {
  double with_s = 0, without_s = 0;  // medians, seconds per micro-batch
  bool slower_in_every_round = false;
  bool keep = true;
};
// The decision rule (GuardPlan) over the rounds' times with and without, round r's two a pair.
GuardVerdict judge_overhead(std::vector<double> with_s, std::vector<double> without_s, double tolerance);

// Measures what `request` asks (every rank of `group` calls it together, at a step boundary before
// the first step), applies the choices to the task's execution and the trainer, and returns
// metrics.json's execution.overhead_guards (null when nothing is asked). `recorded`: rank 0 of a
// resumed run, its checkpoint's record (null: measure); the choices are then applied as recorded.
// `say`: the log (rank 0's progress messages).
nlohmann::json run_overhead_guards(const GuardRequest& request, const GuardPlan& plan, TrainTask& task,
                                   train::Trainer& trainer, dist::ProcessGroup* group, const nlohmann::json& recorded,
                                   const std::function<void(const std::string&)>& say);

}  // namespace ww::experiment
