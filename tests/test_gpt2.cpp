// ops::gelu_tanh (GPT-2's tanh-form GELU) on the CPU against a double-precision reference, forward
// and backward, in place too: the op-level part of the GPT-2 tests (GPT-2 itself is tested in
// tests/models/gpt2_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/activation.h"

namespace ww {
namespace {

double gelu_tanh_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

TEST(Gpt2Ops, GeluTanhMatchesDoubleReference) {
  const int64_t n = 10007;
  Rng rng(5);
  std::vector<float> x(n), d(n);
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = rng.normal() * 3.0f, d[size_t(i)] = rng.normal();
  Tensor inp = Tensor::from_vector(x, {n}), dout = Tensor::from_vector(d, {n});
  Tensor out = Tensor::empty({n}, DType::F32), dinp = Tensor::empty({n}, DType::F32);
  ops::gelu_tanh_forward(out, inp);
  ops::gelu_tanh_backward(dinp, inp, dout);
  double worst_f = 0, worst_b = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double xi = x[size_t(i)], h = 1e-5;
    const double want = gelu_tanh_ref(xi);
    const double want_d = d[size_t(i)] * (gelu_tanh_ref(xi + h) - gelu_tanh_ref(xi - h)) / (2 * h);
    worst_f = std::max(worst_f, std::abs(out.data<float>()[i] - want) / (1.0 + std::abs(want)));
    worst_b = std::max(worst_b, std::abs(dinp.data<float>()[i] - want_d) / (1.0 + std::abs(want_d)));
  }
  EXPECT_LT(worst_f, 1e-6);
  EXPECT_LT(worst_b, 1e-5);
  // In place (out aliases inp; dinp aliases dout) gives the same numbers.
  Tensor copy = Tensor::from_vector(x, {n});
  ops::gelu_tanh_forward(copy, copy);
  EXPECT_EQ(copy.to_float_vector(), out.to_float_vector());
  Tensor dcopy = Tensor::from_vector(d, {n});
  ops::gelu_tanh_backward(dcopy, inp, dcopy);
  EXPECT_EQ(dcopy.to_float_vector(), dinp.to_float_vector());
}

}  // namespace
}  // namespace ww
