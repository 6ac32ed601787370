#pragma once
// The training tasks behind `wattwise train`. One driver (train_run.cpp) owns a run: the run
// folder, the training loop over micro-batches, the periodic evaluation, best-model checkpoints and
// early stopping, the energy phases, train_log.csv and metrics.json, and interruption and resumption
// (training checkpoints: train_checkpoint.h). A resumed run asks a task for the same epochs again
// and skips the micro-batches already trained on, so a task's epoch order must depend only on the
// seed and the epoch. A task brings what differs between kinds of learning: the model and its data,
// how a batch is made, how an evaluation scores and reads, its replay plan and its own entries of
// metrics.json. Sequence classification (train_classification.cpp) and causal language modelling
// (train_lm.cpp) are the tasks today; an image task (a ResNet on image batches) implements the same
// interface.
//
// A task's constructor does everything that can fail on bad input, in the order the user's errors
// have always come, before the driver creates the run folder.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/core/device.h"
#include "wattwise/core/dtype.h"
#include "wattwise/experiment/execution.h"
#include "wattwise/experiment/train_config.h"
#include "wattwise/models/model.h"
#include "wattwise/models/runtime.h"
#include "wattwise/text/tokenizer.h"

namespace ww::experiment {

// What the driver needs to know of a task's run, resolved by its constructor.
struct TaskSettings {
  Device device;
  uint64_t seed = 0;
  std::string name;
  std::string metric;             // picks the best model and drives early stopping
  bool higher_is_better = true;   // of `metric`
  int64_t batch_size = 0;         // sequences (or examples) per micro-batch
  int64_t grad_accum = 1;         // micro-batches per optimizer step (auto: the first step's)
  bool adaptive_accumulation = false;  // train.grad_accum auto
  int64_t batches_per_epoch = 0;  // micro-batches of one pass over the train split
  ExecutionChoice execution;
  // train.checkpointing auto: the plan that chose (memory_plan.h); null otherwise.
  nlohmann::json checkpointing_plan = nullptr;
  // Whether throughput and energy per sample count tokens (language modelling) or examples.
  bool per_token = false;
};

// One micro-batch of an epoch, with what it counts.
struct MicroBatch {
  models::Batch batch;
  int64_t examples = 0;  // sequences or examples
  int64_t tokens = 0;    // input tokens (counted by tasks that are per_token)
  std::string plan_line;  // its line of plan/batches.jsonl (when the plan is exported)
};

class EpochBatches {
 public:
  virtual ~EpochBatches() = default;
  virtual std::optional<MicroBatch> next() = 0;
};

// Counts of a finished training loop, for a task's part of metrics.json's "train".
struct TrainCounts {
  int64_t examples = 0, tokens = 0, steps = 0;
  double seconds = 0;
};

enum class EvalSplit { Eval, Test };

class TrainTask {
 public:
  virtual ~TrainTask() = default;
  const TaskSettings& settings() const { return settings_; }

  // ---- the model
  virtual models::ModelRuntime& model() = 0;
  // Writes the model being trained and its tokenizer into `dir` (a Hugging Face folder).
  virtual void save_model(const std::filesystem::path& dir, DType dtype) const = 0;

  // ---- the run folder
  // config.toml: the configuration as this run resolved it (running it again repeats the run).
  virtual std::string config_toml() const = 0;
  // Lines after "run folder: ...": what is trained on what, for how many steps.
  virtual std::vector<std::string> start_messages(int64_t total_steps, int64_t steps_per_epoch) const = 0;
  // The replay plan's data files (run.export_plan) into plan/ (the initial model is the driver's).
  virtual void write_plan(const std::filesystem::path& plan_dir, int64_t total_steps) const = 0;

  // ---- training
  // The micro-batches of epoch `epoch` (shuffled by the run's seed and the epoch), with their plan
  // lines when `record_plan`.
  virtual std::unique_ptr<EpochBatches> epoch(uint64_t epoch, bool record_plan) = 0;

