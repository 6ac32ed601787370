// train/checkpoint.h and the Trainer's state: a training run saved mid-way (parameters, optimizer
// state, TrainerState) and restored into a fresh model and trainer takes the remaining steps exactly
// as the run that never stopped (bit for bit: the same kernels on the same values in the same
// order), with dropout on and gradient accumulation; and every mismatch is an error naming the file
// and the tensor, before anything changes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include "test_util.h"
#include "wattwise/io/safetensors.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/train/checkpoint.h"
#include "wattwise/train/trainer.h"

using namespace ww;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kVocab = 40, kSeq = 10;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "ww_checkpoint_test_XXXXXX").string();
    path = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

models::SequenceClassifier tiny_model(uint64_t init_seed, int64_t layers = 2) {
  models::ModelConfig config = models::preset_config(models::Architecture::Bert, "tiny", kVocab);
  config.num_layers = layers;
  config.max_position_embeddings = 16;
  models::SequenceClassifier model(config, Device::cpu());
  model.init_weights(init_seed);
  model.set_dropout(0.1f, 0.1f, 0.1f);  // dropout on: the stream's position must be restored
  return model;
}

// Micro-batch i of a fixed stream: 3 examples of varying length.
models::Batch micro_batch(int64_t i) {
  std::vector<int32_t> ids, mask, labels;
  uint32_t state = 977u * uint32_t(i) + 13u;
  auto next = [&] { return state = state * 1664525u + 1013904223u; };
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t length = 3 + int64_t(next() % (kSeq - 3));
    for (int64_t t = 0; t < kSeq; ++t) {
      ids.push_back(t < length ? int32_t(5 + next() % (kVocab - 5)) : 0);
      mask.push_back(t < length ? 1 : 0);
    }
    labels.push_back(int32_t(next() >> 20) % 2);
  }
  models::Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {3, kSeq});
  batch.attention_mask = Tensor::from_vector(mask, {3, kSeq});
  batch.labels = Tensor::from_vector(labels, {3});
  return batch;
}

train::TrainerOptions options() {
  train::TrainerOptions o;
  o.optimizer.kind = train::OptimizerKind::AdamW;
  o.optimizer.weight_decay = 0.01;
  o.optimizer.max_grad_norm = 1.0;
  o.schedule.kind = train::ScheduleKind::Linear;
  o.schedule.learning_rate = 3e-3;
  o.schedule.total_steps = 9;
  o.schedule.warmup_steps = 3;
  o.grad_accum = 2;
  o.label_smoothing = 0.1f;
  o.seed = 5;
  return o;
}

struct Step {
  int64_t step;
  double loss, lr;
  float grad_norm;
};

// Feeds micro-batches first.. until `steps` optimizer steps are done; returns their results.
std::vector<Step> train_until(train::Trainer& trainer, int64_t& next_micro_batch, int64_t steps) {
  std::vector<Step> out;
  while (trainer.steps() < steps) {
    std::optional<train::StepResult> r = trainer.train_micro_batch(micro_batch(next_micro_batch++));
    if (r) out.push_back({r->step, r->loss, r->lr, r->grad_norm});
  }
  return out;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data<float>(), b.data<float>(), size_t(a.numel()) * 4) == 0;
}

}  // namespace

TEST(TrainingCheckpoint, RestoredRunContinuesBitForBit) {
  TempDir t;
  // The uninterrupted run: 9 steps of 2 micro-batches, saved after step 4.
  models::SequenceClassifier a = tiny_model(1);
  train::Trainer trainer_a(a, options());
  int64_t next_a = 0;
  train_until(trainer_a, next_a, 4);
  ASSERT_TRUE(trainer_a.at_step_boundary());
  train::save_parameters(t.path / "parameters.safetensors", a.parameters());
  train::save_optimizer_state(t.path / "optimizer.safetensors", trainer_a.optimizer());
  const nlohmann::json state = train::to_json(trainer_a.state());
  EXPECT_EQ(state["dropout_step"].get<uint64_t>(), 8u);  // one per training forward
  const std::vector<Step> rest_a = train_until(trainer_a, next_a, 9);

  // A fresh model (other initial weights) and trainer, restored, fed the same remaining batches.
  models::SequenceClassifier b = tiny_model(99);
  train::Trainer trainer_b(b, options());
  train::load_parameters(t.path / "parameters.safetensors", b.parameters());
  train::load_optimizer_state(t.path / "optimizer.safetensors", trainer_b.optimizer(), b.parameters().numel());
  trainer_b.restore(train::trainer_state_from_json(state, "state"));
  EXPECT_EQ(trainer_b.steps(), 4);
  int64_t next_b = 8;  // the micro-batches consumed by 4 steps of 2
  const std::vector<Step> rest_b = train_until(trainer_b, next_b, 9);

  ASSERT_EQ(rest_a.size(), 5u);
  ASSERT_EQ(rest_b.size(), 5u);
  for (size_t i = 0; i < rest_a.size(); ++i) {
    EXPECT_EQ(rest_a[i].step, rest_b[i].step);
    EXPECT_EQ(rest_a[i].loss, rest_b[i].loss) << "step " << rest_a[i].step;  // exactly, not within a tolerance
    EXPECT_EQ(rest_a[i].lr, rest_b[i].lr) << "step " << rest_a[i].step;
    EXPECT_EQ(rest_a[i].grad_norm, rest_b[i].grad_norm) << "step " << rest_a[i].step;
  }
  EXPECT_TRUE(same_bits(a.parameters().flat_values(), b.parameters().flat_values()));
  for (const auto& [name, tensor] : trainer_a.optimizer().state())
    if (name != "step") {
      for (const auto& [other_name, other] : trainer_b.optimizer().state()) {
        if (other_name == name) {
          EXPECT_TRUE(same_bits(tensor, other)) << name;
        }
      }
    }
}

