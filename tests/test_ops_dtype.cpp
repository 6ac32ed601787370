// Dtype rules of the op entry points on the CPU (which runs f32 only): the error for a 16-bit
// activation on the CPU, the error for activation arguments of different dtypes, ops::cast
// (round-to-nearest-even, exact round trips), residual_layernorm_forward against
// residual_forward + layernorm_forward, layernorm_backward's accumulate flag, and the TF32 switch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"
#include "wattwise/core/dtype.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/activation.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/layernorm.h"
#include "wattwise/ops/linear.h"
#include "wattwise/ops/softmax.h"

using namespace ww;
using ww::testing::expect_error;

namespace {

Tensor random_cpu(const Shape& shape, uint64_t seed, float scale = 1.0f, float shift = 0.0f) {
  Rng rng(seed, 21);
  std::vector<float> v(size_t(shape_numel(shape)));
  for (float& x : v) x = shift + scale * rng.normal();
  return Tensor::from_vector(v, shape);
}

std::vector<uint16_t> bits16(const Tensor& t) {
  std::vector<uint16_t> out(size_t(t.numel()));
  if (t.nbytes()) std::memcpy(out.data(), t.raw(), t.nbytes());
  return out;
}

void expect_same_bits(const Tensor& got, const Tensor& want, const std::string& what) {
  const std::vector<float> g = got.to_float_vector(), w = want.to_float_vector();
  ASSERT_EQ(g.size(), w.size()) << what;
  int64_t bad = 0;
  for (size_t i = 0; i < g.size(); ++i)
    if (std::memcmp(&g[i], &w[i], sizeof(float)) != 0 && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << g[i] << ", want " << w[i] << " (expected identical bits)";
  EXPECT_EQ(bad, 0) << what;
}

TEST(OpsDtype, SixteenBitActivationsOnTheCpuAreAnError) {
  Tensor f16 = Tensor::zeros({2, 3}, DType::F16), bf16 = Tensor::zeros({2, 3}, DType::BF16);
  expect_error([&] { ops::gelu_forward(f16, f16); },
               {"gelu_forward: argument 'inp' is f16; 16-bit tensors run on cuda devices only (got f16[2, 3] on cpu)"});
  expect_error([&] { ops::softmax_forward(bf16, bf16); },
               {"softmax_forward: argument 'inp' is bf16; 16-bit tensors run on cuda devices only",
                "bf16[2, 3] on cpu"});
  Tensor weight = Tensor::zeros({3}, DType::F32), bias = Tensor::zeros({3}, DType::F32);
  Tensor mean = Tensor::zeros({2}, DType::F32), rstd = Tensor::zeros({2}, DType::F32);
  expect_error([&] { ops::layernorm_forward(f16, mean, rstd, f16, weight, bias, 1e-5f); },
               {"layernorm_forward: argument 'inp' is f16; 16-bit tensors run on cuda devices only"});
  Tensor w16 = Tensor::zeros({4, 3}, DType::BF16), out16 = Tensor::zeros({2, 4}, DType::BF16);
  expect_error([&] { ops::linear_forward(out16, bf16, w16, Tensor()); },
               {"linear_forward: argument 'inp' is bf16; 16-bit tensors run on cuda devices only"});
  expect_error([&] { ops::scale_inplace(f16, 2.0f); }, {"scale_inplace: argument 'x' is f16; 16-bit"});
}

TEST(OpsDtype, MismatchedActivationDtypesAreAnError) {
  Tensor x = random_cpu({2, 3}, 1);
  Tensor f16 = Tensor::zeros({2, 3}, DType::F16);
  expect_error([&] { ops::gelu_forward(f16, x); },
               {"gelu_forward: argument 'out' is f16[2, 3] on cpu but 'inp' is f32[2, 3] on cpu",
                "share one dtype"});
  expect_error([&] { ops::residual_forward(x, x, f16); }, {"residual_forward: argument 'b' is f16", "'a' is f32"});
  Tensor weight = random_cpu({4, 3}, 2);
  expect_error([&] { ops::linear_forward(Tensor::zeros({2, 4}, DType::BF16), x, weight, Tensor()); },
               {"linear_forward: argument 'out' is bf16[2, 4] on cpu but 'inp' is f32[2, 3] on cpu"});
  // LayerNorm parameters are f32 whatever the activations are.
  Tensor mean = Tensor::zeros({2}, DType::F32), rstd = Tensor::zeros({2}, DType::F32);
  expect_error([&] { ops::layernorm_forward(x, mean, rstd, x, Tensor::zeros({3}, DType::F16), random_cpu({3}, 3), 1e-5f); },
               {"layernorm_forward: argument 'weight' must be f32"});
  // Integer tensors are not activations.
  expect_error([&] { ops::relu_forward(Tensor::zeros({2, 3}, DType::I32), x); },
               {"relu_forward: argument 'out' must be f32, f16 or bf16"});
}

TEST(OpsDtype, CastRoundsToNearestEvenAndRoundTripsExactly) {
  // Halfway cases: ties go to the even neighbour; just above a tie goes up.
  const float f16_ulp_at_1 = std::ldexp(1.0f, -10), bf16_ulp_at_1 = std::ldexp(1.0f, -7);
  const std::vector<float> values = {1.0f + 0.5f * f16_ulp_at_1, 1.0f + 1.5f * f16_ulp_at_1,
                                     1.0f + 0.5f * bf16_ulp_at_1, 1.0f + 1.5f * bf16_ulp_at_1,
                                     -2.75f, 0.0f, -0.0f, 65504.0f, 1e-7f, 3.0e38f};
  Tensor src = Tensor::from_vector(values, {int64_t(values.size())});
  Tensor h = Tensor::empty(src.shape(), DType::F16), b = Tensor::empty(src.shape(), DType::BF16);
  ops::cast(h, src);
  ops::cast(b, src);
  const std::vector<uint16_t> hb = bits16(h), bb = bits16(b);
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(hb[i], float_to_half(values[i])) << "f32 -> f16 of " << values[i];
    EXPECT_EQ(bb[i], float_to_bf16(values[i])) << "f32 -> bf16 of " << values[i];
  }
  EXPECT_EQ(half_to_float(hb[0]), 1.0f);  // tie to even (down)
  EXPECT_EQ(half_to_float(hb[1]), 1.0f + 2.0f * f16_ulp_at_1);  // tie to even (up)
  EXPECT_EQ(bf16_to_float(bb[2]), 1.0f);
  EXPECT_EQ(bf16_to_float(bb[3]), 1.0f + 2.0f * bf16_ulp_at_1);

  // Values representable in both 16-bit formats survive every round trip exactly.
  std::vector<float> representable;
  for (int i = -255; i <= 255; ++i) representable.push_back(float(i) * 0.125f);  // <= 8 significant bits
  Tensor exact = Tensor::from_vector(representable, {int64_t(representable.size())});
  for (DType d : {DType::F16, DType::BF16}) {
    Tensor mid = Tensor::empty(exact.shape(), d), back = Tensor::empty(exact.shape(), DType::F32);
    ops::cast(mid, exact);
    ops::cast(back, mid);
    expect_same_bits(back, exact, std::string("round trip through ") + std::string(dtype_name(d)));
  }
  // f16 -> bf16 directly equals f16 -> f32 -> bf16 (f16 to f32 is exact, so one rounding).
  Tensor direct = Tensor::empty(src.shape(), DType::BF16), wide = Tensor::empty(src.shape(), DType::F32);
  ops::cast(direct, h);
  ops::cast(wide, h);
  const std::vector<float> wide_values = wide.to_float_vector();
  const std::vector<uint16_t> direct_bits = bits16(direct);
  for (size_t i = 0; i < wide_values.size(); ++i) EXPECT_EQ(direct_bits[i], float_to_bf16(wide_values[i])) << i;
  // Same dtype copies.
  Tensor copy = Tensor::empty(src.shape(), DType::F32);
  ops::cast(copy, src);
  expect_same_bits(copy, src, "f32 -> f32 copy");

  expect_error([&] { ops::cast(Tensor::empty({3}, DType::F16), src); }, {"cast: argument 'out' must have 10 elements"});
  expect_error([&] { ops::cast(Tensor::empty(src.shape(), DType::I32), src); },
               {"cast: argument 'out' must be f32, f16 or bf16"});
}

TEST(OpsDtype, ResidualLayerNormEqualsTheTwoKernels) {
  for (const auto& [N, C] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {17, 768}, {5, 1025}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C));
    Tensor a = random_cpu({N, C}, 10, 1.0f, 0.5f), b = random_cpu({N, C}, 11);
    Tensor weight = random_cpu({C}, 12, 0.2f, 1.0f), bias = random_cpu({C}, 13, 0.1f);
    Tensor sum_ref = Tensor::empty({N, C}, DType::F32), out_ref = Tensor::empty({N, C}, DType::F32);
    Tensor mean_ref = Tensor::empty({N}, DType::F32), rstd_ref = Tensor::empty({N}, DType::F32);
    ops::residual_forward(sum_ref, a, b);
    ops::layernorm_forward(out_ref, mean_ref, rstd_ref, sum_ref, weight, bias, 1e-5f);

