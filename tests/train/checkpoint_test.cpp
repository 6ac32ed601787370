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
  train::load_optimizer_state({t.path / "optimizer.safetensors"}, trainer_b.optimizer(), b.parameters().numel());
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
  train::load_optimizer_state({t.path / "o.safetensors"}, trainer_b.optimizer(), b.parameters().numel());
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

Tensor step_tensor(int64_t value) {
  Tensor t = Tensor::empty({1}, DType::I64);
  t.data<int64_t>()[0] = value;
  return t;
}

// Writes the optimizer's whole state as the shards [cuts[i], cuts[i+1]) would be written by ranks of
// a sharded run (the same tensors and metadata save_optimizer_state gives each rank).
std::vector<fs::path> write_as_shards(const fs::path& dir, const train::Optimizer& optimizer,
                                      const std::vector<int64_t>& cuts, int64_t step_override = -1) {
  std::vector<fs::path> paths;
  const int64_t shards = int64_t(cuts.size()) - 1;
  for (int64_t i = 0; i < shards; ++i) {
    std::vector<std::pair<std::string, Tensor>> part;
    for (const auto& [name, t] : optimizer.state()) {
      if (name == "step" && step_override >= 0 && i == shards - 1) {
        part.emplace_back(name, step_tensor(step_override));
        continue;
      }
      part.emplace_back(name, name == "step" ? t : t.slice(cuts[size_t(i)], cuts[size_t(i) + 1]));
    }
    paths.push_back(dir / ("optimizer.rank" + std::to_string(i) + ".safetensors"));
    io::save_safetensors(paths.back(), part,
                         {{"format", "pt"}, {"optimizer", "adamw"}, {"numel", std::to_string(optimizer.parameter_count())},
                          {"shard_begin", std::to_string(cuts[size_t(i)])},
                          {"shard_end", std::to_string(cuts[size_t(i) + 1])}, {"shards", std::to_string(shards)}});
  }
  return paths;
}

std::vector<float> state_of(const train::Optimizer& optimizer, const std::string& which) {
  for (const auto& [name, t] : optimizer.state())
    if (name == which) return t.to_float_vector();
  return {};
}

// A sharded run's files (here three shards, listed in any order) load into one optimizer bit for
// bit: each optimizer takes its range from the shards that overlap it.
// A tiny model and an AdamW trainer after `steps` optimizer steps, in a scratch folder.
struct TrainedAdam {
  TempDir t;
  models::SequenceClassifier model = tiny_model(1);
  train::Trainer trainer{model, options()};
  int64_t n = model.parameters().numel();
  explicit TrainedAdam(int64_t steps) {
    int64_t next = 0;
    train_until(trainer, next, steps);
  }
};

TEST(TrainingCheckpoint, OptimizerShardsLoadIntoTheWholeState) {
  TrainedAdam trained(3);
  const TempDir& t = trained.t;
  models::SequenceClassifier& a = trained.model;
  train::Trainer& trainer_a = trained.trainer;
  const int64_t n = trained.n;
  std::vector<fs::path> shards = write_as_shards(t.path, trainer_a.optimizer(), {0, n / 3, n / 3 + 1, n});
  std::swap(shards[0], shards[2]);
  train::Trainer trainer_b(a, options());
  train::load_optimizer_state(shards, trainer_b.optimizer(), n);
  EXPECT_EQ(trainer_b.optimizer().steps_taken(), 3);
  for (const char* name : {"exp_avg", "exp_avg_sq"})
    EXPECT_EQ(state_of(trainer_b.optimizer(), name), state_of(trainer_a.optimizer(), name)) << name;
}

TEST(TrainingCheckpoint, BadOptimizerShardsAreRefusedNamingTheFile) {
  TrainedAdam trained(2);
  const TempDir& t = trained.t;
  models::SequenceClassifier& a = trained.model;
  train::Trainer& adam = trained.trainer;
  const int64_t n = trained.n;
  train::save_optimizer_state(t.path / "adam.safetensors", adam.optimizer());
  const std::vector<float> before = state_of(adam.optimizer(), "exp_avg");
  auto refused = [&](const std::vector<fs::path>& files, std::vector<std::string> words) {
    train::Trainer fresh(a, options());
    ww::testing::expect_error([&] { train::load_optimizer_state(files, fresh.optimizer(), n); }, words);
    EXPECT_EQ(fresh.optimizer().steps_taken(), 0);  // nothing changed
    EXPECT_EQ(state_of(fresh.optimizer(), "exp_avg"), std::vector<float>(size_t(n), 0.0f));
  };
  // Another optimizer kind.
  train::TrainerOptions sgd_options = options();
  sgd_options.optimizer.kind = train::OptimizerKind::SGD;
  sgd_options.optimizer.momentum = 0.9;
  train::Trainer sgd(a, sgd_options);
  ww::testing::expect_error(
      [&] { train::load_optimizer_state({t.path / "adam.safetensors"}, sgd.optimizer(), n); },
      {"adam.safetensors", "holds the state of a 'adamw' optimizer, this run's is sgd"});
  // Another model's size.
  ww::testing::expect_error(
      [&] { train::load_optimizer_state({t.path / "adam.safetensors"}, sgd.optimizer(), n + 1); },
      {"adam.safetensors", "holds the state of a 'adamw' optimizer"});
  train::Trainer other(a, options());
  ww::testing::expect_error(
      [&] { train::load_optimizer_state({t.path / "adam.safetensors"}, other.optimizer(), n + 1); },
      {"adam.safetensors", "optimizer state of " + std::to_string(n) + " parameters, this model has " + std::to_string(n + 1)});
  // A shard missing: a gap, or the end not reached.
  const fs::path two = t.path / "two", three = t.path / "three", step = t.path / "step";
  fs::create_directories(two), fs::create_directories(three), fs::create_directories(step);
  const std::vector<fs::path> halves = write_as_shards(two, adam.optimizer(), {0, n / 2, n});
  refused({halves[1]}, {"optimizer.rank1.safetensors", "one of 2 shards, but the checkpoint lists 1"});
  const std::vector<fs::path> thirds = write_as_shards(three, adam.optimizer(), {0, 10, 20, n});
  refused({thirds[0], thirds[2]}, {"one of 3 shards, but the checkpoint lists 2"});
  const fs::path other_dir = t.path / "other";
  fs::create_directories(other_dir);
  const std::vector<fs::path> overlapping = write_as_shards(other_dir, adam.optimizer(), {0, 5, 20, n});
  refused({thirds[0], thirds[2], overlapping[2]}, {"starts at element 20 but the shards before it end at 10"});
  // Shards of different steps.
  const std::vector<fs::path> stepped = write_as_shards(step, adam.optimizer(), {0, n / 2, n}, 7);
  refused(stepped, {"optimizer.rank1.safetensors", "at step 7", "at step 2"});
  // A tensor of the wrong size for its range.
  io::save_safetensors(t.path / "short.safetensors",
                       std::vector<std::pair<std::string, Tensor>>{{"exp_avg", Tensor::zeros({n - 1}, DType::F32)}, {"exp_avg_sq", Tensor::zeros({n}, DType::F32)},
                        {"step", step_tensor(2)}},
                       {{"optimizer", "adamw"}, {"shard_begin", "0"}, {"shard_end", std::to_string(n)}, {"shards", "1"}});
  refused({t.path / "short.safetensors"}, {"short.safetensors", "'exp_avg'", "expected F32 [" + std::to_string(n) + "]"});
  EXPECT_EQ(state_of(adam.optimizer(), "exp_avg"), before);
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
