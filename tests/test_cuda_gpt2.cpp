// ops::gelu_tanh's CUDA kernel against the CPU reference: the op-level part of the GPT-2 GPU tests
// (GPT-2 itself on a GPU is tested in tests/models/gpt2_test.cpp). Skips with the reason when no GPU
// is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda_test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/activation.h"
#include "wattwise/ops/elementwise.h"

namespace ww {
namespace {

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  return a.size() == b.size() ? worst : INFINITY;
}

TEST(CudaGpt2, GeluTanhMatchesCpu) {
  WW_REQUIRE_CUDA();
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(100003)}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    Rng rng{uint64_t(n)};
    std::vector<float> x(static_cast<size_t>(n)), d(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = rng.normal() * 3.0f, d[size_t(i)] = rng.normal();
    Tensor inp = Tensor::from_vector(x, {n}), dout = Tensor::from_vector(d, {n});
    Tensor out = Tensor::empty({n}, DType::F32), dinp = Tensor::empty({n}, DType::F32);
    ops::gelu_tanh_forward(out, inp);
    ops::gelu_tanh_backward(dinp, inp, dout);
    Tensor inp_g = inp.to(Device::cuda(0)), dout_g = dout.to(Device::cuda(0));
    Tensor out_g = Tensor::empty({n}, DType::F32, Device::cuda(0)), dinp_g = Tensor::empty({n}, DType::F32, Device::cuda(0));
    ops::gelu_tanh_forward(out_g, inp_g);
    ops::gelu_tanh_backward(dinp_g, inp_g, dout_g);
    EXPECT_LE(max_abs_diff(out_g.to_float_vector(), out.to_float_vector()), 1e-5);
    EXPECT_LE(max_abs_diff(dinp_g.to_float_vector(), dinp.to_float_vector()), 1e-5);
    // bf16: the same math, one rounding on store.
    Tensor inp_b = Tensor::empty({n}, DType::BF16, Device::cuda(0)), out_b = Tensor::empty({n}, DType::BF16, Device::cuda(0));
    ops::cast(inp_b, inp_g);
    ops::gelu_tanh_forward(out_b, inp_b);
    std::vector<float> ob = out_b.to_float_vector(), of = out.to_float_vector();
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(ob[size_t(i)], of[size_t(i)], 2e-2 * (1 + std::abs(of[size_t(i)]))) << i;
  }
}

}  // namespace
}  // namespace ww