    Tensor sum = Tensor::empty({N, C}, DType::F32), out = Tensor::empty({N, C}, DType::F32);
    Tensor mean = Tensor::empty({N}, DType::F32), rstd = Tensor::empty({N}, DType::F32);
    ops::residual_layernorm_forward(out, sum, mean, rstd, a, b, weight, bias, 1e-5f);
    expect_same_bits(sum, sum_ref, "sum");
    expect_same_bits(out, out_ref, "out");
    expect_same_bits(mean, mean_ref, "mean");
    expect_same_bits(rstd, rstd_ref, "rstd");

    // sum may be a itself (the residual stream updated in place).
    Tensor a_copy = a.to(Device::cpu());
    ops::residual_layernorm_forward(out, a_copy, mean, rstd, a_copy, b, weight, bias, 1e-5f);
    expect_same_bits(a_copy, sum_ref, "sum (in place)");
    expect_same_bits(out, out_ref, "out (sum in place)");
  }
  Tensor x = random_cpu({2, 3}, 1), w = random_cpu({3}, 2), m = Tensor::empty({2}, DType::F32);
  expect_error([&] { ops::residual_layernorm_forward(x, x, m, m, random_cpu({2, 3}, 3), random_cpu({2, 3}, 4), w, w, 1e-5f); },
               {"residual_layernorm_forward: argument 'out' must not share memory with 'sum'"});
  expect_error([&] { ops::residual_layernorm_forward(x, random_cpu({2, 3}, 5), m, m, x, Tensor::zeros({2, 3}, DType::F16), w, w, 1e-5f); },
               {"residual_layernorm_forward: argument 'b' is f16"});
}

