// The optimizer ops (ops/optimizer.h: adamw_step, sgd_step, global_grad_norm) on the CPU against
// hand-computed cases, decay ranges and argument errors: the op-level part of the optimizer tests
// (train::Optimizer and the schedules are tested in tests/train/).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "wattwise/core/error.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/optimizer.h"

using namespace ww;

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