  // ---- evaluation
  virtual bool has_eval() const = 0;
  virtual bool has_test() const = 0;
  // Metrics of the model being trained on the evaluation split.
  virtual nlohmann::json evaluate() = 0;
  // Loads the best model from `dir` for inference only, run as `execution` says.
  virtual void load_test_model(const std::filesystem::path& dir, const ExecutionChoice& execution) = 0;
  // Metrics of that model on the test split.
  virtual nlohmann::json evaluate_test() = 0;
  virtual std::string test_split() const = 0;
  // The samples an evaluation's energy is divided by (examples, or scored tokens).
  virtual int64_t evaluated_samples(const nlohmann::json& metrics, EvalSplit split) const = 0;
  // Progress lines of an evaluation during training (`value`: the run's metric) and of the test.
  virtual std::string eval_line(int64_t step, double epoch, double value, const nlohmann::json& metrics,
                                bool improved) const = 0;
  virtual std::string test_line(const nlohmann::json& metrics) const = 0;

  // ---- metrics.json: the task's "model" and "data" objects and its entries of "train"
  virtual nlohmann::json model_metrics() const = 0;
  // Model FLOPs of one training micro-batch of this shape (forward and backward, as bench counts
  // them): what MFU divides by the device's peak.
  virtual double training_flops(const models::Batch& batch) const = 0;
  // The activation arena of the largest training micro-batch (train.batch_size at the longest
  // sequence) under the model's current execution.
  virtual size_t planned_activation_bytes() const = 0;
  // Runs the model with activation checkpointing `mode` from now on (train.checkpointing auto's
  // choice, recorded with its `plan`).
  void use_checkpointing(const std::string& mode, nlohmann::json plan) {
    settings_.checkpointing_plan = std::move(plan);
    ExecutionChoice execution = settings_.execution;
    execution.checkpointing = mode;
    use_execution(execution);
  }
  // Runs the model as `execution` says from now on (the overhead guards' choices).
  void use_execution(const ExecutionChoice& execution) {
    settings_.execution = execution;
    apply_execution(model(), settings_.execution);
  }
  virtual nlohmann::json data_metrics() const = 0;
  virtual void add_train_metrics(nlohmann::json& train, const TrainCounts& counts) const = 0;

 protected:
  TaskSettings settings_;
};

// `device`: run.device as this process resolves it (in data-parallel training on GPUs, the GPU of
// its LOCAL_RANK).
std::unique_ptr<TrainTask> make_classification_task(const TrainConfig& cfg, Device device);
std::unique_ptr<TrainTask> make_language_modelling_task(const TrainConfig& cfg, Device device);

// ---- shared by the tasks
// train.grad_accum into the settings: its number, or with auto train.grad_accum_min (the first
// step's) and adaptive_accumulation set.
void set_grad_accum(const TrainConfig& cfg, TaskSettings& s);
// train.precision, model.attention, train.checkpointing and run.cuda_graphs, with the error a
// training run gives when run.device cannot run them. The values the run decides later start as:
// checkpointing auto none (the memory plan chooses), attention fastest auto and CUDA graphs auto
// on (the overhead guards measure).
ExecutionChoice training_execution(const TrainConfig& cfg, Device device);
// Writes a model folder into `dir` through `write` (which fills the folder it is given) via a
// sibling temporary folder, so a crash never leaves a half-written folder (best_model/).
void save_model_folder(const std::function<void(const std::filesystem::path&)>& write,
                       const std::filesystem::path& dir);
// A task's save_model(): the model and its tokenizer into one folder, that way; `model_max_length`
// the model's positions (the tokenizer's longest input, tokenizer.h).
template <typename Model, typename Tokenizer>
void save_model_and_tokenizer(const Model& model, const Tokenizer& tokenizer, const std::filesystem::path& dir,
                              DType dtype, int64_t model_max_length) {
  save_model_folder([&](const std::filesystem::path& folder) {
    model.save(folder, dtype);
    tokenizer.save(folder, model_max_length);
  }, dir);
}

}  // namespace ww::experiment
