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
