// train::Trainer: gradient accumulation, loss scaling, and 20 steps against PyTorch.
//
// Gradient accumulation: one optimizer step over a batch of 8 equals one step over the same 8
// examples fed as two micro-batches of 4 with grad_accum 2 (dropout off, fp32), because each
// micro-batch's gradient is of its mean loss and the trainer scales the sum by 1/grad_accum.
//
// What is compared is each tensor's *update* (parameters after the step minus before), in units of
// the step's typical size (the RMS update over the whole model), not relative to the tensor itself:
// the two runs sum the same fp32 products in another order (and another CPU's BLAS kernels in
// another order again), so each gradient element differs by rounding of the order of
// u = 2^-24 times the gradient's scale, accumulated along the backward pass. A tensor whose exact
// gradient is zero (the attention key bias: softmax ignores a shift shared by all keys) moves only
// by that noise, so relative to itself the noise is all there is; relative to the step it is tiny.
// The worst-case rounding of a K-term fp32 sum is K * u of its terms' scale (K <= 128 in tiny BERT:
// ~8e-6), and a gradient passes a few such sums in the backward pass: the bound is 1e-4 steps. Seen
// on OpenBLAS's Prescott, Nehalem, Sandybridge, Haswell, Zen and SkylakeX kernels: at most 5e-6
// (OPENBLAS_CORETYPE picks them). A step on only half the batch differs by ~1 step and must fail it.
//
// Loss scaling: a power-of-two scale is exact in f32, so a scaled step equals an unscaled one; a
// non-finite step is skipped and backs the scale off (dynamic), or is an error (fixed scale).
//
// Parity: 20 optimizer steps from the same weights and batches as PyTorch + transformers (dropout
// off, fp32): the loss of every step and every final parameter within 1e-4 relative, for AdamW
// (warmup + cosine, clipping), Adam (L2 decay, warmup + linear) and SGD (Nesterov momentum, constant).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include "cuda_test_util.h"
#include "dist_test_util.h"
#include "model_test_util.h"
#include "test_util.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/io/safetensors.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/train/trainer.h"

using namespace ww;

// ---- gradient accumulation ----

