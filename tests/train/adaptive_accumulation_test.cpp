// Adaptive gradient accumulation (train.grad_accum auto): the noise-scale estimator and the policy
// on synthetic gradients whose noise is known, and the trainer's measurements on a real model in one
// process and over two ranks (ZeRO 0, 1 and 2 measure alike).
//
// Synthetic problem: per-example gradients g = G + ε, ε ~ N(0, σ² I) in d dimensions, so
// tr(Σ) = d σ² and the noise scale is B_noise = d σ² / |G|². A micro-batch of b examples has mean
// gradient G + N(0, σ²/b I) and a step of k micro-batches G + N(0, σ²/(k b) I); the policy should
// settle on k = round(B_noise / b). With d = 20000 each measured squared norm is a chi-square of
// 20000 degrees of freedom (relative spread ~1%), smoothed over ~10 steps, so the estimate lands
// within a few percent of B_noise: the predicted k is chosen well inside its rounding interval.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "dist_test_util.h"
#include "model_test_util.h"
#include "wattwise/core/error.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/ops/optimizer.h"
#include "wattwise/train/adaptive_accumulation.h"
#include "wattwise/train/trainer.h"

namespace ww {
namespace {

using train::AdaptiveAccumulation;
using train::AdaptiveAccumulationOptions;
using train::NoiseMeasurement;

// Gradients of the synthetic problem, drawn from a fixed seed (Box-Muller over mt19937_64, whose
// output the standard fixes, so every platform draws the same numbers).
class SyntheticGradients {
 public:
  SyntheticGradients(int64_t dims, double gradient_norm, uint64_t seed)
      : dims_(dims), mean_(double(gradient_norm) / std::sqrt(double(dims))), rng_(seed) {}
  // tr(Σ) = d σ²: the per-coordinate spread of one example's gradient follows.
  void set_noise_trace(double trace) { sigma_ = std::sqrt(trace / double(dims_)); }
  double true_noise_scale() const { return double(dims_) * sigma_ * sigma_ / (double(dims_) * mean_ * mean_); }

  // One step of k micro-batches of b examples: the first micro-batch's and the step's squared norms.
  NoiseMeasurement step(int64_t k, int64_t b) {
    std::vector<double> sum(size_t(dims_), 0.0), first;
    for (int64_t m = 0; m < k; ++m) {
      const double spread = sigma_ / std::sqrt(double(b));
      std::vector<double> micro(static_cast<size_t>(dims_));
      for (auto& v : micro) v = mean_ + spread * normal();
      if (m == 0) first = micro;
      for (size_t i = 0; i < micro.size(); ++i) sum[i] += micro[i];
    }
    NoiseMeasurement out;
    for (size_t i = 0; i < sum.size(); ++i) {
      out.small_squared_norm += first[i] * first[i];
      out.big_squared_norm += (sum[i] / double(k)) * (sum[i] / double(k));
    }
    out.small_examples = double(b);
    out.big_examples = double(k * b);
    return out;
  }

