#pragma once
// One optimizer step at a time: micro-batches are fed one by one (gradient accumulation), and every
// `grad_accum`-th call clips the global gradient norm, applies the learning-rate schedule and steps
// the optimizer. Knows nothing about files, devices or data sets: the same code trains on the CPU
// and on a GPU (experiment/train_run.cpp, the one training driver, runs it).
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/dist/process_group.h"
#include "wattwise/models/model.h"
#include "wattwise/train/adaptive_accumulation.h"
#include "wattwise/train/gradient_buckets.h"
#include "wattwise/train/metrics.h"
#include "wattwise/train/optimizer.h"
#include "wattwise/train/schedule.h"
#include "wattwise/train/sharded_gradients.h"

namespace ww::train {

struct TrainerOptions {
  OptimizerOptions optimizer;
  ScheduleOptions schedule;  // total_steps must be set
  int64_t grad_accum = 1;
  // Adaptive accumulation (train.grad_accum auto): the micro-batches per step follow the gradient
  // noise scale (adaptive_accumulation.h) and grad_accum is ignored. `micro_batch_examples`: the
  // examples of one whole micro-batch (train.batch_size).
  std::optional<AdaptiveAccumulationOptions> adaptive;
  int64_t micro_batch_examples = 0;
  float label_smoothing = 0.0f;
  uint64_t seed = 42;  // dropout stream
  // Loss scaling for fp16: the loss is multiplied by the scale before backward and the gradients
  // divided by it in the optimizer step. Dynamic (torch.amp.GradScaler's rule): a step whose
  // gradients are not finite is skipped and halves the scale; every `growth_interval` applied
  // steps in a row double it. Not dynamic: the scale stays and a non-finite step is an error.
  bool dynamic_loss_scaling = false;
  float initial_loss_scale = 1.0f;
  int64_t growth_interval = 2000;
  // Data-parallel training (DDP semantics): the ranks' gradients are summed before each optimizer
  // step (not on the micro-steps of an accumulation), so every rank takes the same step. Null or a
  // group of one: one process.
  dist::ProcessGroup* group = nullptr;
  // ZeRO stage: 0, every rank holds the whole optimizer state; 1, each holds its part of it
  // (OptimizerShard) and the updated parameters are all-gathered; 2, also the gradients: each
  // layer's are reduce-scattered as soon as backward finishes them and each rank keeps only the
  // sums of its part (sharded_gradients.h).
  int zero = 0;
  // Data parallel, ZeRO 0 and 1: the gradients are summed in buckets of about this many elements,
  // each while backward goes on (gradient_buckets.h); 0: in one all-reduce after backward. ZeRO 2
  // sums layer by layer instead.
  int64_t bucket_elements = kDefaultBucketBytes / int64_t(sizeof(float));
};

struct StepResult {
  int64_t step = 0;        // optimizer steps taken so far (1 after the first)
  double loss = 0;         // mean loss over the step's micro-batches
  double lr = 0;           // learning rate this step used
  float grad_norm = 0;     // global norm before clipping
  bool applied = true;     // false when the gradients were not finite (step skipped)
  int64_t examples = 0;    // examples in the step
  float loss_scale = 1;    // the scale this step's backward used
  int64_t grad_accum = 1;  // micro-batches in the step
  // Adaptive accumulation: the smoothed gradient noise scale (examples) after this step; NaN
  // without adaptive accumulation or before its first measurement.
  double noise_scale = std::nan("");
};

// What a training checkpoint keeps of a Trainer beyond the model's parameters and the optimizer's
// state (Optimizer::state(), which holds the count of applied steps): with both restored into a
// Trainer built with the same options, the next steps are the ones the first Trainer would have
// taken, bit for bit.
struct TrainerState {
  int64_t skipped_steps = 0;   // steps skipped for non-finite gradients (fp16 dynamic loss scaling)
  float loss_scale = 1.0f;     // the loss scale of the next step
  int64_t good_steps = 0;      // applied steps in a row since the dynamic loss scale last changed
  uint64_t dropout_step = 0;   // the model's dropout stream position (TrainableModel::dropout_step)
  std::optional<AdaptiveAccumulationState> adaptive;  // with adaptive accumulation
};
nlohmann::json to_json(const TrainerState& state);
// Throws ww::Error naming `origin` and the key when a field is missing or of the wrong type.
TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& origin);

class Trainer {
 public:
  Trainer(models::TrainableModel& model, const TrainerOptions& options);