TEST(OpsDtype, LayerNormBackwardAccumulateAddsToDinp) {
  const int64_t N = 9, C = 130;
  Tensor inp = random_cpu({N, C}, 20, 2.0f, 1.0f), dout = random_cpu({N, C}, 21);
  Tensor weight = random_cpu({C}, 22, 0.2f, 1.0f), bias = random_cpu({C}, 23);
  Tensor out = Tensor::empty({N, C}, DType::F32), mean = Tensor::empty({N}, DType::F32), rstd = Tensor::empty({N}, DType::F32);
  ops::layernorm_forward(out, mean, rstd, inp, weight, bias, 1e-5f);

  Tensor plain = Tensor::empty({N, C}, DType::F32);
  Tensor dweight_plain = random_cpu({C}, 24), dbias_plain = random_cpu({C}, 25);
  ops::layernorm_backward(plain, dweight_plain, dbias_plain, dout, inp, weight, mean, rstd);

  Tensor start = random_cpu({N, C}, 26);
  Tensor acc = start.to(Device::cpu());
  Tensor dweight_acc = random_cpu({C}, 24), dbias_acc = random_cpu({C}, 25);
  ops::layernorm_backward(acc, dweight_acc, dbias_acc, dout, inp, weight, mean, rstd, /*accumulate=*/true);

  std::vector<float> want = start.to_float_vector();
  const std::vector<float> p = plain.to_float_vector();
  for (size_t i = 0; i < want.size(); ++i) want[i] += p[i];
  expect_same_bits(acc, Tensor::from_vector(want, {N, C}), "dinp (accumulate)");
  // The parameter gradients do not depend on the flag.
  expect_same_bits(dweight_acc, dweight_plain, "dweight");
  expect_same_bits(dbias_acc, dbias_plain, "dbias");
}

TEST(OpsDtype, Tf32SwitchDefaultsOffAndDoesNotChangeTheCpu) {
  EXPECT_FALSE(ops::allow_tf32());
  Tensor inp = random_cpu({5, 33}, 30), weight = random_cpu({7, 33}, 31), bias = random_cpu({7}, 32);
  Tensor out_off = Tensor::empty({5, 7}, DType::F32), out_on = Tensor::empty({5, 7}, DType::F32);
  ops::linear_forward(out_off, inp, weight, bias);
  {
    const ops::Tf32Scope tf32(true);
    EXPECT_TRUE(ops::allow_tf32());
    ops::linear_forward(out_on, inp, weight, bias);
  }
  EXPECT_FALSE(ops::allow_tf32());
  expect_same_bits(out_on, out_off, "linear out with TF32 allowed (CPU)");
}

}  // namespace
