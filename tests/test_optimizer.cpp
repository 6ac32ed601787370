// Optimizers, gradient clipping and LR schedules against torch.optim and transformers
// (tests/fixtures/optimizer/reference.json, from scripts/make_optimizer_fixtures.py), plus
// hand-computed cases and the properties the trainer relies on (loss-scale folding, skipped
// non-finite steps, state save/restore).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "wattwise/models/parameters.h"
#include "wattwise/ops/optimizer.h"
#include "wattwise/train/optimizer.h"
#include "wattwise/train/schedule.h"

using namespace ww;
using nlohmann::json;

namespace {

const json& fixture() {
  static const json data = [] {
    std::string path = std::string(WW_SOURCE_DIR) + "/tests/fixtures/optimizer/reference.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return json::parse(in);
  }();
  return data;
}

std::vector<float> floats(const json& values) {
  std::vector<float> out;
  for (const json& v : values) out.push_back(float(v.get<double>()));
  return out;
}

void copy_into(const Tensor& t, const std::vector<float>& values) {
  ASSERT_EQ(t.numel(), int64_t(values.size()));
  std::copy(values.begin(), values.end(), t.data<float>());
}

// |actual − expected| ≤ tolerance · max(|expected|, 1): relative for values of order one and
// above, absolute (the same size) for values near zero.
void expect_close(const std::vector<float>& actual, const std::vector<float>& expected,
                  double tolerance, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i)
    ASSERT_LE(std::fabs(double(actual[i]) - double(expected[i])),
              tolerance * std::max(1.0, std::fabs(double(expected[i]))))
        << what << "[" << i << "]: " << actual[i] << " vs " << expected[i];
}

// The fixture's parameters, registered in its order with its weight-decay flags.
models::ParameterStore fixture_store() {
  models::ParameterStore store;
  for (const json& p : fixture()["params"])
    store.add(p["name"].get<std::string>(), p["shape"].get<Shape>(), p["weight_decay"].get<bool>());
  store.allocate(Device::cpu());
  copy_into(store.flat_values(), floats(fixture()["initial_params"]));
  return store;
}

train::OptimizerOptions case_options(const json& c) {
  train::OptimizerOptions o;
  o.kind = train::parse_optimizer_kind(c["optimizer"].get<std::string>());
  o.weight_decay = c["weight_decay"].get<double>();
  if (c.contains("beta1")) {
    o.beta1 = c["beta1"].get<double>();
    o.beta2 = c["beta2"].get<double>();
    o.eps = c["eps"].get<double>();
  }
  if (c.contains("momentum")) {
    o.momentum = c["momentum"].get<double>();
    o.dampening = c["dampening"].get<double>();
    o.nesterov = c["nesterov"].get<bool>();
  }
  o.max_grad_norm = fixture()["max_grad_norm"].get<double>();
  return o;
}

train::LrSchedule fixture_schedule(double learning_rate) {
  train::ScheduleOptions s;
  s.kind = train::ScheduleKind::Cosine;
  s.learning_rate = learning_rate;
  s.total_steps = fixture()["steps"].get<int64_t>();
  s.warmup_steps = fixture()["warmup_steps"].get<int64_t>();
  return train::LrSchedule(s);
}

std::vector<float> state_values(const train::Optimizer& optimizer, const std::string& name) {
  for (const auto& [n, t] : optimizer.state())
    if (n == name) return t.to_float_vector();
  ADD_FAILURE() << "optimizer has no state tensor " << name;
  return {};
}

}  // namespace