 private:
  double normal() {
    if (spare_) {
      spare_ = false;
      return spare_value_;
    }
    const double u1 = (double(rng_() >> 11) + 1.0) / 9007199254740993.0, u2 = double(rng_() >> 11) / 9007199254740992.0;
    const double r = std::sqrt(-2.0 * std::log(u1)), angle = 6.283185307179586 * u2;
    spare_ = true;
    spare_value_ = r * std::sin(angle);
    return r * std::cos(angle);
  }
  int64_t dims_;
  double mean_, sigma_ = 1.0;
  std::mt19937_64 rng_;
  bool spare_ = false;
  double spare_value_ = 0;
};

AdaptiveAccumulationOptions options(int64_t min, int64_t max, double smoothing = 0.9) {
  AdaptiveAccumulationOptions o;
  o.min_micro_batches = min;
  o.max_micro_batches = max;
  o.smoothing = smoothing;
  return o;
}

TEST(AdaptiveAccumulation, PicksThePredictedMicroBatchCountOnKnownNoise) {
  const int64_t b = 8;
  SyntheticGradients gradients(20000, 1.0, 7);
  // B_noise = tr(Σ) / |G|² = 96 examples (|G| = 1): 12 micro-batches of 8.
  gradients.set_noise_trace(96.0);
  AdaptiveAccumulation policy(options(2, 64), b);
  EXPECT_EQ(policy.micro_batches(), 2);  // nothing measured yet: the smallest
  EXPECT_TRUE(std::isnan(policy.noise_scale()));
  for (int step = 0; step < 60; ++step) policy.observe(gradients.step(policy.micro_batches(), b));
  EXPECT_NEAR(policy.noise_scale(), gradients.true_noise_scale(), 0.03 * gradients.true_noise_scale());
  EXPECT_NEAR(policy.gradient_squared_norm(), 1.0, 0.03);
  EXPECT_NEAR(policy.noise_trace(), 96.0, 0.03 * 96.0);
  EXPECT_EQ(policy.micro_batches(), 12);

  // The noise grows fourfold (as it does when the loss falls): k follows to 48.
  gradients.set_noise_trace(384.0);
  for (int step = 0; step < 60; ++step) policy.observe(gradients.step(policy.micro_batches(), b));
  EXPECT_NEAR(policy.noise_scale(), 384.0, 0.03 * 384.0);
  EXPECT_EQ(policy.micro_batches(), 48);
}

TEST(AdaptiveAccumulation, StaysWithinItsBounds) {
  const int64_t b = 8;
  SyntheticGradients gradients(20000, 1.0, 11);
  gradients.set_noise_trace(96.0);  // asks for 12
  AdaptiveAccumulation capped(options(2, 6), b);
  for (int step = 0; step < 30; ++step) capped.observe(gradients.step(capped.micro_batches(), b));
  EXPECT_EQ(capped.micro_batches(), 6);
  gradients.set_noise_trace(4.0);  // asks for 0.5
  AdaptiveAccumulation floored(options(3, 64), b);
  for (int step = 0; step < 30; ++step) floored.observe(gradients.step(floored.micro_batches(), b));
  EXPECT_EQ(floored.micro_batches(), 3);
}

TEST(AdaptiveAccumulation, EstimatesFromOneStepExactlyWithoutSmoothing) {
  // |G_b|² = |G|² + tr/b: with |G|² = 2 and tr = 48, b = 4 gives 14 and B = 16 gives 5.
  AdaptiveAccumulation policy(options(2, 64, 0.0), 4);
  policy.observe({14.0, 4.0, 5.0, 16.0});
  EXPECT_DOUBLE_EQ(policy.gradient_squared_norm(), 2.0);
  EXPECT_DOUBLE_EQ(policy.noise_trace(), 48.0);
  EXPECT_DOUBLE_EQ(policy.noise_scale(), 24.0);
  EXPECT_EQ(policy.micro_batches(), 6);  // 24 examples / 4 per micro-batch
  // All noise (|G|² estimated at or below 0): the most micro-batches.
  policy.observe({20.0, 4.0, 4.0, 16.0});
  EXPECT_TRUE(std::isinf(policy.noise_scale()));
  EXPECT_EQ(policy.micro_batches(), 64);
  // No noise (the larger batch's norm not smaller): the fewest.
  policy.observe({5.0, 4.0, 6.0, 16.0});
  EXPECT_DOUBLE_EQ(policy.noise_scale(), 0.0);
  EXPECT_EQ(policy.micro_batches(), 2);
  policy.observe({20.0, 4.0, 4.0, 16.0});
  EXPECT_TRUE(std::isinf(policy.noise_scale()));
  EXPECT_EQ(policy.micro_batches(), 64);
  // Non-finite norms (an fp16 overflow) are not measurements.
  const auto before = policy.state();
  policy.observe({INFINITY, 4.0, 5.0, 16.0});
  policy.observe({14.0, 4.0, NAN, 16.0});
  EXPECT_EQ(policy.state().measurements, before.measurements);
}

TEST(AdaptiveAccumulation, TheSmoothedEstimateIsBiasCorrected) {
  // After one measurement the EMA holds (1 - β) x; corrected, the estimate is x itself.
  AdaptiveAccumulation policy(options(2, 64, 0.9), 4);
  policy.observe({14.0, 4.0, 5.0, 16.0});
  EXPECT_NEAR(policy.gradient_squared_norm(), 2.0, 1e-12);
  EXPECT_NEAR(policy.noise_trace(), 48.0, 1e-12);
  EXPECT_EQ(policy.micro_batches(), 6);
}

TEST(AdaptiveAccumulation, LearningRateFollowsTheEffectiveBatch) {
  AdaptiveAccumulationOptions o = options(4, 64);
  o.lr_scaling = train::LrScaling::Linear;
  EXPECT_DOUBLE_EQ(AdaptiveAccumulation(o, 8).lr_multiplier(16), 4.0);
  o.lr_scaling = train::LrScaling::Sqrt;
  EXPECT_DOUBLE_EQ(AdaptiveAccumulation(o, 8).lr_multiplier(16), 2.0);
  o.lr_scaling = train::LrScaling::None;
  EXPECT_DOUBLE_EQ(AdaptiveAccumulation(o, 8).lr_multiplier(16), 1.0);
  EXPECT_EQ(train::parse_lr_scaling("sqrt"), train::LrScaling::Sqrt);
  EXPECT_THROW(train::parse_lr_scaling("square"), Error);
}

TEST(AdaptiveAccumulation, OptionsAndStateAreChecked) {
  EXPECT_THROW(AdaptiveAccumulation(options(1, 8), 4), Error);  // one micro-batch measures nothing
  EXPECT_THROW(AdaptiveAccumulation(options(8, 4), 4), Error);
  EXPECT_THROW(AdaptiveAccumulation(options(2, 8, 1.0), 4), Error);
  AdaptiveAccumulation policy(options(2, 8, 0.0), 4);
  policy.observe({14.0, 4.0, 5.0, 16.0});
  const nlohmann::json saved = train::to_json(policy.state());
  AdaptiveAccumulation restored(options(2, 8, 0.0), 4);
  restored.restore(train::adaptive_state_from_json(saved, "state.json"));
  EXPECT_EQ(restored.micro_batches(), policy.micro_batches());
  EXPECT_DOUBLE_EQ(restored.noise_scale(), policy.noise_scale());
  nlohmann::json broken = saved;
  broken.erase("noise_ema");
  try {
    train::adaptive_state_from_json(broken, "state.json");
    FAIL() << "a state without noise_ema was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("state.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("noise_ema"), std::string::npos) << e.what();
  }
  AdaptiveAccumulation narrower(options(2, 4, 0.0), 4);
  EXPECT_THROW(narrower.restore(policy.state()), Error);  // k 6 is outside 2..4
}

// ---- the trainer's measurements on a real model ----

constexpr int64_t kRows = 4, kSeq = 12;

models::ModelConfig model_config() {
  models::ModelConfig config = testing::test_config(models::Architecture::Bert);
  config.num_layers = 6;  // ZeRO 2 keeps the layers' gradients in slots
  config.hidden_dropout = config.attention_dropout = config.classifier_dropout = 0;
  return config;
}

models::Batch batch_of(int64_t i) { return testing::make_batch(kRows, kSeq, 500 + uint64_t(i), true, Device::cpu()); }

train::TrainerOptions adaptive_options(dist::ProcessGroup* group, int zero, double smoothing) {
  train::TrainerOptions o;
  o.schedule.kind = train::ScheduleKind::Constant;
  o.schedule.learning_rate = 1e-3;
  o.schedule.total_steps = 100;
  o.adaptive = options(2, 8, smoothing);
  o.micro_batch_examples = kRows;
  o.group = group;
  o.zero = zero;
  return o;
}

// The squared norm of the mean gradient over `batches` (each of its own mean loss), from the
// initial weights.
double squared_gradient_norm(const std::vector<models::Batch>& batches) {
  models::SequenceClassifier model(model_config(), Device::cpu());
  model.init_weights(21);
  model.zero_grad();
  for (const auto& b : batches) {
    model.forward(b, /*training=*/true);
    model.backward(1.0f);
  }
  const double norm = double(ops::global_grad_norm(model.parameters().flat_grads())) / double(batches.size());
  return norm * norm;
}

TEST(AdaptiveAccumulationTrainer, MeasuresTheFirstMicroBatchAndTheWholeStep) {
  models::SequenceClassifier model(model_config(), Device::cpu());
  model.init_weights(21);
  train::Trainer trainer(model, adaptive_options(nullptr, 0, 0.0));
  EXPECT_EQ(trainer.grad_accum(), 2);
  EXPECT_FALSE(trainer.train_micro_batch(batch_of(0)).has_value());
  std::optional<train::StepResult> r = trainer.train_micro_batch(batch_of(1));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->grad_accum, 2);
  EXPECT_EQ(r->examples, 2 * kRows);