TEST(TrainingCheckpoint, WithoutTheDropoutStreamTheRunDiverges) {
  // The control for the test above: restoring everything but the dropout position gives other masks.
  TempDir t;
  models::SequenceClassifier a = tiny_model(1);
  train::Trainer trainer_a(a, options());
  int64_t next_a = 0;
  train_until(trainer_a, next_a, 4);
  train::save_parameters(t.path / "p.safetensors", a.parameters());
  train::save_optimizer_state(t.path / "o.safetensors", trainer_a.optimizer());
  train::TrainerState state = trainer_a.state();
  const std::vector<Step> rest_a = train_until(trainer_a, next_a, 5);
  models::SequenceClassifier b = tiny_model(1);
  train::Trainer trainer_b(b, options());
  train::load_parameters(t.path / "p.safetensors", b.parameters());
  train::load_optimizer_state(t.path / "o.safetensors", trainer_b.optimizer(), b.parameters().numel());
  state.dropout_step = 0;
  trainer_b.restore(state);
  int64_t next_b = 8;
  const std::vector<Step> rest_b = train_until(trainer_b, next_b, 5);
  EXPECT_NE(rest_a[0].loss, rest_b[0].loss);
}

TEST(TrainingCheckpoint, StateOnlyAtAStepBoundary) {
  models::SequenceClassifier a = tiny_model(1);
  train::Trainer trainer(a, options());
  EXPECT_FALSE(trainer.train_micro_batch(micro_batch(0)).has_value());
  EXPECT_FALSE(trainer.at_step_boundary());
  ww::testing::expect_error([&] { trainer.state(); }, {"in the middle of an optimizer step"});
}

TEST(TrainingCheckpoint, ParametersOfAnotherModelAreRefusedNamingFileAndTensor) {
  TempDir t;
  models::SequenceClassifier two = tiny_model(1, 2), one = tiny_model(1, 1);
  train::save_parameters(t.path / "two.safetensors", two.parameters());
  train::save_parameters(t.path / "one.safetensors", one.parameters());
  const std::vector<float> before = one.parameters().flat_values().to_float_vector();
  ww::testing::expect_error([&] { train::load_parameters(t.path / "two.safetensors", one.parameters()); },
                        {"two.safetensors", "is not a parameter of this model"});
  ww::testing::expect_error([&] { train::load_parameters(t.path / "one.safetensors", two.parameters()); },
                        {"one.safetensors", "layer.1", "is missing"});
  EXPECT_EQ(one.parameters().flat_values().to_float_vector(), before);  // nothing changed
  // Another shape under the same name.
  models::ModelConfig wide = models::preset_config(models::Architecture::Bert, "tiny", kVocab + 1);
  wide.num_layers = 1;
  wide.max_position_embeddings = 16;
  models::SequenceClassifier other(wide, Device::cpu());
  ww::testing::expect_error([&] { train::load_parameters(t.path / "one.safetensors", other.parameters()); },
                        {"one.safetensors", "word_embeddings", "the model's is F32"});
}

TEST(TrainingCheckpoint, OptimizerStateOfAnotherKindOrAShardIsRefused) {
  TempDir t;
  models::SequenceClassifier a = tiny_model(1);
  train::Trainer adam(a, options());
  train::save_optimizer_state(t.path / "adam.safetensors", adam.optimizer());
  train::TrainerOptions sgd_options = options();
  sgd_options.optimizer.kind = train::OptimizerKind::SGD;
  sgd_options.optimizer.momentum = 0.9;
  train::Trainer sgd(a, sgd_options);
  ww::testing::expect_error(
      [&] { train::load_optimizer_state(t.path / "adam.safetensors", sgd.optimizer(), a.parameters().numel()); },
      {"adam.safetensors", "holds the state of a 'adamw' optimizer, this run's is sgd"});
  // One shard of two (what a sharded run would write per rank).
  const int64_t n = a.parameters().numel();
  io::save_safetensors(t.path / "shard.safetensors", adam.optimizer().state(),
                       {{"format", "pt"}, {"optimizer", "adamw"}, {"shard_begin", "0"},
                        {"shard_end", std::to_string(n / 2)}, {"shards", "2"}});
  ww::testing::expect_error(
      [&] { train::load_optimizer_state(t.path / "shard.safetensors", adam.optimizer(), n); },
      {"shard.safetensors", "multi-process", "single-process checkpoints only"});
}

TEST(TrainingCheckpoint, TrainerStateJsonRoundTripsAndBadFieldsAreNamed) {
  train::TrainerState s;
  s.skipped_steps = 3;
  s.loss_scale = 1024.0f;
  s.good_steps = 17;
  s.dropout_step = 123456789012ull;
  const train::TrainerState back = train::trainer_state_from_json(nlohmann::json::parse(train::to_json(s).dump()), "x");
  EXPECT_EQ(back.skipped_steps, 3);
  EXPECT_EQ(back.loss_scale, 1024.0f);
  EXPECT_EQ(back.good_steps, 17);
  EXPECT_EQ(back.dropout_step, 123456789012ull);
  nlohmann::json broken = train::to_json(s);
  broken.erase("loss_scale");
  ww::testing::expect_error([&] { train::trainer_state_from_json(broken, "state.json"); }, {"state.json", "'loss_scale'"});
  broken = train::to_json(s);
  broken["loss_scale"] = -1;
  ww::testing::expect_error([&] { train::trainer_state_from_json(broken, "state.json"); }, {"state.json", "out of range"});
}