// The main check: 20 steps of warmup + cosine, clipping and decay on a subset, against torch.
TEST(Optimizer, MatchesTorchOverTwentySteps) {
  const json& f = fixture();
  ASSERT_EQ(f["cases"].size(), 6u);
  for (const json& c : f["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    models::ParameterStore store = fixture_store();
    train::Optimizer optimizer(store, case_options(c));
    train::LrSchedule schedule = fixture_schedule(c["lr"].get<double>());
    int64_t steps = f["steps"].get<int64_t>();
    for (int64_t step = 0; step < steps; ++step) {
      copy_into(store.flat_grads(), floats(f["grads"][step]));
      double lr = schedule.lr(step);
      double expected_lr = c["lrs"][step].get<double>();
      ASSERT_NEAR(lr, expected_lr, 1e-15) << "lr at step " << step;
      train::StepReport report = optimizer.step(lr);
      ASSERT_TRUE(report.applied);
      float expected_norm = float(c["grad_norms"][step].get<double>());
      ASSERT_NEAR(report.grad_norm, expected_norm, 1e-6 * expected_norm) << "norm at step " << step;
      bool clipped = expected_norm > f["max_grad_norm"].get<double>();
      ASSERT_EQ(report.clip_coef < 1.0f, clipped) << "step " << step;
    }
    EXPECT_EQ(optimizer.steps_taken(), steps);
    expect_close(store.flat_values().to_float_vector(), floats(c["final_params"]), 1e-6, "params");
    for (const auto& [name, values] : c["state"].items())
      expect_close(state_values(optimizer, name), floats(values), 1e-6, name);
    // The momentum-free SGD keeps no buffer; Adam keeps no momentum buffer.
    size_t expected_state = c["state"].size() + 1;  // + "step"
    EXPECT_EQ(optimizer.state().size(), expected_state);
  }
}

// Clipping must actually matter for the fixture to test it: without it the result differs.
TEST(Optimizer, FixtureDependsOnClippingAndDecay) {
  const json& f = fixture();
  const json& c = f["cases"][0];  // adamw
  for (int variant = 0; variant < 2; ++variant) {
    models::ParameterStore store = fixture_store();
    train::OptimizerOptions o = case_options(c);
    if (variant == 0) o.max_grad_norm = 0;
    else o.weight_decay = 0;
    train::Optimizer optimizer(store, o);
    train::LrSchedule schedule = fixture_schedule(c["lr"].get<double>());
    for (int64_t step = 0; step < f["steps"].get<int64_t>(); ++step) {
      copy_into(store.flat_grads(), floats(f["grads"][step]));
      optimizer.step(schedule.lr(step));
    }
    std::vector<float> got = store.flat_values().to_float_vector();
    std::vector<float> want = floats(c["final_params"]);
    double max_diff = 0;
    for (size_t i = 0; i < got.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(got[i] - want[i])));
    EXPECT_GT(max_diff, 1e-4) << (variant == 0 ? "clipping" : "weight decay") << " had no effect";
  }
}

TEST(Schedule, MatchesTransformersCurves) {
  for (const json& curve : fixture()["schedules"]) {
    SCOPED_TRACE(curve["kind"].get<std::string>());
    train::ScheduleOptions s;
    s.kind = train::parse_schedule_kind(curve["kind"].get<std::string>());
    s.learning_rate = curve["learning_rate"].get<double>();
    s.total_steps = curve["total_steps"].get<int64_t>();
    s.warmup_steps = curve["warmup_steps"].get<int64_t>();
    train::LrSchedule schedule(s);
    const json& lrs = curve["lrs"];
    for (size_t step = 0; step < lrs.size(); ++step)
      EXPECT_NEAR(schedule.lr(int64_t(step)), lrs[step].get<double>(), 1e-18) << "step " << step;
  }
}

