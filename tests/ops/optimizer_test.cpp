// ops::adamw_step / sgd_step / global_grad_norm on each device against the CPU kernels. Both
// backends run the per-element formulas of kernels/optimizer_math.h (the CUDA file is built without
// FMA contraction), so results should agree to the last bit; a GPU is allowed 1e-6 relative
// (|gpu − cpu| <= 1e-6·|cpu| + 1e-6·max|cpu|) so that a libm/libdevice difference in sqrt rounding
// could not fail the tests, and the count of elements that differ at all is recorded. The grad norm
// (double sums in a different order, then rounded to float) must agree to 1e-6 relative. The CPU
// parameter must give the same bits. Optimizer state is f32 only: the parameters are {cpu, cuda} × f32.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ops/op_test_util.h"
#include "wattwise/core/error.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/optimizer.h"

using namespace ww;
using namespace ww::testing;

namespace {

constexpr double kOptimizerRtol = 1e-6;
constexpr int64_t kN = 100003;  // odd, several blocks

int64_t count_bitwise_differences(const std::vector<float>& a, const std::vector<float>& b) {
  int64_t count = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) count += a[i] != b[i];
  return count;
}

// Decay ranges: the default (undefined: all decay), none, a few runs including both ends, and runs
// and gaps shorter than the GPU's four-element vectors (one vector meeting three ranges).
std::vector<Tensor> decay_range_choices() {
  Tensor none = Tensor::empty({0, 2}, DType::I64);
  auto ranges = [](const std::vector<int64_t>& values) {
    Tensor t = Tensor::empty({int64_t(values.size() / 2), 2}, DType::I64);
    std::copy(values.begin(), values.end(), t.data<int64_t>());
    return t;
  };
  return {Tensor(), none, ranges({0, 10, 500, 70000, 99990, kN}),
          ranges({1, 2, 3, 4, 6, 7, 9, 13, 17, 18, kN - 3, kN - 1})};
}

struct Buffers {
  Tensor params, grads, a, b;  // a, b: optimizer state
};

Buffers random_buffers(Device device) {
  Buffers x;
  x.params = cpu_tensor(random_normals(kN, 1), {kN}).to(device);
  x.grads = cpu_tensor(random_normals(kN, 2, 0.01f), {kN}).to(device);
  x.a = Tensor::zeros({kN}, DType::F32, device);
  x.b = Tensor::zeros({kN}, DType::F32, device);
  return x;
}

// The same buffers as views one float into larger allocations: not 16-byte aligned, so the
// kernels take their scalar loops. `owners` keeps the allocations alive.
Buffers shifted_by_one_float(const Buffers& x, std::vector<Tensor>& owners) {
  auto shift = [&](const Tensor& t) {
    owners.push_back(Tensor::zeros({t.numel() + 1}, DType::F32, t.device()));
    Tensor view = Tensor::view(owners.back().data<float>() + 1, t.shape(), DType::F32, t.device());
    view.copy_from(t);
    return view;
  };
  return {shift(x.params), shift(x.grads), shift(x.a), shift(x.b)};
}

class OptimizerTest : public DeviceDtypeTest {
 protected:
  double optimizer_rtol() const { return on_cuda() ? kOptimizerRtol : 0.0; }
};

TEST_P(OptimizerTest, AdamStepMatchesTheCpuReference) {
  for (bool decoupled : {true, false})
    for (double beta1 : {0.9, 0.3})  // lerp weight 1 − β1 below and above 0.5
      for (const Tensor& ranges : decay_range_choices())
        for (bool aligned : {true, false}) {
          SCOPED_TRACE(std::string(decoupled ? "adamw" : "adam") + " beta1=" + std::to_string(beta1) +
                       " ranges=" + (ranges.defined() ? ranges.describe() : "all") + (aligned ? "" : " unaligned"));
          std::vector<Tensor> owners;
          Buffers cpu = random_buffers(Device::cpu()), got = random_buffers(device());
          if (!aligned) got = shifted_by_one_float(got, owners);
          Tensor g_ranges = ranges.defined() ? ranges.to(device()) : Tensor();
          for (int64_t step = 1; step <= 3; ++step) {
            ops::AdamStepArgs args;
            args.lr = 1e-3;
            args.beta1 = beta1;
            args.weight_decay = 0.2;  // decay steps (2e-4 · p) far above 1e-6: a wrong range flag shows
            args.step = step;
            args.decoupled = decoupled;
            args.grad_scale = 0.5f;
            ops::adamw_step(cpu.params, cpu.grads, cpu.a, cpu.b, ranges, args);
            ops::adamw_step(got.params, got.grads, got.a, got.b, g_ranges, args);
          }
          const std::vector<float> p = read(got.params), want = cpu.params.to_float_vector();
          expect_close(p, want, "params", optimizer_rtol());
          expect_close(read(got.a), cpu.a.to_float_vector(), "exp_avg", optimizer_rtol());
          expect_close(read(got.b), cpu.b.to_float_vector(), "exp_avg_sq", optimizer_rtol());
          RecordProperty("params_bitwise_differences", int(count_bitwise_differences(p, want)));
        }
}

