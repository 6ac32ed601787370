// train::Optimizer (AdamW, Adam, SGD with gradient clipping) against torch.optim
// (tests/fixtures/optimizer/reference.json, from scripts/make_optimizer_fixtures.py), and the
// properties the trainer relies on: decay ranges from the parameters' flags, loss-scale folding,
// skipped non-finite steps, state save/restore, option errors. On a GPU (skipped without one): the
// same optimizer over parameters on the device against the CPU, to 1e-6 relative. The optimizer
// kernels themselves are tested in tests/test_optimizer.cpp and tests/test_cuda_optimizer.cpp.
#include <gtest/gtest.h>

#include "test_util.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cuda_compare.h"
#include "dist_test_util.h"
#include "cuda_test_util.h"
#include "wattwise/models/parameters.h"
#include "wattwise/train/optimizer.h"
#include "wattwise/train/schedule.h"

using namespace ww;
using nlohmann::json;

namespace {

const json& fixture() {
  static const json data = ww::testing::read_json_fixture("optimizer/reference.json");
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

// ZeRO stage 1: three ranks (threads with a Gloo group), each updating its part of the flat
// buffers, against one unsharded optimizer on the torch fixture's 20 steps with clipping and decay.
// The update of each element is the same arithmetic either way; only the norm's sum is split, so
// the parameters agree to rounding. Each rank's state is its part of the unsharded one, and loads
// back bit for bit.
TEST(OptimizerClass, ShardedStateGivesTheUnshardedSteps) {
  const json& f = fixture();
  const json& c = f["cases"][0];  // AdamW
  const int ranks = 3;
  const ww::testing::Rendezvous rendezvous;
  const int64_t steps = f["steps"].get<int64_t>();

  models::ParameterStore reference_store = fixture_store();
  train::Optimizer reference(reference_store, case_options(c));
  train::LrSchedule schedule = fixture_schedule(c["lr"].get<double>());
  for (int64_t step = 0; step < steps; ++step) {
    copy_into(reference_store.flat_grads(), floats(f["grads"][step]));
    reference.step(schedule.lr(step));
  }
  const std::vector<float> expected_params = reference_store.flat_values().to_float_vector();
  const std::vector<float> expected_avg = state_values(reference, "exp_avg");

  std::vector<std::vector<float>> params(ranks), part_avg(ranks), reloaded_avg(ranks);
  std::vector<size_t> bytes(ranks);
  std::vector<int64_t> begins(ranks);
  const auto errors = ww::testing::run_ranks(ranks, [&](int rank) {
    dist::JoinOptions join_options;
    join_options.timeout = std::chrono::seconds(60);
    auto group = dist::join(rendezvous.world(rank, ranks), Device::cpu(), join_options);
    models::ParameterStore store = fixture_store();
    train::Optimizer optimizer(store, case_options(c), train::shard_of(group.get(), store.numel()));
    EXPECT_TRUE(optimizer.sharded());
    bytes[rank] = optimizer.state_bytes();
    for (int64_t step = 0; step < steps; ++step) {
      copy_into(store.flat_grads(), floats(f["grads"][step]));  // as summed over the ranks
      const train::StepReport report = optimizer.step(schedule.lr(step));
      EXPECT_TRUE(report.applied);
    }
    params[rank] = store.flat_values().to_float_vector();
    const auto [begin, end] = optimizer.state_range();
    EXPECT_EQ(begin, train::shard_of(group.get(), store.numel()).begin);
    part_avg[rank] = state_values(optimizer, "exp_avg");
    EXPECT_EQ(int64_t(part_avg[rank].size()), end - begin);
    // The part into another optimizer of the same sharding; a part of another size is refused.
    std::map<std::string, Tensor> part;
    for (const auto& [name, t] : optimizer.state()) part[name] = t.to(Device::cpu());
    train::Optimizer restored(store, case_options(c), train::shard_of(group.get(), store.numel()));
    restored.load_state(part);
    reloaded_avg[rank] = state_values(restored, "exp_avg");
    EXPECT_EQ(restored.steps_taken(), steps);
    train::Optimizer whole(store, case_options(c));
    ww::testing::expect_error([&] { whole.load_state(part); }, {"'exp_avg'", "expected f32[" + std::to_string(store.numel())});
    begins[rank] = begin;
  });
  for (int r = 0; r < ranks; ++r) ASSERT_EQ(errors[r], "") << "rank " << r;
  const size_t whole_bytes = 2 * sizeof(float) * expected_params.size();
  for (int r = 0; r < ranks; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    expect_close(params[r], expected_params, 1e-6, "parameters");
    EXPECT_EQ(params[r], params[0]);  // replicas stay identical
    const std::vector<float> expected_part(expected_avg.begin() + begins[r],
                                           expected_avg.begin() + begins[r] + int64_t(part_avg[r].size()));
    expect_close(part_avg[r], expected_part, 1e-6, "exp_avg");
    EXPECT_EQ(reloaded_avg[r], part_avg[r]);
    EXPECT_LE(bytes[r], whole_bytes / ranks + 8);  // a third of the state each
  }
}

// ---- on a GPU ---------------------------------------------------------------------------------

namespace gpu {

using ww::testing::cpu_tensor;
using ww::testing::expect_close;
using ww::testing::random_normals;
using ww::testing::read_back;

namespace {

constexpr double kRtol = 1e-6;

// A small model's parameters (mixed weight-decay flags) on each device.
models::ParameterStore make_store(Device device) {
  models::ParameterStore store;
  store.add("layer.weight", {64, 48}, true);
  store.add("layer.bias", {64}, false);
  store.add("norm.weight", {48}, false);
  store.add("head.weight", {7, 64}, true);
  store.add("head.bias", {7}, false);
  store.allocate(device);
  store.flat_values().copy_from(cpu_tensor(random_normals(store.numel(), 5), {store.numel()}));
  return store;
}

// AdamW or SGD with momentum, weight decay, and clipping on (the tests' gradients have a norm well
// above 1).
train::OptimizerOptions gpu_test_options(train::OptimizerKind kind) {
  train::OptimizerOptions options;
  options.kind = kind;
  options.weight_decay = 0.01;
  options.momentum = kind == train::OptimizerKind::SGD ? 0.9 : 0.0;
  options.max_grad_norm = 1.0;
  return options;
}

}  // namespace

TEST(CudaOptimizer, OptimizerClassRunsOnGpuParameters) {
  WW_REQUIRE_CUDA();
  for (train::OptimizerKind kind : {train::OptimizerKind::AdamW, train::OptimizerKind::SGD}) {
    SCOPED_TRACE(std::string(train::optimizer_kind_name(kind)));
    const train::OptimizerOptions options = gpu_test_options(kind);
    models::ParameterStore cpu = make_store(Device::cpu()), gpu = make_store(Device::cuda(0));
    train::Optimizer cpu_optimizer(cpu, options), gpu_optimizer(gpu, options);
    for (int step = 0; step < 3; ++step) {
      Tensor grads = cpu_tensor(random_normals(cpu.numel(), 6 + uint64_t(step)), {cpu.numel()});
      cpu.flat_grads().copy_from(grads);
      gpu.flat_grads().copy_from(grads);
      train::StepReport a = cpu_optimizer.step(1e-2, 0.5f), b = gpu_optimizer.step(1e-2, 0.5f);
      EXPECT_TRUE(b.applied);
      EXPECT_NEAR(b.grad_norm, a.grad_norm, 1e-6 * a.grad_norm);
      EXPECT_NEAR(b.clip_coef, a.clip_coef, 1e-6);
    }
    expect_close(read_back(gpu.flat_values()), cpu.flat_values().to_float_vector(), "params", kRtol);
    for (const auto& [name, tensor] : gpu_optimizer.state())
      EXPECT_TRUE(name == "step" ? tensor.device().is_cpu() : tensor.device().is_cuda()) << name;

    // A NaN gradient skips the step on the GPU as on the CPU.
    std::vector<float> bad(size_t(gpu.numel()), 0.0f);
    bad[3] = std::numeric_limits<float>::quiet_NaN();
    gpu.flat_grads().copy_from(cpu_tensor(bad, {gpu.numel()}));
    const std::vector<float> before = read_back(gpu.flat_values());
    EXPECT_FALSE(gpu_optimizer.step(1e-2).applied);
    EXPECT_EQ(read_back(gpu.flat_values()), before);
  }
}


// ZeRO on GPU parameters: 2 ranks, each holding half the state and reading only its part of the
// gradients (the rest is NaN here, as a reduce-scatter leaves it undefined), take the unsharded
// steps: the norm is of both parts (summed on the device), the clipping and the NaN skip the job's.
TEST(CudaOptimizer, ShardedStepsOnGpuEqualTheUnshardedOnes) {
  WW_REQUIRE_CUDA();
  const int ranks = 2;
  for (train::OptimizerKind kind : {train::OptimizerKind::AdamW, train::OptimizerKind::SGD}) {
    SCOPED_TRACE(std::string(train::optimizer_kind_name(kind)));
    const train::OptimizerOptions options = gpu_test_options(kind);
    const int steps = 3;
    models::ParameterStore reference = make_store(Device::cuda(0));
    train::Optimizer reference_optimizer(reference, options);
    std::vector<train::StepReport> expected;
    for (int step = 0; step < steps; ++step) {
      reference.flat_grads().copy_from(cpu_tensor(random_normals(reference.numel(), 6 + uint64_t(step)), {reference.numel()}));
      expected.push_back(reference_optimizer.step(1e-2, 0.5f));
    }
    const std::vector<float> expected_params = read_back(reference.flat_values());
    std::map<std::string, std::vector<float>> expected_state;
    for (const auto& [name, t] : reference_optimizer.state())
      if (name != "step") expected_state[name] = read_back(t);

    const ww::testing::Rendezvous rendezvous;
    std::vector<std::vector<float>> params(ranks);
    std::vector<std::map<std::string, std::vector<float>>> state(ranks);
    std::vector<std::vector<train::StepReport>> reports(ranks);
    std::vector<bool> skipped(ranks, false), unchanged(ranks, false);
    std::vector<int64_t> begins(ranks);
    const auto errors = ww::testing::run_ranks(ranks, [&](int rank) {
      dist::JoinOptions join;
      join.timeout = std::chrono::seconds(60);
      ww::testing::HostBridgeGroup group(dist::join(rendezvous.world(rank, ranks), Device::cpu(), join), Device::cuda(0));
      models::ParameterStore store = make_store(Device::cuda(0));
      const train::OptimizerShard shard = train::shard_of(&group, store.numel());
      train::Optimizer optimizer(store, options, shard);
      auto grads_with_nan_elsewhere = [&](uint64_t seed) {
        std::vector<float> g = random_normals(store.numel(), seed);
        for (int64_t i = 0; i < store.numel(); ++i)
          if (i < shard.begin || i >= shard.end) g[size_t(i)] = std::numeric_limits<float>::quiet_NaN();
        return g;
      };
      for (int step = 0; step < steps; ++step) {
        store.flat_grads().copy_from(cpu_tensor(grads_with_nan_elsewhere(6 + uint64_t(step)), {store.numel()}));
        reports[rank].push_back(optimizer.step(1e-2, 0.5f));
      }
      params[rank] = read_back(store.flat_values());
      begins[rank] = shard.begin;
      for (const auto& [name, t] : optimizer.state())
        if (name != "step") state[rank][name] = read_back(t);  // this rank's part
      // A NaN in one rank's part skips the step on both.
      std::vector<float> g = grads_with_nan_elsewhere(99);
      if (rank == 1) g[size_t(shard.begin)] = std::numeric_limits<float>::quiet_NaN();
      store.flat_grads().copy_from(cpu_tensor(g, {store.numel()}));
      skipped[rank] = !optimizer.step(1e-2).applied;
      unchanged[rank] = read_back(store.flat_values()) == params[rank];
    });
    for (int r = 0; r < ranks; ++r) ASSERT_EQ(errors[r], "") << "rank " << r;
    for (int r = 0; r < ranks; ++r) {
      SCOPED_TRACE("rank " + std::to_string(r));
      for (int step = 0; step < steps; ++step) {
        EXPECT_TRUE(reports[r][step].applied);
        EXPECT_NEAR(reports[r][step].grad_norm, expected[step].grad_norm, 1e-6 * expected[step].grad_norm);
        EXPECT_NEAR(reports[r][step].clip_coef, expected[step].clip_coef, 1e-6);
      }
      expect_close(params[r], expected_params, "params", kRtol);
      EXPECT_EQ(params[r], params[0]);  // replicas identical
      for (const auto& [name, values] : expected_state) {
        const std::vector<float> part(values.begin() + begins[r], values.begin() + begins[r] + int64_t(state[r][name].size()));
        expect_close(state[r][name], part, name.c_str(), kRtol);
      }
      EXPECT_TRUE(skipped[r]);
      EXPECT_TRUE(unchanged[r]);
    }
  }
}

}  // namespace gpu
