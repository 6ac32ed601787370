// Execution options of the model and trainer that must not change results on the CPU:
// activation checkpointing (every placement gives bit-identical loss and gradients, with dropout
// on, because recomputation replays the same counter-based masks) and loss scaling (a power-of-two
// scale is exact in f32, so a scaled step equals an unscaled one; a non-finite step is skipped and
// backs the scale off). Also the errors for knobs the CPU cannot run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "test_util.h"
#include "wattwise/experiment/execution.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/train/trainer.h"

using namespace ww;
using namespace ww::models;
using ww::testing::expect_error;

namespace {

ModelConfig small_config(Architecture arch, int64_t layers) {
  ModelConfig c = preset_config(arch, "tiny", 60);
  c.num_layers = layers;
  c.hidden_size = 32, c.num_heads = 4, c.intermediate_size = 48, c.max_position_embeddings = 32;
  c.hidden_dropout = 0.1f, c.attention_dropout = 0.1f, c.classifier_dropout = 0.1f;
  return c;
}

Batch ragged_batch(bool token_types) {
  const int64_t B = 3, T = 9;
  std::vector<int32_t> ids, mask, types, labels = {1, 0, 1};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      bool real = t < 4 + 2 * b;
      ids.push_back(real ? int32_t(3 + (b * 17 + t * 5) % 55) : 0);
      mask.push_back(real ? 1 : 0);
      types.push_back(real && t > 3 ? 1 : 0);
    }
  Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {B, T});
  batch.attention_mask = Tensor::from_vector(mask, {B, T});
  if (token_types) batch.token_type_ids = Tensor::from_vector(types, {B, T});
  batch.labels = Tensor::from_vector(labels, {B});
  return batch;
}

struct StepOutcome {
  float loss;
  std::vector<float> grads;
  size_t activation_bytes;
};

StepOutcome train_step(const ModelConfig& config, const std::string& checkpointing) {
  SequenceClassifier model(config, Device::cpu());
  model.init_weights(9);
  model.set_dropout_seed(4);
  ExecutionOptions options;
  options.checkpointing = parse_checkpointing(checkpointing);
  model.set_execution(options);
  Batch batch = ragged_batch(config.arch == Architecture::Bert);
  // Two steps: the second runs on an arena planned by the first (reuse path).
  for (int step = 0; step < 2; ++step) {
    model.zero_grad();
    model.forward(batch, /*training=*/true);
    model.backward();
  }
  return {model.loss(), model.parameters().flat_grads().to_float_vector(), model.activation_bytes()};
}

}  // namespace

class CheckpointPlacement : public ::testing::TestWithParam<Architecture> {};

