// train::Optimizer with its parameters on the GPU against the same optimizer on the CPU (the
// optimizer ops themselves: tests/ops/optimizer_test.cpp). Both backends run the per-element
// formulas of kernels/optimizer_math.h, so results should agree to the last bit; the test allows
// 1e-6 relative (|gpu − cpu| <= 1e-6·|cpu| + 1e-6·max|cpu|) so that a libm/libdevice difference in
// sqrt rounding could not fail it.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cuda_compare.h"
#include "cuda_test_util.h"
#include "wattwise/models/parameters.h"
#include "wattwise/ops/optimizer.h"
#include "wattwise/train/optimizer.h"

using namespace ww;
using ww::testing::cpu_tensor;
using ww::testing::expect_close;
using ww::testing::gpu_copy;
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

TEST(CudaOptimizer, OptimizerClassRunsOnGpuParameters) {
  WW_REQUIRE_CUDA();
  for (train::OptimizerKind kind : {train::OptimizerKind::AdamW, train::OptimizerKind::SGD}) {
    SCOPED_TRACE(std::string(train::optimizer_kind_name(kind)));
    train::OptimizerOptions options;
    options.kind = kind;
    options.weight_decay = 0.01;
    options.momentum = kind == train::OptimizerKind::SGD ? 0.9 : 0.0;
    options.max_grad_norm = 1.0;  // clipping on: the gradients below have a norm well above 1
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

}  // namespace