namespace {

constexpr int64_t kVocab = 50, kSeq = 12, kBatch = 8;

struct Examples {
  std::vector<int32_t> ids, mask, types, labels;
};

// Eight examples of different lengths (padded with 0 to kSeq), two classes, both segments used.
Examples make_examples() {
  Examples e;
  uint32_t state = 12345;
  auto next = [&] { return state = state * 1664525u + 1013904223u; };
  for (int64_t b = 0; b < kBatch; ++b) {
    int64_t length = 4 + b % 7;
    for (int64_t t = 0; t < kSeq; ++t) {
      bool real = t < length;
      e.ids.push_back(real ? int32_t(5 + next() % (kVocab - 5)) : 0);
      e.mask.push_back(real ? 1 : 0);
      e.types.push_back(real && t >= length / 2 ? 1 : 0);
    }
    e.labels.push_back(int32_t(next() >> 16) % 2);
  }
  return e;
}

// Rows [begin, end) of the examples as a model batch.
models::Batch rows(const Examples& e, int64_t begin, int64_t end) {
  auto cut = [&](const std::vector<int32_t>& v, int64_t width) {
    return std::vector<int32_t>(v.begin() + begin * width, v.begin() + end * width);
  };
  const int64_t n = end - begin;
  models::Batch batch;
  batch.input_ids = Tensor::from_vector(cut(e.ids, kSeq), {n, kSeq});
  batch.attention_mask = Tensor::from_vector(cut(e.mask, kSeq), {n, kSeq});
  batch.token_type_ids = Tensor::from_vector(cut(e.types, kSeq), {n, kSeq});
  batch.labels = Tensor::from_vector(cut(e.labels, 1), {n});
  return batch;
}

// A fresh tiny BERT with the weights every run starts from (no step taken).
models::SequenceClassifier initial_model() {
  models::ModelConfig config = models::preset_config(models::Architecture::Bert, "tiny", kVocab);
  config.max_position_embeddings = 32;
  models::SequenceClassifier model(config, Device::cpu());
  model.init_weights(7);
  return model;
}

// A fresh tiny BERT (same seed every time, dropout off) after one optimizer step over `micro_batches`.
models::SequenceClassifier step_with(const std::vector<models::Batch>& micro_batches, int64_t grad_accum,
                                     train::OptimizerKind kind) {
  models::SequenceClassifier model = initial_model();
  model.set_dropout(0, 0, 0);
  train::TrainerOptions o;
  o.optimizer.kind = kind;
  o.optimizer.weight_decay = 0.01;
  // Adam's first step is lr * g / (|g| + eps) per element: with the default eps 1e-8 a gradient that
  // is zero in exact arithmetic (the attention key bias) or nearly so turns its rounding noise into
  // a step of up to lr. At 1e-6 such elements move by lr * g / eps, so noise stays noise, while the
  // gradients that carry signal (>> 1e-6 here) still take Adam's normalised steps.
  o.optimizer.eps = 1e-6;
  o.optimizer.max_grad_norm = 0.5;  // clipping sees the accumulated gradient's norm
  if (kind == train::OptimizerKind::SGD) o.optimizer.momentum = 0.9;
  o.schedule.kind = train::ScheduleKind::Constant;
  o.schedule.learning_rate = kind == train::OptimizerKind::SGD ? 0.5 : 1e-3;
  o.schedule.total_steps = 1;
  o.grad_accum = grad_accum;
  o.label_smoothing = 0.1f;
  train::Trainer trainer(model, o);
  for (size_t i = 0; i < micro_batches.size(); ++i) {
    std::optional<train::StepResult> r = trainer.train_micro_batch(micro_batches[i]);
    EXPECT_EQ(r.has_value(), i + 1 == micro_batches.size()) << "micro-batch " << i;
  }
  EXPECT_EQ(trainer.steps(), 1);
  return model;
}

std::vector<double> update_of(const Tensor& after, const Tensor& before) {
  std::vector<float> a = after.to_float_vector(), b = before.to_float_vector();
  std::vector<double> update(a.size());
  for (size_t i = 0; i < a.size(); ++i) update[i] = double(a[i]) - double(b[i]);
  return update;
}

// The largest per-tensor RMS difference between the updates of `a` and `reference`, divided by the
// RMS of `reference`'s update over all parameters (the step's typical size).
double worst_update_difference(const models::SequenceClassifier& a, const models::SequenceClassifier& reference,
                               const models::SequenceClassifier& before, std::string* worst_name) {
  const auto& params = reference.parameters().all();
  double reference_square_sum = 0;
  size_t elements = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    for (double u : update_of(params[i].value, before.parameters().all()[i].value)) reference_square_sum += u * u;
    elements += size_t(params[i].value.numel());
  }
  const double step_rms = std::sqrt(reference_square_sum / double(elements));
  EXPECT_GT(step_rms, 0) << "the reference step moved nothing";
  double worst = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const std::vector<double> x = update_of(a.parameters().all()[i].value, before.parameters().all()[i].value);
    const std::vector<double> y = update_of(params[i].value, before.parameters().all()[i].value);
    double square_sum = 0;
    for (size_t j = 0; j < x.size(); ++j) square_sum += (x[j] - y[j]) * (x[j] - y[j]);
    const double d = std::sqrt(square_sum / double(x.size())) / std::max(step_rms, 1e-30);
    if (d > worst) worst = d, *worst_name = params[i].name;
  }
  return worst;
}

class GradientAccumulation : public ::testing::TestWithParam<train::OptimizerKind> {};

}  // namespace

TEST_P(GradientAccumulation, TwoHalvesEqualOneBatch) {
  const train::OptimizerKind kind = GetParam();
  Examples e = make_examples();
  models::SequenceClassifier whole = step_with({rows(e, 0, 8)}, 1, kind);
  models::SequenceClassifier halves = step_with({rows(e, 0, 4), rows(e, 4, 8)}, 2, kind);
  models::SequenceClassifier first_half_only = step_with({rows(e, 0, 4)}, 1, kind);

  const models::SequenceClassifier before = initial_model();

  std::string name;
  const double accumulated = worst_update_difference(halves, whole, before, &name);
  std::printf("batch 8 x 1 vs batch 4 x 2: worst update difference %.3g steps (%s)\n", accumulated, name.c_str());
  EXPECT_LE(accumulated, 1e-4) << name;

  const double control = worst_update_difference(first_half_only, whole, before, &name);
  std::printf("batch 8 x 1 vs batch 4 x 1 (first half): %.3g steps (%s)\n", control, name.c_str());
  EXPECT_GT(control, 0.1) << "a step on half the batch should differ clearly; the comparison is blind";
}