TEST_P(CheckpointPlacement, EveryPlacementGivesBitIdenticalGradients) {
  // Five layers: every-2 and sqrt (3) leave a shorter last segment.
  const ModelConfig config = small_config(GetParam(), 5);
  const StepOutcome none = train_step(config, "none");
  for (const char* mode : {"every", "every-2", "every-3", "every-5", "every-9", "sqrt"}) {
    const StepOutcome c = train_step(config, mode);
    EXPECT_EQ(c.loss, none.loss) << mode;
    ASSERT_EQ(c.grads.size(), none.grads.size());
    size_t differing = 0;
    for (size_t i = 0; i < c.grads.size(); ++i) differing += std::memcmp(&c.grads[i], &none.grads[i], sizeof(float)) != 0;
    EXPECT_EQ(differing, 0u) << mode << ": gradients differ from the run without checkpointing";
    if (std::string(mode) != "every-5" && std::string(mode) != "every-9")
      EXPECT_LT(c.activation_bytes, none.activation_bytes) << mode;
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, CheckpointPlacement,
                         ::testing::Values(Architecture::Bert, Architecture::DistilBert));

TEST(CheckpointMemory, CutsDistilBertActivationsAtBatch32Length256) {
  // The arena plan (no forward pass): DistilBERT-base shapes, the reference attention of the CPU.
  ModelConfig config = preset_config(Architecture::DistilBert, "base", 30522);
  SequenceClassifier model(config, Device::cpu());
  const size_t none = model.planned_activation_bytes(32, 256, true);
  ExecutionOptions options;
  options.checkpointing = parse_checkpointing("every");
  model.set_execution(options);
  const size_t every = model.planned_activation_bytes(32, 256, true);
  options.checkpointing = parse_checkpointing("sqrt");
  model.set_execution(options);
  const size_t sqrt_placement = model.planned_activation_bytes(32, 256, true);
  std::printf("DistilBERT-base activations at 32 x 256, f32: none %.0f MiB, every %.0f MiB, sqrt %.0f MiB\n",
              none / 1048576.0, every / 1048576.0, sqrt_placement / 1048576.0);
  EXPECT_LT(double(every), 0.5 * double(none));
  EXPECT_LT(sqrt_placement, none);
  EXPECT_GT(sqrt_placement, every);
}

TEST(CheckpointMemory, ParsesAndRejects) {
  EXPECT_EQ(parse_checkpointing("every-4").k, 4);
  EXPECT_EQ(parse_checkpointing("sqrt").segment_layers(12), 4);
  EXPECT_EQ(parse_checkpointing("sqrt").segment_layers(6), 3);
  EXPECT_EQ(parse_checkpointing("none").segment_layers(6), 6);
  EXPECT_EQ(parse_checkpointing("every-3").str(), "every-3");
  for (const char* bad : {"every-0", "every-", "every-x", "sometimes", "every--1"})
    expect_error([&] { parse_checkpointing(bad); }, {"expected none, every, every-K"});
}

TEST(Execution, KnobsTheCpuCannotRunAreClearErrors) {
  SequenceClassifier model(small_config(Architecture::Bert, 2), Device::cpu());
  expect_error([&] { experiment::apply_execution(model, {"bf16", "auto", "none"}); }, {"needs a GPU"});
  expect_error([&] { experiment::apply_execution(model, {"fp16", "auto", "none"}); }, {"needs a GPU"});
  expect_error([&] { experiment::apply_execution(model, {"fp32", "fused", "none"}); }, {"fused attention needs a GPU"});
  expect_error([&] { experiment::apply_execution(model, {"fp8", "auto", "none"}); }, {"expected fp32, tf32, bf16 or fp16"});
  expect_error([&] { experiment::apply_execution(model, {"fp32", "flash", "none"}); }, {"expected auto, fused or reference"});
  ExecutionOptions sixteen;
  sixteen.compute_dtype = DType::BF16;
  expect_error([&] { model.set_execution(sixteen); }, {"bf16 compute needs a GPU"});
  experiment::apply_execution(model, {"fp32", "auto", "sqrt"});
  EXPECT_EQ(model.attention_kernel(), AttentionKernel::Reference);
  EXPECT_EQ(experiment::parse_loss_scale("dynamic"), std::nullopt);
  EXPECT_EQ(experiment::parse_loss_scale("1024"), 1024.0f);
  expect_error([&] { experiment::parse_loss_scale("-3"); }, {"expected dynamic or a number > 0"});
}

namespace {

train::TrainerOptions loss_scale_options(bool dynamic, float scale) {
  train::TrainerOptions o;
  o.optimizer.kind = train::OptimizerKind::AdamW;
  o.optimizer.max_grad_norm = 1.0;
  o.schedule.kind = train::ScheduleKind::Constant;
  o.schedule.learning_rate = 1e-3;
  o.schedule.total_steps = 10;
  o.dynamic_loss_scaling = dynamic;
  o.initial_loss_scale = scale;
  o.growth_interval = 2;
  return o;
}

}  // namespace

TEST(LossScaling, PowerOfTwoScaleGivesTheSameStep) {
  const ModelConfig config = small_config(Architecture::Bert, 2);
  const Batch batch = ragged_batch(true);
  auto params_after = [&](float scale) {
    SequenceClassifier model(config, Device::cpu());
    model.init_weights(1);
    train::Trainer trainer(model, loss_scale_options(false, scale));
    for (int i = 0; i < 2; ++i) EXPECT_TRUE(trainer.train_micro_batch(batch)->applied);
    return model.parameters().flat_values().to_float_vector();
  };
  const std::vector<float> plain = params_after(1.0f), scaled = params_after(1024.0f);
  ASSERT_EQ(plain.size(), scaled.size());
  size_t differing = 0;
  for (size_t i = 0; i < plain.size(); ++i) differing += plain[i] != scaled[i];
  EXPECT_EQ(differing, 0u);
}

TEST(LossScaling, NonFiniteStepsAreSkippedAndTheScaleBacksOffThenGrows) {
  const ModelConfig config = small_config(Architecture::Bert, 2);
  const Batch batch = ragged_batch(true);
  SequenceClassifier model(config, Device::cpu());
  model.init_weights(1);
  train::Trainer trainer(model, loss_scale_options(true, 65536.0f));
  // A NaN weight makes every gradient non-finite: steps are skipped, nothing else changes.
  float* values = model.parameters().flat_values().data<float>();
  const int64_t poisoned = model.parameters().all()[3].offset;
  const float saved = values[poisoned];
  values[poisoned] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> before = model.parameters().flat_values().to_float_vector();
  for (int i = 0; i < 3; ++i) {
    std::optional<train::StepResult> r = trainer.train_micro_batch(batch);
    ASSERT_TRUE(r.has_value());
    EXPECT_FALSE(r->applied);
    EXPECT_EQ(r->loss_scale, 65536.0f / float(1 << i));
  }
  EXPECT_EQ(trainer.skipped_steps(), 3);
  EXPECT_EQ(trainer.loss_scale(), 8192.0f);
  const std::vector<float> after = model.parameters().flat_values().to_float_vector();
  for (size_t i = 0; i < after.size(); ++i)
    if (int64_t(i) != poisoned) ASSERT_EQ(after[i], before[i]) << "parameter element " << i << " moved";
  // Repaired: steps apply again and after growth_interval (2) good steps the scale doubles.
  values[poisoned] = saved;
  EXPECT_TRUE(trainer.train_micro_batch(batch)->applied);
  EXPECT_EQ(trainer.loss_scale(), 8192.0f);
  EXPECT_TRUE(trainer.train_micro_batch(batch)->applied);
  EXPECT_EQ(trainer.loss_scale(), 16384.0f);
  EXPECT_EQ(trainer.steps(), 5);
  EXPECT_EQ(trainer.skipped_steps(), 3);
}

TEST(LossScaling, WithoutDynamicScalingANonFiniteStepIsAnError) {
  const ModelConfig config = small_config(Architecture::Bert, 2);
  SequenceClassifier model(config, Device::cpu());
  model.init_weights(1);
  train::Trainer trainer(model, loss_scale_options(false, 1.0f));
  model.parameters().flat_values().data<float>()[model.parameters().all()[3].offset] = std::numeric_limits<float>::infinity();
  expect_error([&] { trainer.train_micro_batch(ragged_batch(true)); }, {"not finite"});
}
