// ops::gelu / gelu_tanh / relu / tanh, forward and backward: the CPU reference against double
// precision (forward against the formula, backward against central finite differences of it; 1e-5
// relative with an absolute floor at 1e-5 of the tensor's scale), in place, and every device ×
// dtype against the CPU reference (tolerances: tests/ops/op_test_util.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "ops/op_test_util.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/core/rng.h"
#include "cuda_test_util.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/activation.h"

using namespace ww;
using namespace ww::testing;

namespace {

double gelu_ref(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

TEST(ActivationCpu, ForwardAndBackwardMatchReference) {
  for (const RowsCols& s : kShapes) {
    SCOPED_TRACE("n=" + std::to_string(s.rows * s.cols));
    const Shape shape = {s.rows, s.cols};
    const int64_t n = s.rows * s.cols;
    Tensor inp = random_tensor(shape, 1, 2.0f), dout = random_tensor(shape, 2);
    const std::vector<double> x = as_double(inp), d = as_double(dout);
    Tensor out = Tensor::empty(shape, DType::F32), dinp = Tensor::empty(shape, DType::F32);

    // GELU: forward against erf in double, backward against finite differences of it.
    ops::gelu_forward(out, inp);
    std::vector<double> want(static_cast<size_t>(n)), want_d(static_cast<size_t>(n));
    for (size_t i = 0; i < x.size(); ++i) {
      want[i] = gelu_ref(x[i]);
      const double h = 1e-5;
      want_d[i] = d[i] * (gelu_ref(x[i] + h) - gelu_ref(x[i] - h)) / (2 * h);
    }
    expect_close(out, want, "gelu out");
    ops::gelu_backward(dinp, inp, dout);
    expect_close(dinp, want_d, "gelu dinp");

    // tanh: backward reads the forward output.
    ops::tanh_forward(out, inp);
    for (size_t i = 0; i < x.size(); ++i) {
      want[i] = std::tanh(x[i]);
      const double h = 1e-5;
      want_d[i] = d[i] * (std::tanh(x[i] + h) - std::tanh(x[i] - h)) / (2 * h);
    }
    expect_close(out, want, "tanh out");
    ops::tanh_backward(dinp, out, dout);
    expect_close(dinp, want_d, "tanh dinp");

    // ReLU is exact.
    ops::relu_forward(out, inp);
    ops::relu_backward(dinp, inp, dout);
    const std::vector<float> relu = out.to_float_vector(), drelu = dinp.to_float_vector();
    const std::vector<float> xf = inp.to_float_vector(), df = dout.to_float_vector();
    for (size_t i = 0; i < xf.size(); ++i) {
      ASSERT_EQ(relu[i], xf[i] > 0 ? xf[i] : 0.0f);
      ASSERT_EQ(drelu[i], xf[i] > 0 ? df[i] : 0.0f);
    }
  }
}

// vector_math.h's vectorisable exp and erf against the library functions (in double) over their
// whole range: exp within 2.5e-7 relative (2 ulp) from −87.3 to 88.3, exactly 0 below, NaN kept;
// erf within 5e-7 absolute (A&S 7.1.26's 1.5e-7 plus float rounding: 4.3e-7 measured), odd, ±1 in

TEST(ActivationCpu, WorkInPlace) {
  Tensor inp = random_tensor({5, 31}, 1), dout = random_tensor({5, 31}, 2);
  using Forward = void (*)(const Tensor&, const Tensor&);
  using Backward = void (*)(const Tensor&, const Tensor&, const Tensor&);
  const std::vector<std::pair<Forward, Backward>> pairs = {{ops::gelu_forward, ops::gelu_backward},
                                                           {ops::relu_forward, ops::relu_backward}};
  for (const auto& [forward, backward] : pairs) {
    Tensor expected = Tensor::empty({5, 31}, DType::F32), in_place = inp.to(Device::cpu());
    forward(expected, inp);
    forward(in_place, in_place);
    EXPECT_TRUE(same_bits(expected, in_place));
    Tensor expected_d = Tensor::empty({5, 31}, DType::F32), d_in_place = dout.to(Device::cpu());
    backward(expected_d, inp, dout);
    backward(d_in_place, inp, d_in_place);
    EXPECT_TRUE(same_bits(expected_d, d_in_place));
  }
  Tensor t = Tensor::empty({5, 31}, DType::F32), t_in_place = inp.to(Device::cpu());
  ops::tanh_forward(t, inp);
  ops::tanh_forward(t_in_place, t_in_place);
  EXPECT_TRUE(same_bits(t, t_in_place));
  expect_error([&] { ops::gelu_forward(Tensor::empty({5, 30}, DType::F32), inp); }, {"gelu_forward", "'out'"});
  expect_error([&] { ops::tanh_backward(t, t, Tensor::empty({4}, DType::F32)); }, {"tanh_backward", "'out'"});
}

// ---- every device and dtype against the CPU reference ---------------------------------------

class ActivationTest : public DeviceDtypeTest {};

// Forward and backward of each activation on the same (rounded) inputs as the CPU reference, the
// backward also in place (dinp aliasing dout); the backward reads the same saved tensor on both
// sides. The CPU's GELU evaluates erf within 4.3e-7 absolute (A&S 7.1.26, as PyTorch's vectorised
// CPU kernel), so GELU(x) = x·Φ(x) is within |x|·2.2e-7 (< 4e-6 for these |x| < 18) of CUDA's erff;
// relative to a tail value such as GELU(−2.6) = −0.0053 that is more than 1e-5: the f32 GPU gets an
// absolute floor of 4e-6 there (5× for the backward: dout is up to ~5). 16-bit rounding dwarfs it.
TEST_P(ActivationTest, MatchesTheCpuReference) {
  using Forward = void (*)(const Tensor&, const Tensor&);
  using Backward = void (*)(const Tensor&, const Tensor&, const Tensor&);
  struct Activation {
    const char* name;
    Forward forward;
    Backward backward;
    bool backward_from_output;  // tanh's backward reads the forward output
    double atol;                // f32 on a GPU: the floor where the CPU kernel approximates
  };
  const std::vector<Shape> shapes = is_16bit() ? std::vector<Shape>{{1}, {7}, {3, 333}, {4097}, {2, 5, 768}}
                                               : std::vector<Shape>{{1}, {5}, {1000}, {100003}};
  for (const Activation& a : {Activation{"gelu", ops::gelu_forward, ops::gelu_backward, false, 4e-6},
                              Activation{"relu", ops::relu_forward, ops::relu_backward, false, 0.0},
                              Activation{"tanh", ops::tanh_forward, ops::tanh_backward, true, 0.0}}) {
    for (const Shape& shape : shapes) {
      SCOPED_TRACE(what(a.name, shape));
      const double atol = on_cuda() && !is_16bit() ? a.atol : 0.0;
      const uint64_t seed = uint64_t(shape_numel(shape));
      Tensor inp = reference_input(random_cpu(shape, seed, 3.0f));
      Tensor out = poisoned_cpu(shape), got = nan_tensor(shape);
      a.forward(out, inp);
      a.forward(got, put(inp));
      expect_matches(got, out, std::string(a.name) + " forward", rtol(), atol);

      Tensor dout = reference_input(random_cpu(shape, seed + 1));
      const Tensor saved = a.backward_from_output ? reference_input(out) : inp;
      Tensor dinp = poisoned_cpu(shape), got_dinp = nan_tensor(shape);
      a.backward(dinp, saved, dout);
      const Tensor saved_param = put(saved);
      Tensor dout_param = put(dout);
      a.backward(got_dinp, saved_param, dout_param);
      expect_matches(got_dinp, dinp, std::string(a.name) + " backward", rtol(), 5 * atol);
      a.backward(dout_param, saved_param, dout_param);  // in place: dinp aliases dout
      expect_matches(dout_param, dinp, std::string(a.name) + " backward in place", rtol(), 5 * atol);
    }
  }
}

WW_INSTANTIATE_DEVICE_DTYPE_TEST(ActivationTest, all_devices_and_dtypes());

}  // namespace

// GPT-2's tanh-form GELU at a long odd length: against a double reference on the CPU (in place
// too), and the CUDA kernel against the CPU in f32 and bf16.
namespace ww {
namespace {

double gelu_tanh_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

TEST(ActivationCpu, GeluTanhMatchesDoubleReferenceAtLength10007) {
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

double gelu_max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  return a.size() == b.size() ? worst : INFINITY;
}

TEST(ActivationCuda, GeluTanhMatchesCpuAtOddLengths) {
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
    EXPECT_LE(gelu_max_abs_diff(out_g.to_float_vector(), out.to_float_vector()), 1e-5);
    EXPECT_LE(gelu_max_abs_diff(dinp_g.to_float_vector(), dinp.to_float_vector()), 1e-5);
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