TEST_P(OptimizerTest, SgdStepMatchesTheCpuReference) {
  struct Variant {
    double momentum, dampening;
    bool nesterov;
  };
  for (Variant v : {Variant{0.0, 0.0, false}, Variant{0.9, 0.1, false}, Variant{0.9, 0.0, true}})
    for (const Tensor& ranges : decay_range_choices()) {
      SCOPED_TRACE("momentum=" + std::to_string(v.momentum) + " nesterov=" + std::to_string(v.nesterov) +
                   " ranges=" + (ranges.defined() ? ranges.describe() : "all"));
      Buffers cpu = random_buffers(Device::cpu()), got = random_buffers(device());
      Tensor g_ranges = ranges.defined() ? ranges.to(device()) : Tensor();
      for (int64_t step = 1; step <= 3; ++step) {
        ops::SgdStepArgs args;
        args.lr = 0.1;
        args.momentum = v.momentum;
        args.dampening = v.dampening;
        args.nesterov = v.nesterov;
        args.weight_decay = 0.01;
        args.step = step;
        args.grad_scale = 2.0f;
        Tensor buf_cpu = v.momentum != 0 ? cpu.a : Tensor(), buf_got = v.momentum != 0 ? got.a : Tensor();
        ops::sgd_step(cpu.params, cpu.grads, buf_cpu, ranges, args);
        ops::sgd_step(got.params, got.grads, buf_got, g_ranges, args);
      }
      expect_close(read(got.params), cpu.params.to_float_vector(), "params", optimizer_rtol());
      if (v.momentum != 0) expect_close(read(got.a), cpu.a.to_float_vector(), "momentum_buffer", optimizer_rtol());
    }
}

TEST_P(OptimizerTest, GlobalGradNormMatchesTheCpuReferenceAndIsDeterministic) {
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(1000), int64_t(3000017)}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    Tensor grads = cpu_tensor(random_normals(n, 3), {n});
    const float want = ops::global_grad_norm(grads);
    Tensor g_grads = put_f32(grads);
    const float got = ops::global_grad_norm(g_grads);
    EXPECT_NEAR(got, want, optimizer_rtol() * std::abs(want));
    EXPECT_EQ(ops::global_grad_norm(g_grads), got) << "second call differs bitwise";
  }
  std::vector<float> values = random_normals(5000, 4);
  values[4321] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(ops::global_grad_norm(put_f32(cpu_tensor(values, {5000})))));
  values[4321] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(std::isinf(ops::global_grad_norm(put_f32(cpu_tensor(values, {5000})))));
}

WW_INSTANTIATE_DEVICE_DTYPE_TEST(OptimizerTest, f32_devices());

}  // namespace

// ---- hand-computed cases, decay ranges and argument errors (CPU) ----------------------------------

// AdamW's first step by hand: m = 0.1 g, v = 0.001 g², so the update is lr · g / (|g| + ε) after
// bias correction, plus the decoupled decay p·(1 − lr·wd) on decayed elements only.
TEST(OptimizerCpu, AdamwFirstStepByHand) {
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
TEST(OptimizerCpu, AdamL2GoesThroughTheGradient) {
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

TEST(OptimizerCpu, SgdMomentumByHand) {
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

TEST(OptimizerCpu, DecayRangesSpanChunksAndMatchPerElementMask) {
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

TEST(OptimizerCpu, UndefinedRangesDecayAllEmptyRangesNone) {
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

TEST(OptimizerCpu, BadArgumentsAreErrors) {
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

TEST(OptimizerCpu, GlobalGradNorm) {
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