  // The same two norms computed apart from the trainer, fed to a policy of the same options.
  // Both norms to float rounding (1e-6 relative), which the differences of the estimates amplify at
  // most by B / (B - b) = 2 and 1 / (1/b - 1/B) = 2b.
  const double small = squared_gradient_norm({batch_of(0)}), big = squared_gradient_norm({batch_of(0), batch_of(1)});
  AdaptiveAccumulation expected(options(2, 8, 0.0), kRows);
  expected.observe({small, double(kRows), big, double(2 * kRows)});
  ASSERT_NE(trainer.adaptive(), nullptr);
  EXPECT_NEAR(trainer.adaptive()->gradient_squared_norm(), expected.gradient_squared_norm(), 1e-4 * small);
  EXPECT_NEAR(trainer.adaptive()->noise_trace(), expected.noise_trace(), 1e-4 * small * 2 * kRows);
  EXPECT_GT(expected.noise_trace(), 0);  // micro-batches of 4 differ
  EXPECT_EQ(trainer.grad_accum(), expected.micro_batches());
  // The next step accumulates that many micro-batches.
  for (int64_t i = 0; i + 1 < trainer.grad_accum(); ++i) EXPECT_FALSE(trainer.train_micro_batch(batch_of(2 + i)));
  r = trainer.train_micro_batch(batch_of(10));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->grad_accum, expected.micro_batches());
}