  // Forward + backward on one micro-batch (labels required). Returns the step's result when this
  // micro-batch completed an optimizer step. Non-finite loss or gradients are an error unless
  // the step can be skipped (reported in StepResult.applied).
  std::optional<StepResult> train_micro_batch(const models::Batch& batch);
  // Data parallel: this rank's rows of a micro-batch of `global_examples` examples, holding
  // `share` of the terms its mean loss averages (0: no rows here, nothing to compute). The
  // gradients and the step's loss then come out as those of the whole micro-batch in one process.
  // `same_on_every_rank`: every rank's rows and share are the same as this rank's (the caller knows
  // the whole micro-batch); only then may a GPU step be recorded in a CUDA graph, because every
  // rank must record and replay alike.
  std::optional<StepResult> train_micro_batch_shard(const models::Batch& rows, double share, int64_t global_examples,
                                                    bool same_on_every_rank = false);
  int64_t steps() const { return optimizer_.steps_taken() + skipped_; }
  int64_t skipped_steps() const { return skipped_; }
  float loss_scale() const { return loss_scale_; }
  const TrainerOptions& options() const { return options_; }
  // Micro-batches the next optimizer step accumulates (grad_accum, or the adaptive policy's choice).
  int64_t grad_accum() const { return accum_; }
  // The adaptive policy (null without train.grad_accum auto).
  const AdaptiveAccumulation* adaptive() const { return adaptive_ ? &*adaptive_ : nullptr; }
  // Data parallel: the buckets the gradients are summed in (0: one sum after backward, or ZeRO 2).
  size_t gradient_buckets() const { return buckets_ ? buckets_->buckets().size() : 0; }
  // Data parallel, ZeRO 0 and 1: sums the gradients in buckets of about `elements` from the next
  // step on (0: one sum after backward), as TrainerOptions::bucket_elements; at a step boundary,
  // on every rank alike (train.bucket_mb auto's choice).
  void set_bucket_elements(int64_t elements);
  // Bytes of gradients this process holds: the whole buffer, or under ZeRO 2 the layers' slots, the
  // resident embeddings' and head's, and its part of the sums (0 before any backward).
  size_t gradient_bytes() const;
  Optimizer& optimizer() { return optimizer_; }
  const Optimizer& optimizer() const { return optimizer_; }
  const LrSchedule& schedule() const { return schedule_; }
  // No micro-batch of an unfinished optimizer step is pending: the place to stop or checkpoint.
  bool at_step_boundary() const { return micro_ == 0; }
  // Only at a step boundary (else an error): mid-accumulation gradients are not part of the state.
  TrainerState state() const;
  // Restores state() into this trainer (at a step boundary); the optimizer's state is restored
  // separately (optimizer().load_state()).
  void restore(const TrainerState& state);

 private:
  // The whole step as one CUDA-graph replay; data parallel, this rank's rows with their `share`,
  // the gradients' all-reduce recorded in the graph.
  std::optional<StepResult> train_step_graphed(const models::Batch& batch, double share, int64_t global_examples);
  // Whether the step can be recorded: one micro-batch per step on a model that records (a GPU with
  // CUDA graphs); data parallel also ZeRO 0, a group that records (NCCL) and the same rows and share
  // on every rank (so every rank records and replays alike).
  bool can_graph(const models::Batch& rows, int64_t global_examples, bool same_on_every_rank) const;
  // The loss scale backward uses for a rank holding `share` of the loss terms.
  float backward_scale(double share) const;
  // Runs `work` (a backward) with the buckets' (or ZeRO 2's) hook set, so the sums start as parts
  // finish.
  template <typename Work>
  void with_buckets_hooked(Work&& work);
  // A job of one rank too: its collectives run (through NCCL or Gloo), as DDP's do.
  bool distributed() const { return options_.group != nullptr; }
  // Adaptive accumulation: the squared norm of this rank's first micro-batch gradient (unscaled),
  // taken after its backward.
  void measure_first_micro_batch(int64_t rows, double share);
  // Bookkeeping after the optimizer: skipped steps, the loss scale, the adaptive policy's next k,
  // zeroed gradients.
  StepResult finish_step(StepResult r, const StepReport& report);

  models::TrainableModel& model_;
  TrainerOptions options_;
  Optimizer optimizer_;
  LrSchedule schedule_;
  std::optional<GradientBuckets> buckets_;  // data parallel with buckets (see TrainerOptions)
  std::optional<ShardedGradients> sharded_gradients_;  // ZeRO 2 on more than one rank
  std::optional<AdaptiveAccumulation> adaptive_;
  int64_t accum_ = 1;  // micro-batches of the current step
  // This step's first micro-batch on this rank: its squared gradient norm and rows (0: none).
  double first_squared_norm_ = 0;
  int64_t first_rows_ = 0;
  int64_t micro_ = 0, skipped_ = 0, step_examples_ = 0, good_steps_ = 0;
  float loss_scale_ = 1.0f;
  double step_loss_ = 0;
};

// Collects logits, labels and losses over an evaluation pass, then computes the metrics.
class EvalAccumulator {
 public:
  EvalAccumulator(int64_t num_labels, bool regression);
  // logits [B, num_labels] (host copy), labels (classification) or targets (regression).
  void add(const std::vector<float>& logits, const std::vector<int32_t>& labels,
           const std::vector<float>& targets, double mean_loss, int64_t batch_size);
  // {"loss": ..., "accuracy": ..., "f1": ..., ...} (regression: pearson, spearman, mse).
  nlohmann::json metrics() const;
  const std::vector<int32_t>& predictions() const { return predictions_; }

 private:
  int64_t num_labels_;
  bool regression_;
  std::vector<int32_t> labels_, predictions_;
  std::vector<float> targets_, outputs_;
  LossMeter loss_;
};

// Value of a metric in a metrics JSON (e.g. "accuracy", "loss"); error names the metric.
double metric_value(const nlohmann::json& metrics, const std::string& name);

}  // namespace ww::train
