// TrainingSnapshot: steps taken after a snapshot and undone by restore() leave no trace; the next
// steps are the ones that would have come (dropout masks, adaptive accumulation, fp32 Adam), bit
// for bit, on the CPU and on a GPU (16-bit working copy, dynamic loss scaling).
#include <gtest/gtest.h>

#include <vector>

#include "cuda_test_util.h"
#include "model_test_util.h"
#include "wattwise/core/error.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/train/snapshot.h"
#include "wattwise/train/trainer.h"

using namespace ww;

namespace {

struct StepTrace {
  std::vector<double> losses;
  std::vector<float> grad_norms;
  std::vector<int64_t> grad_accums;
};

// Takes `steps` optimizer steps over the batches in turn from `next`.
StepTrace take_steps(train::Trainer& trainer, const std::vector<models::Batch>& batches, size_t& next, int steps) {
  StepTrace trace;
  while (int(trace.losses.size()) < steps) {
    if (std::optional<train::StepResult> r = trainer.train_micro_batch(batches[next++ % batches.size()])) {
      trace.losses.push_back(r->loss);
      trace.grad_norms.push_back(r->grad_norm);
      trace.grad_accums.push_back(r->grad_accum);
    }
  }
  return trace;
}

train::TrainerOptions adaptive_adam(bool fp16) {
  train::TrainerOptions o;
  o.optimizer.kind = train::OptimizerKind::AdamW;
  o.optimizer.weight_decay = 0.01;
  o.schedule.learning_rate = 1e-3;
  o.schedule.total_steps = 20;
  o.schedule.warmup_steps = 3;
  train::AdaptiveAccumulationOptions a;
  a.min_micro_batches = 2;
  a.max_micro_batches = 4;
  o.adaptive = a;
  o.micro_batch_examples = 6;
  o.seed = 11;
  if (fp16) {
    o.dynamic_loss_scaling = true;
    o.initial_loss_scale = 65536.0f;
    o.growth_interval = 2;  // the scale moves during the test's steps
  }
  return o;
}

void expect_snapshot_undoes_steps(Device device, models::ExecutionOptions execution, bool fp16) {
  models::ModelConfig config = ww::testing::small_config(models::Architecture::Bert, 2);  // dropout on
  config.vocab_size = 100;  // make_batch's ids
  models::SequenceClassifier model(config, device);
  model.init_weights(5);
  model.set_execution(execution);
  std::vector<models::Batch> batches;
  for (uint64_t seed = 1; seed <= 5; ++seed) batches.push_back(ww::testing::make_batch(6, 10, seed, true, device));
  train::Trainer trainer(model, adaptive_adam(fp16));
  size_t next = 0;
  take_steps(trainer, batches, next, 2);

  const train::TrainingSnapshot snapshot(model, trainer);
  const size_t at_snapshot = next;
  const StepTrace first = take_steps(trainer, batches, next, 4);
  const std::vector<float> params_after_first = model.parameters().flat_values().to_float_vector();
  const int64_t steps_after_first = trainer.steps();
  // Steps that are undone: other batches, so a trace left behind would show.
  size_t other = 3;
  take_steps(trainer, batches, other, 3);
  snapshot.restore(model, trainer);
  EXPECT_EQ(trainer.steps(), steps_after_first - 4);
  next = at_snapshot;
  const StepTrace again = take_steps(trainer, batches, next, 4);

  EXPECT_EQ(first.losses, again.losses);
  EXPECT_EQ(first.grad_norms, again.grad_norms);
  EXPECT_EQ(first.grad_accums, again.grad_accums);
  EXPECT_EQ(trainer.steps(), steps_after_first);
  EXPECT_EQ(model.parameters().flat_values().to_float_vector(), params_after_first);
}

}  // namespace

TEST(TrainingSnapshot, StepsUndoneByRestoreLeaveNoTraceOnTheCpu) {
  expect_snapshot_undoes_steps(Device::cpu(), {}, false);
}

TEST(TrainingSnapshot, StepsUndoneByRestoreLeaveNoTraceOnAGpuInFp16) {
  WW_REQUIRE_CUDA();
  models::ExecutionOptions execution;
  execution.compute_dtype = DType::F16;
  expect_snapshot_undoes_steps(Device::cuda(0), execution, true);
}

TEST(TrainingSnapshot, IsRestoredOnlyAtAStepBoundary) {
  models::SequenceClassifier model(ww::testing::small_config(models::Architecture::Bert, 1), Device::cpu());
  model.init_weights(5);
  train::TrainerOptions o;
  o.schedule.total_steps = 4;
  o.grad_accum = 2;
  train::Trainer trainer(model, o);
  const train::TrainingSnapshot snapshot(model, trainer);
  trainer.train_micro_batch(ww::testing::ragged_batch(true));  // half a step
  EXPECT_THROW(snapshot.restore(model, trainer), Error);
  EXPECT_THROW(train::TrainingSnapshot(model, trainer), Error);
}