// Steps of a trainer over the micro-batches 0, 1, 2, ...: each step's k, its noise scale (may be
// +inf) and the estimates behind it.
struct Trace {
  std::vector<int64_t> k;
  std::vector<double> noise, gradient, trace;
};

Trace run_steps(train::Trainer& trainer, int64_t steps, int64_t& next_batch, int rank = 0, int ranks = 1) {
  Trace t;
  while (int64_t(t.k.size()) < steps) {
    const models::Batch batch = batch_of(next_batch++);
    const int64_t begin = kRows * rank / ranks, end = kRows * (rank + 1) / ranks;
    std::optional<train::StepResult> r =
        ranks == 1 ? trainer.train_micro_batch(batch)
                   : trainer.train_micro_batch_shard(models::slice_rows(batch, begin, end), 1.0 / ranks, kRows);
    if (!r) continue;
    t.k.push_back(r->grad_accum);
    t.noise.push_back(r->noise_scale);
    t.gradient.push_back(trainer.adaptive()->gradient_squared_norm());
    t.trace.push_back(trainer.adaptive()->noise_trace());
  }
  return t;
}

TEST(AdaptiveAccumulationTrainer, AResumedTrainerChoosesAsTheUninterruptedOne) {
  auto make = [] {
    auto model = std::make_unique<models::SequenceClassifier>(model_config(), Device::cpu());
    model->init_weights(21);
    return model;
  };
  auto whole_model = make();
  train::Trainer whole(*whole_model, adaptive_options(nullptr, 0, 0.5));
  int64_t batch = 0;
  const Trace expected = run_steps(whole, 5, batch);

  auto first_model = make();
  train::Trainer first(*first_model, adaptive_options(nullptr, 0, 0.5));
  batch = 0;
  Trace got = run_steps(first, 2, batch);
  const nlohmann::json state = train::to_json(first.state());
  ASSERT_TRUE(state.contains("adaptive_accumulation")) << state.dump();
  // A new trainer on the same weights and optimizer state, restored from the checkpointed state.
  train::Trainer second(*first_model, adaptive_options(nullptr, 0, 0.5));
  std::map<std::string, Tensor> optimizer_state;
  for (auto& [name, tensor] : first.optimizer().state()) optimizer_state.emplace(name, tensor);
  second.optimizer().load_state(optimizer_state);
  second.restore(train::trainer_state_from_json(state, "trainer.json"));
  EXPECT_EQ(second.grad_accum(), first.grad_accum());
  const Trace rest = run_steps(second, 3, batch);
  got.k.insert(got.k.end(), rest.k.begin(), rest.k.end());
  got.noise.insert(got.noise.end(), rest.noise.begin(), rest.noise.end());
  EXPECT_EQ(got.k, expected.k);
  for (size_t i = 0; i < expected.noise.size(); ++i) EXPECT_DOUBLE_EQ(got.noise[i], expected.noise[i]) << "step " << i;
}