INSTANTIATE_TEST_SUITE_P(Optimizers, GradientAccumulation,
                         ::testing::Values(train::OptimizerKind::SGD, train::OptimizerKind::AdamW),
                         [](const auto& info) { return info.param == train::OptimizerKind::SGD ? "SGD" : "AdamW"; });

// ---- loss scaling ----

namespace loss_scaling {

using namespace ww::models;
using ww::testing::expect_error;

namespace {

using ww::testing::ragged_batch;
using ww::testing::small_config;

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
  for (size_t i = 0; i < after.size(); ++i) {
    if (int64_t(i) != poisoned) {
      ASSERT_EQ(after[i], before[i]) << "parameter element " << i << " moved";
    }
  }
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

}  // namespace loss_scaling

// ---- parity with PyTorch ----

namespace parity {

namespace fs = std::filesystem;

namespace {

struct Case {
  const char* name;
  train::OptimizerKind kind;
  double lr, weight_decay, clip;
  train::ScheduleKind schedule;
  int64_t warmup;
};

class TrainingParity : public ::testing::TestWithParam<Case> {};

double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += double(a[i] - b[i]) * (a[i] - b[i]), den += double(b[i]) * b[i];
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

}  // namespace

TEST_P(TrainingParity, MatchesPyTorchStepByStep) {
  const Case c = GetParam();
  fs::path fixtures = fs::path(WW_SOURCE_DIR) / "tests" / "fixtures";
  auto model = models::SequenceClassifier::from_pretrained(fixtures / "bert_tiny", Device::cpu());
  model.set_dropout(0, 0, 0);
  io::SafetensorsFile expected = io::SafetensorsFile::open(fixtures / "training" / (std::string(c.name) + ".safetensors"));
  std::vector<float> ref_losses = expected.read("losses").to_float_vector();
  std::vector<float> ref_lrs = expected.read("lrs").to_float_vector();
  const int64_t steps = int64_t(ref_losses.size());

  train::TrainerOptions o;
  o.optimizer.kind = c.kind;
  o.optimizer.weight_decay = c.weight_decay;
  o.optimizer.max_grad_norm = c.clip;
  if (c.kind == train::OptimizerKind::SGD) o.optimizer.momentum = 0.9, o.optimizer.nesterov = true;
  o.schedule.kind = c.schedule;
  o.schedule.learning_rate = c.lr;
  o.schedule.total_steps = steps;
  o.schedule.warmup_steps = c.warmup;
  train::Trainer trainer(model, o);

  for (int64_t s = 0; s < steps; ++s) {
    std::string b = "batch" + std::to_string(s) + ".";
    models::Batch batch;
    batch.input_ids = expected.read(b + "input_ids");
    batch.attention_mask = expected.read(b + "attention_mask");
    batch.token_type_ids = expected.read(b + "token_type_ids");
    batch.labels = expected.read(b + "labels");
    auto r = trainer.train_micro_batch(batch);
    ASSERT_TRUE(r.has_value());
    EXPECT_NEAR(r->lr, ref_lrs[size_t(s)], 1e-7 + 1e-6 * ref_lrs[size_t(s)]) << "step " << s;
    EXPECT_LE(std::abs(r->loss - ref_losses[size_t(s)]), 1e-4 * std::abs(ref_losses[size_t(s)])) << "step " << s;
  }
  double worst = 0;
  std::string worst_name;
  for (const auto& p : model.parameters().all()) {
    // The key bias cannot change any output (softmax ignores a shift shared by all keys), so its
    // exact gradient is 0 and both sides see only rounding noise, which Adam normalises into
    // full-size, random-sign steps: its final value is noise on both sides, not a parity signal.
    if (p.name.find("attention.self.key.bias") != std::string::npos) continue;
    double e = rel_error(p.value.to_float_vector(), expected.read("final." + p.name).to_float_vector());
    if (e > worst) worst = e, worst_name = p.name;
  }
  std::printf("%s: worst final-parameter relative error %.3g (%s)\n", c.name, worst, worst_name.c_str());
  EXPECT_LE(worst, 1e-4) << worst_name;
}

INSTANTIATE_TEST_SUITE_P(
    Optimizers, TrainingParity,
    ::testing::Values(Case{"adamw", train::OptimizerKind::AdamW, 3e-3, 0.01, 1.0, train::ScheduleKind::Cosine, 4},
                      Case{"adam", train::OptimizerKind::Adam, 2e-3, 0.01, 0.5, train::ScheduleKind::Linear, 4},
                      Case{"sgd", train::OptimizerKind::SGD, 5e-2, 0.01, 1.0, train::ScheduleKind::Constant, 0}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace parity

// ---- data parallel on a GPU -----------------------------------------------------------------------

namespace ww {
namespace {

// A job of one rank on a GPU (NCCL): the step is recorded in a CUDA graph with the gradients'
// sums inside it (in buckets on the communication stream while backward goes on: one, several,
// or one sum after backward), and the run gives one plain process's losses and parameters bit for
// bit.
// (Several ranks need several GPUs; the CPU ranks' tests check the arithmetic of more.)
TEST(DataParallelOnGpu, OneRankThroughNcclEqualsOneProcessBitForBit) {
  WW_REQUIRE_CUDA();
  const int64_t steps = 5, B = 4, T = 16;
  auto run = [&](dist::ProcessGroup* group, std::vector<double>& losses, int64_t bucket_elements = 0) {
    models::SequenceClassifier model(testing::test_config(models::Architecture::Bert), Device::cuda(0));
    model.init_weights(7);
    train::TrainerOptions options;
    options.optimizer.max_grad_norm = 1.0;
    options.schedule.kind = train::ScheduleKind::Constant;
    options.schedule.learning_rate = 1e-3;
    options.schedule.total_steps = steps;
    options.group = group;
    options.bucket_elements = bucket_elements;
    train::Trainer trainer(model, options);
    for (int64_t step = 0; step < steps; ++step) {
      const models::Batch batch = testing::make_batch(B, T, 100 + uint64_t(step), true, Device::cpu());
      const auto r = group ? trainer.train_micro_batch_shard(batch, 1.0, B) : trainer.train_micro_batch(batch);
      EXPECT_TRUE(r.has_value());
      losses.push_back(r->loss);
    }
    return model.parameters().flat_values().to_float_vector();
  };
  std::vector<double> plain_losses, job_losses;
  const std::vector<float> plain = run(nullptr, plain_losses);
  dist::JoinOptions join;
  join.timeout = std::chrono::seconds(60);
  const ww::testing::Rendezvous rendezvous;
  auto group = dist::join(rendezvous.world(0, 1), Device::cuda(0), join);
  ASSERT_TRUE(group->can_record());
  for (int64_t bucket_elements : {train::kDefaultBucketBytes / 4, int64_t(20000), int64_t(0)}) {
    SCOPED_TRACE("bucket elements " + std::to_string(bucket_elements));
    job_losses.clear();
    const std::vector<float> job = run(group.get(), job_losses, bucket_elements);
    EXPECT_EQ(job_losses, plain_losses);
    EXPECT_EQ(job, plain);
  }
  EXPECT_GT(group->communication_seconds(), 0.0);
}

// ZeRO 2 with the gradients in slots: 2 thread ranks, each on its half of every batch, keep only
// their part of the gradients (two layers' slots, the embeddings' and head's, and their part of the
// sums) and take one process's steps. On the CPU through Gloo; on a GPU the same with the ranks
// sharing it through host copies (NCCL refuses two ranks on one device), so the slots, the part's
// sums and the optimizer's reading of them run on the device.
void zero2_in_slots_equals_one_process(Device device) {
  const int64_t steps = 3, B = 4, T = 12, ranks = 2;
  models::ModelConfig config = testing::test_config(models::Architecture::Bert);
  config.num_layers = 6;
  config.hidden_dropout = config.attention_dropout = config.classifier_dropout = 0;  // each rank draws its own masks
  auto options_for = [&](dist::ProcessGroup* group) {
    train::TrainerOptions options;
    options.optimizer.max_grad_norm = 1.0;
    options.schedule.kind = train::ScheduleKind::Constant;
    options.schedule.learning_rate = 1e-3;
    options.schedule.total_steps = steps;
    options.grad_accum = 2;
    options.group = group;
    options.zero = group ? 2 : 0;
    return options;
  };
  auto batch_of = [&](int64_t i) { return testing::make_batch(B, T, 300 + uint64_t(i), true, Device::cpu()); };
  models::SequenceClassifier plain(config, device);
  plain.init_weights(11);
  const std::vector<float> initial_params = plain.parameters().flat_values().to_float_vector();
  train::Trainer plain_trainer(plain, options_for(nullptr));
  std::vector<double> expected;
  for (int64_t i = 0; i < steps * 2; ++i)
    if (auto r = plain_trainer.train_micro_batch(batch_of(i))) expected.push_back(r->loss);
  const std::vector<float> expected_params = plain.parameters().flat_values().to_float_vector();
  const int64_t numel = plain.parameters().numel();

  std::vector<std::vector<double>> losses(ranks);
  std::vector<std::vector<float>> params(ranks);
  std::vector<size_t> gradient_bytes(ranks);
  const ww::testing::Rendezvous rendezvous;
  const auto errors = ww::testing::run_ranks(int(ranks), [&](int rank) {
    dist::JoinOptions join;
    join.timeout = std::chrono::seconds(60);
    std::unique_ptr<dist::ProcessGroup> host = dist::join(rendezvous.world(rank, int(ranks)), Device::cpu(), join);
    std::unique_ptr<dist::ProcessGroup> group =
        device.is_cuda() ? std::make_unique<ww::testing::HostBridgeGroup>(std::move(host), device) : std::move(host);
    models::SequenceClassifier model(config, device);
    model.init_weights(11);
    train::Trainer trainer(model, options_for(group.get()));
    for (int64_t i = 0; i < steps * 2; ++i) {
      const models::Batch batch = batch_of(i);
      const int64_t begin = B * rank / ranks, end = B * (rank + 1) / ranks;
      if (auto r = trainer.train_micro_batch_shard(models::slice_rows(batch, begin, end), 0.5, B))
        losses[size_t(rank)].push_back(r->loss);
    }
    params[size_t(rank)] = model.parameters().flat_values().to_float_vector();
    gradient_bytes[size_t(rank)] = trainer.gradient_bytes();
  });
  // Every rank's error (the first to fail is the cause; the others then time out waiting for it).
  for (int r = 0; r < ranks; ++r) EXPECT_EQ(errors[size_t(r)], "") << "rank " << r;
  if (::testing::Test::HasFailure()) return;
  const std::vector<std::pair<int64_t, int64_t>> layers = plain.layer_gradient_ranges();
  const int64_t layer = layers[0].second - layers[0].first;
  for (int r = 0; r < ranks; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    ASSERT_EQ(losses[size_t(r)].size(), expected.size());
    for (size_t s = 0; s < expected.size(); ++s) EXPECT_NEAR(losses[size_t(r)][s], expected[s], 1e-5 * std::abs(expected[s]));
    EXPECT_EQ(params[size_t(r)], params[0]);  // replicas identical
    // In units of the training's movement, as tools/compare_safetensors.py --moved-from compares
    // training: Adam moves an element with a tiny gradient (the attention key biases' is zero) a
    // full step on rounding noise, so a bound per element would measure the BLAS kernel's rounding.
    double diff2 = 0, moved2 = 0;
    for (size_t i = 0; i < expected_params.size(); ++i) {
      diff2 += std::pow(double(params[size_t(r)][i]) - expected_params[i], 2);
      moved2 += std::pow(double(expected_params[i]) - initial_params[i], 2);
    }
    EXPECT_GT(moved2, 0.0);
    EXPECT_LT(std::sqrt(diff2), 1e-3 * std::sqrt(moved2));
    const int64_t part = numel * (r + 1) / ranks - numel * r / ranks;
    EXPECT_EQ(gradient_bytes[size_t(r)], size_t(numel - 6 * layer + 2 * layer + part) * sizeof(float));
    EXPECT_LT(gradient_bytes[size_t(r)], size_t(numel) * sizeof(float));
  }
}

TEST(DataParallel, Zero2KeepsEachRanksPartOfTheGradientsAndTakesOneProcesssSteps) {
  zero2_in_slots_equals_one_process(Device::cpu());
}

TEST(DataParallelOnGpu, Zero2KeepsEachRanksPartOfTheGradientsAndTakesOneProcesssSteps) {
  WW_REQUIRE_CUDA();
  zero2_in_slots_equals_one_process(Device::cuda(0));
}

}  // namespace
}  // namespace ww