TEST(Schedule, HandComputedValues) {
  train::ScheduleOptions s;
  s.kind = train::ScheduleKind::Linear;
  s.learning_rate = 1.0;
  s.total_steps = 10;
  s.warmup_steps = 2;
  train::LrSchedule linear(s);
  EXPECT_DOUBLE_EQ(linear.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(linear.lr(1), 0.5);
  EXPECT_DOUBLE_EQ(linear.lr(2), 1.0);
  EXPECT_DOUBLE_EQ(linear.lr(6), 0.5);
  EXPECT_DOUBLE_EQ(linear.lr(10), 0.0);
  EXPECT_DOUBLE_EQ(linear.lr(12), 0.0);

  s.kind = train::ScheduleKind::Cosine;
  train::LrSchedule cosine(s);
  EXPECT_DOUBLE_EQ(cosine.lr(2), 1.0);
  EXPECT_NEAR(cosine.lr(6), 0.5, 1e-15);  // halfway down the half cosine
  EXPECT_NEAR(cosine.lr(10), 0.0, 1e-15);

  s.kind = train::ScheduleKind::Constant;
  s.warmup_steps.reset();
  s.total_steps = 0;  // constant needs no length
  train::LrSchedule constant(s);
  EXPECT_DOUBLE_EQ(constant.lr(0), 1.0);
  EXPECT_DOUBLE_EQ(constant.lr(1000000), 1.0);

  // Warmup ratio rounds up, as transformers: ceil(0.06 · 1001) = 61.
  s.kind = train::ScheduleKind::Linear;
  s.total_steps = 1001;
  s.warmup_ratio = 0.06;
  EXPECT_EQ(train::LrSchedule(s).warmup_steps(), 61);
  s.total_steps = 1000;
  EXPECT_EQ(train::LrSchedule(s).warmup_steps(), 60);
}

TEST(Schedule, BadValuesNameTheOption) {
  auto error_of = [](const train::ScheduleOptions& s) {
    try {
      train::LrSchedule schedule(s);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  train::ScheduleOptions s;
  s.total_steps = 100;
  train::ScheduleOptions bad = s;
  bad.warmup_ratio = 1.5;
  EXPECT_NE(error_of(bad).find("warmup_ratio"), std::string::npos) << error_of(bad);
  bad = s;
  bad.warmup_steps = -1;
  EXPECT_NE(error_of(bad).find("warmup_steps"), std::string::npos) << error_of(bad);
  bad = s;
  bad.warmup_steps = 101;
  EXPECT_NE(error_of(bad).find("exceeds total_steps"), std::string::npos) << error_of(bad);
  bad = s;
  bad.warmup_steps = 5;
  bad.warmup_ratio = 0.1;
  EXPECT_NE(error_of(bad).find("both"), std::string::npos) << error_of(bad);
  bad = s;
  bad.learning_rate = -1e-3;
  EXPECT_NE(error_of(bad).find("learning_rate"), std::string::npos) << error_of(bad);
  bad = s;
  bad.learning_rate = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(error_of(bad).find("learning_rate"), std::string::npos) << error_of(bad);
  bad = s;
  bad.kind = train::ScheduleKind::Cosine;
  bad.total_steps = 0;
  EXPECT_NE(error_of(bad).find("total_steps"), std::string::npos) << error_of(bad);
  try {
    train::parse_schedule_kind("exponential");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lr_schedule"), std::string::npos) << e.what();
  }
  EXPECT_EQ(train::parse_schedule_kind("Cosine"), train::ScheduleKind::Cosine);
  EXPECT_THROW(train::LrSchedule(s).lr(-1), Error);
}

// AdamW's first step by hand: m = 0.1 g, v = 0.001 g², so the update is lr · g / (|g| + ε) after
// bias correction, plus the decoupled decay p·(1 − lr·wd) on decayed elements only.
TEST(OptimizerOps, AdamwFirstStepByHand) {
  std::vector<float> p0 = {1.0f, -2.0f, 0.5f, 3.0f};
  std::vector<float> g = {0.2f, -0.4f, 1e-3f, -5.0f};
  Tensor params = Tensor::from_vector(p0, {4});
  Tensor grads = Tensor::from_vector(g, {4});
  Tensor m = Tensor::zeros({4}, DType::F32), v = Tensor::zeros({4}, DType::F32);
  Tensor ranges = Tensor::empty({1, 2}, DType::I64);
  ranges.data<int64_t>()[0] = 1;  // only elements 1 and 2 decay
  ranges.data<int64_t>()[1] = 3;
  ops::AdamStepArgs a;
  a.lr = 0.01;
  a.weight_decay = 0.5;
  a.eps = 1e-8;
  ops::adamw_step(params, grads, m, v, ranges, a);
  std::vector<float> got = params.to_float_vector();
  for (size_t i = 0; i < 4; ++i) {
    double decay = (i == 1 || i == 2) ? 1.0 - 0.01 * 0.5 : 1.0;
    double expected = p0[i] * decay - 0.01 * g[i] / (std::fabs(g[i]) + 1e-8);
    EXPECT_NEAR(got[i], expected, 1e-6) << i;
    EXPECT_NEAR(m.data<float>()[i], 0.1 * g[i], 1e-6 * std::fabs(0.1 * g[i])) << i;
    EXPECT_NEAR(v.data<float>()[i], 0.001 * g[i] * g[i], 1e-6 * (0.001 * g[i] * g[i])) << i;
  }
}

// Adam's L2 enters the gradient, so it is normalised away on step 1: p −= lr·sign(g + wd·p).
TEST(OptimizerOps, AdamL2GoesThroughTheGradient) {
  Tensor params = Tensor::from_vector(std::vector<float>{2.0f, 2.0f}, {2});
  Tensor grads = Tensor::from_vector(std::vector<float>{-0.5f, -0.5f}, {2});
  Tensor m = Tensor::zeros({2}, DType::F32), v = Tensor::zeros({2}, DType::F32);
  Tensor ranges = Tensor::empty({1, 2}, DType::I64);
  ranges.data<int64_t>()[0] = 0;
  ranges.data<int64_t>()[1] = 1;  // element 0 decays: g + 0.5·2 = +0.5 flips the sign
  ops::AdamStepArgs a;
  a.lr = 0.1;
  a.weight_decay = 0.5;
  a.decoupled = false;
  ops::adamw_step(params, grads, m, v, ranges, a);
  EXPECT_NEAR(params.data<float>()[0], 2.0 - 0.1, 1e-6);
  EXPECT_NEAR(params.data<float>()[1], 2.0 + 0.1, 1e-6);
}

TEST(OptimizerOps, SgdMomentumByHand) {
  Tensor params = Tensor::from_vector(std::vector<float>{1.0f}, {1});
  Tensor grads = Tensor::from_vector(std::vector<float>{2.0f}, {1});
  Tensor buf = Tensor::from_vector(std::vector<float>{123.0f}, {1});  // ignored on step 1
  ops::SgdStepArgs a;
  a.lr = 0.1;
  a.momentum = 0.9;
  a.nesterov = true;
  a.step = 1;
  ops::sgd_step(params, grads, buf, Tensor{}, a);
  // buf = g = 2; nesterov g' = 2 + 0.9·2 = 3.8; p = 1 − 0.38.
  EXPECT_FLOAT_EQ(buf.data<float>()[0], 2.0f);
  EXPECT_NEAR(params.data<float>()[0], 0.62, 1e-6);
  a.step = 2;
  a.nesterov = false;
  a.dampening = 0.5;
  ops::sgd_step(params, grads, buf, Tensor{}, a);
  // buf = 0.9·2 + 0.5·2 = 2.8; p = 0.62 − 0.28.
  EXPECT_NEAR(buf.data<float>()[0], 2.8, 1e-6);
  EXPECT_NEAR(params.data<float>()[0], 0.34, 1e-6);
}

TEST(OptimizerOps, DecayRangesSpanChunksAndMatchPerElementMask) {
  // Large enough for several kernel chunks, with ranges crossing chunk boundaries.
  const int64_t n = 70000;
  std::vector<float> p(n), g(n);
  for (int64_t i = 0; i < n; ++i) {
    p[i] = 1.0f + float(i % 7) * 0.1f;
    g[i] = 0.0f;  // no gradient: only decay moves the parameters
  }
  std::vector<int64_t> r = {5, 16390, 16400, 16401, 40000, 69999};
  Tensor ranges = Tensor::empty({3, 2}, DType::I64);
  std::copy(r.begin(), r.end(), ranges.data<int64_t>());
  Tensor params = Tensor::from_vector(p, {n}), grads = Tensor::from_vector(g, {n});
  Tensor buf = Tensor::zeros({n}, DType::F32);
  ops::SgdStepArgs a;
  a.lr = 0.5;
  a.weight_decay = 0.5;  // p −= 0.5·0.5·p on decayed elements
  ops::sgd_step(params, grads, buf, ranges, a);
  const float* out = params.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    bool decayed = (i >= 5 && i < 16390) || i == 16400 || (i >= 40000 && i < 69999);
    float expected = decayed ? p[i] + (-0.5f) * (p[i] * 0.5f) : p[i];
    ASSERT_FLOAT_EQ(out[i], expected) << i;
  }
}

TEST(OptimizerOps, UndefinedRangesDecayAllEmptyRangesNone) {
  for (bool all : {true, false}) {
    Tensor params = Tensor::from_vector(std::vector<float>{1.0f, 2.0f}, {2});
    Tensor grads = Tensor::zeros({2}, DType::F32);
    ops::SgdStepArgs a;
    a.lr = 1.0;
    a.weight_decay = 0.25;
    ops::sgd_step(params, grads, Tensor{}, all ? Tensor{} : Tensor::empty({0, 2}, DType::I64), a);
    EXPECT_FLOAT_EQ(params.data<float>()[1], all ? 1.5f : 2.0f);
  }
}

TEST(OptimizerOps, BadArgumentsAreErrors) {
  Tensor params = Tensor::zeros({4}, DType::F32), grads = Tensor::zeros({4}, DType::F32);
  Tensor m = Tensor::zeros({4}, DType::F32), v = Tensor::zeros({3}, DType::F32);
  ops::AdamStepArgs a;
  EXPECT_THROW(ops::adamw_step(params, grads, m, v, Tensor{}, a), Error);  // v too short
  Tensor unsorted = Tensor::empty({2, 2}, DType::I64);
  int64_t r[] = {2, 3, 0, 1};
  std::copy(r, r + 4, unsorted.data<int64_t>());
  EXPECT_THROW(ops::adamw_step(params, grads, m, m, unsorted, a), Error);
  Tensor past_end = Tensor::empty({1, 2}, DType::I64);
  past_end.data<int64_t>()[0] = 0;
  past_end.data<int64_t>()[1] = 5;
  EXPECT_THROW(ops::adamw_step(params, grads, m, m, past_end, a), Error);
  a.step = 0;
  EXPECT_THROW(ops::adamw_step(params, grads, m, m, Tensor{}, a), Error);
  ops::SgdStepArgs s;
  s.nesterov = true;  // without momentum
  EXPECT_THROW(ops::sgd_step(params, grads, Tensor{}, Tensor{}, s), Error);
  s.nesterov = false;
  s.momentum = 0.9;  // momentum without a buffer
  EXPECT_THROW(ops::sgd_step(params, grads, Tensor{}, Tensor{}, s), Error);
}

TEST(OptimizerOps, GlobalGradNorm) {
  EXPECT_FLOAT_EQ(ops::global_grad_norm(Tensor::from_vector(std::vector<float>{3, 4}, {2})), 5.0f);
  // Squares of large floats overflow float but not the double accumulator.
  float big = 3e30f;
  EXPECT_NEAR(ops::global_grad_norm(Tensor::from_vector(std::vector<float>{big, big}, {2})),
              big * std::sqrt(2.0f), 1e24);
  std::vector<float> many(100003, 0.5f);
  EXPECT_NEAR(ops::global_grad_norm(Tensor::from_vector(many, {100003})),
              0.5 * std::sqrt(100003.0), 1e-3);
  float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(std::isnan(ops::global_grad_norm(Tensor::from_vector(std::vector<float>{1, nan}, {2}))));
  EXPECT_TRUE(std::isinf(ops::global_grad_norm(Tensor::from_vector(std::vector<float>{1, -inf}, {2}))));
}

TEST(OptimizerClass, DecayRangesFollowFlagsAndMerge) {
  models::ParameterStore store;
  store.add("a.weight", {2, 3}, true);
  store.add("b.weight", {4}, true);  // adjacent to a: one range
  store.add("b.bias", {4}, false);
  store.add("LayerNorm.weight", {4}, false);
  store.add("c.weight", {5}, true);
  store.allocate(Device::cpu());
  Tensor r = train::decay_ranges(store);
  ASSERT_EQ(r.shape(), (Shape{2, 2}));
  const int64_t* d = r.data<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(d, d + 4), (std::vector<int64_t>{0, 10, 18, 23}));
}

// 1/1024 loss-scale unscaling folded into the step gives bit-identical results to unscaled grads.
TEST(OptimizerClass, GradScaleFoldsLossScaling) {
  const json& f = fixture();
  for (const json& c : f["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    models::ParameterStore plain = fixture_store(), scaled = fixture_store();
    train::Optimizer a(plain, case_options(c)), b(scaled, case_options(c));
    train::LrSchedule schedule = fixture_schedule(c["lr"].get<double>());
    for (int64_t step = 0; step < 8; ++step) {
      std::vector<float> g = floats(f["grads"][step]);
      copy_into(plain.flat_grads(), g);
      for (float& x : g) x *= 1024.0f;
      copy_into(scaled.flat_grads(), g);
      train::StepReport ra = a.step(schedule.lr(step));
      train::StepReport rb = b.step(schedule.lr(step), 1.0f / 1024.0f);
      ASSERT_EQ(ra.grad_norm, rb.grad_norm);
      ASSERT_EQ(ra.clip_coef, rb.clip_coef);
    }
    EXPECT_EQ(plain.flat_values().to_float_vector(), scaled.flat_values().to_float_vector());
  }
}

TEST(OptimizerClass, NonFiniteGradientsSkipTheStep) {
  models::ParameterStore store = fixture_store();
  train::Optimizer optimizer(store, case_options(fixture()["cases"][0]));
  copy_into(store.flat_grads(), floats(fixture()["grads"][0]));
  optimizer.step(1e-2);
  std::vector<float> before = store.flat_values().to_float_vector();
  std::vector<float> m_before = state_values(optimizer, "exp_avg");
  store.flat_grads().data<float>()[7] = std::numeric_limits<float>::infinity();
  train::StepReport report = optimizer.step(1e-2);
  EXPECT_FALSE(report.applied);
  EXPECT_TRUE(std::isinf(report.grad_norm));
  EXPECT_EQ(optimizer.steps_taken(), 1);
  EXPECT_EQ(store.flat_values().to_float_vector(), before);
  EXPECT_EQ(state_values(optimizer, "exp_avg"), m_before);
  store.flat_grads().data<float>()[7] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(optimizer.step(1e-2).applied);
}

// Saving the state after 10 steps and restoring it into a fresh optimizer continues exactly.
TEST(OptimizerClass, StateRoundTripContinuesExactly) {
  const json& f = fixture();
  for (const json& c : f["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    train::LrSchedule schedule = fixture_schedule(c["lr"].get<double>());
    models::ParameterStore store = fixture_store();
    std::map<std::string, Tensor> saved;
    {
      train::Optimizer first(store, case_options(c));
      for (int64_t step = 0; step < 10; ++step) {
        copy_into(store.flat_grads(), floats(f["grads"][step]));
        first.step(schedule.lr(step));
      }
      for (const auto& [name, t] : first.state()) saved[name] = t.to(Device::cpu());  // snapshot
    }
    train::Optimizer second(store, case_options(c));
    second.load_state(saved);
    EXPECT_EQ(second.steps_taken(), 10);
    for (int64_t step = 10; step < 20; ++step) {
      copy_into(store.flat_grads(), floats(f["grads"][step]));
      second.step(schedule.lr(step));
    }
    expect_close(store.flat_values().to_float_vector(), floats(c["final_params"]), 1e-6, "params");
  }
}

TEST(OptimizerClass, LoadStateRejectsBadTensors) {
  models::ParameterStore store = fixture_store();
  train::Optimizer optimizer(store, case_options(fixture()["cases"][0]));
  std::map<std::string, Tensor> good;
  for (const auto& [name, t] : optimizer.state()) good[name] = t.to(Device::cpu());
  auto message = [&](const std::map<std::string, Tensor>& tensors) {
    try {
      optimizer.load_state(tensors);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto missing = good;
  missing.erase("exp_avg_sq");
  EXPECT_NE(message(missing).find("'exp_avg_sq' is missing"), std::string::npos) << message(missing);
  auto wrong_size = good;
  wrong_size["exp_avg"] = Tensor::zeros({5}, DType::F32);
  EXPECT_NE(message(wrong_size).find("'exp_avg'"), std::string::npos) << message(wrong_size);
  auto extra = good;
  extra["momentum_buffer"] = Tensor::zeros({store.numel()}, DType::F32);
  EXPECT_NE(message(extra).find("'momentum_buffer'"), std::string::npos) << message(extra);
  EXPECT_EQ(message(good), "no error");
}

TEST(OptimizerClass, BadOptionsNameTheOption) {
  auto message = [](const train::OptimizerOptions& o) {
    try {
      train::validate(o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  train::OptimizerOptions o;
  o.beta2 = 1.5;
  EXPECT_NE(message(o).find("beta2"), std::string::npos) << message(o);
  o = {};
  o.weight_decay = -0.1;
  EXPECT_NE(message(o).find("weight_decay"), std::string::npos) << message(o);
  o = {};
  o.max_grad_norm = -1;
  EXPECT_NE(message(o).find("max_grad_norm"), std::string::npos) << message(o);
  o = {};
  o.kind = train::OptimizerKind::SGD;
  o.nesterov = true;
  EXPECT_NE(message(o).find("nesterov"), std::string::npos) << message(o);
  EXPECT_EQ(train::parse_optimizer_kind("AdamW"), train::OptimizerKind::AdamW);
  try {
    train::parse_optimizer_kind("lamb");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer"), std::string::npos);
  }
  models::ParameterStore unallocated;
  unallocated.add("w", {2}, true);
  EXPECT_THROW(train::Optimizer(unallocated, train::OptimizerOptions{}), Error);
}

TEST(OptimizerClass, ClipCoefficientAsTorch) {
  EXPECT_FLOAT_EQ(train::clip_coefficient(2.0f, 1.0), 1.0f / (2.0f + 1e-6f));
  EXPECT_EQ(train::clip_coefficient(0.5f, 1.0), 1.0f);
  EXPECT_EQ(train::clip_coefficient(0.0f, 1.0), 1.0f);
}