// Two thread ranks through Gloo, each on half of every micro-batch: both choose the same k every
// step, and ZeRO 0, 1 and 2 (whose first micro-batch's squares are taken slot by slot) measure the
// same noise.
TEST(AdaptiveAccumulationTrainer, RanksAgreeAndZeroStagesMeasureAlike) {
  const int ranks = 2;
  const int64_t steps = 4;
  std::vector<Trace> by_stage;
  for (int zero : {0, 1, 2}) {
    SCOPED_TRACE("ZeRO " + std::to_string(zero));
    std::vector<Trace> traces(ranks);
    std::vector<size_t> gradient_bytes(ranks);
    const testing::Rendezvous rendezvous;
    const auto errors = testing::run_ranks(ranks, [&](int rank) {
      dist::JoinOptions join;
      join.timeout = std::chrono::seconds(60);
      std::unique_ptr<dist::ProcessGroup> group = dist::join(rendezvous.world(rank, ranks), Device::cpu(), join);
      models::SequenceClassifier model(model_config(), Device::cpu());
      model.init_weights(21);
      train::Trainer trainer(model, adaptive_options(group.get(), zero, 0.9));
      int64_t batch = 0;
      traces[size_t(rank)] = run_steps(trainer, steps, batch, rank, ranks);
      gradient_bytes[size_t(rank)] = trainer.gradient_bytes();
    });
    for (int r = 0; r < ranks; ++r) ASSERT_EQ(errors[size_t(r)], "") << "rank " << r;
    EXPECT_EQ(traces[0].k, traces[1].k);
    EXPECT_EQ(traces[0].noise, traces[1].noise);
    if (zero == 2) {  // the measurement did not need the whole buffer
      const int64_t numel = models::SequenceClassifier(model_config(), Device::cpu()).parameters().numel();
      EXPECT_LT(gradient_bytes[0], size_t(numel) * sizeof(float));
    }
    by_stage.push_back(traces[0]);
  }
  for (size_t stage = 1; stage < by_stage.size(); ++stage) {
    EXPECT_EQ(by_stage[stage].k, by_stage[0].k) << "ZeRO " << stage;
    for (size_t i = 0; i < by_stage[0].trace.size(); ++i) {
      const double scale = std::abs(by_stage[0].trace[i]) + std::abs(by_stage[0].gradient[i]) * kRows;
      EXPECT_NEAR(by_stage[stage].trace[i], by_stage[0].trace[i], 1e-3 * scale) << "ZeRO " << stage << " step " << i;
      EXPECT_NEAR(by_stage[stage].gradient[i], by_stage[0].gradient[i], 1e-3 * scale / kRows)
          << "ZeRO " << stage << " step " << i;
    }
  }
}

}  // namespace
}  // namespace ww
