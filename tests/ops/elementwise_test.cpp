// ops::residual_forward, add_inplace, scale_inplace, select_token_*, masked_mean_* and cast: the CPU
// reference against double precision and by hand, and every device × dtype against the CPU
// reference (tolerances: tests/ops/op_test_util.h; adds, scales, copies and casts are exact in f32,
// so f32 devices must give the reference's bits).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/op_test_util.h"
#include "wattwise/core/dtype.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/elementwise.h"

using namespace ww;
using namespace ww::testing;

namespace {

std::vector<uint16_t> bits16(const Tensor& t) {
  std::vector<uint16_t> out(size_t(t.numel()));
  if (t.nbytes()) std::memcpy(out.data(), t.raw(), t.nbytes());
  return out;
}

// ---- the CPU reference ------------------------------------------------------------------------

TEST(ElementwiseCpu, ResidualAddAndScale) {
  for (const RowsCols& s : kShapes) {
    const Shape shape = {s.rows, s.cols};
    Tensor a = random_tensor(shape, 1), b = random_tensor(shape, 2), out = Tensor::empty(shape, DType::F32);
    ops::residual_forward(out, a, b);
    std::vector<double> want = as_double(a);
    const std::vector<double> bd = as_double(b);
    for (size_t i = 0; i < want.size(); ++i) want[i] += bd[i];
    expect_close(out, want, "residual");
    Tensor acc = a.to(Device::cpu());
    ops::add_inplace(acc, b);
    EXPECT_TRUE(same_bits(acc, out));
    Tensor aliased = a.to(Device::cpu());
    ops::residual_forward(aliased, aliased, b);  // out aliasing a
    EXPECT_TRUE(same_bits(aliased, out));
    ops::scale_inplace(acc, -0.5f);
    for (double& v : want) v *= -0.5;
    expect_close(acc, want, "scaled");
  }
  expect_error([&] { ops::add_inplace(random_tensor({3}, 1), random_tensor({4}, 2)); }, {"add_inplace", "'x'"});
}

TEST(ElementwiseCpu, SelectTokenForwardAndAccumulatingBackward) {
  const int64_t B = 3, T = 5, C = 7;
  for (int64_t index : {int64_t(0), int64_t(4)}) {
    Tensor inp = random_tensor({B, T, C}, 1), out = Tensor::empty({B, C}, DType::F32);
    ops::select_token_forward(out, inp, index);
    const std::vector<float> x = inp.to_float_vector(), y = out.to_float_vector();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c) ASSERT_EQ(y[size_t(b * C + c)], x[size_t((b * T + index) * C + c)]);
    Tensor dinp = random_tensor({B, T, C}, 2), dout = random_tensor({B, C}, 3);
    const std::vector<float> before = dinp.to_float_vector(), d = dout.to_float_vector();
    ops::select_token_backward(dinp, dout, index);
    const std::vector<float> after = dinp.to_float_vector();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < C; ++c) {
          const size_t i = size_t((b * T + t) * C + c);
          ASSERT_EQ(after[i], t == index ? before[i] + d[size_t(b * C + c)] : before[i]);
        }
  }
  Tensor inp = random_tensor({B, T, C}, 1), out = Tensor::empty({B, C}, DType::F32);
  expect_error([&] { ops::select_token_forward(out, inp, 5); }, {"select_token_forward", "token index 5", "[0, 5)"});
  expect_error([&] { ops::select_token_forward(out, inp.reshape({B * T, C}), 0); }, {"select_token_forward", "'inp'", "3 dimensions"});
}

TEST(ElementwiseCpu, MaskedMeanMatchesReference) {
  const int64_t B = 4, T = 6, C = 133;
  // Ragged padding per row, including a row with one real token and a row with none.
  const std::vector<int32_t> mask_values = {1, 1, 1, 1, 1, 1,  1, 1, 1, 0, 0, 0,  1, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0};
  Tensor mask = Tensor::from_vector(mask_values, {B, T});
  Tensor inp = random_tensor({B, T, C}, 1), out = Tensor::empty({B, C}, DType::F32);
  ops::masked_mean_forward(out, inp, mask);
  const std::vector<double> x = as_double(inp);
  std::vector<double> want(static_cast<size_t>(B * C), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    double count = 0;
    for (int64_t t = 0; t < T; ++t) count += mask_values[size_t(b * T + t)];
    for (int64_t c = 0; c < C; ++c) {
      double s = 0.0;
      for (int64_t t = 0; t < T; ++t) s += mask_values[size_t(b * T + t)] * x[size_t((b * T + t) * C + c)];
      want[size_t(b * C + c)] = count > 0 ? s / count : 0.0;
    }
  }
  expect_close(out, want, "masked mean");

  // Backward is the transpose of that linear map: mask·dout/count (zeros for the empty row).
  Tensor dout = random_tensor({B, C}, 2), dinp = random_tensor({B, T, C}, 3);
  ops::masked_mean_backward(dinp, dout, mask);
  const std::vector<double> d = as_double(dout);
  std::vector<double> want_d(static_cast<size_t>(B * T * C), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    double count = 0;
    for (int64_t t = 0; t < T; ++t) count += mask_values[size_t(b * T + t)];
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c)
        if (mask_values[size_t(b * T + t)]) want_d[size_t((b * T + t) * C + c)] = d[size_t(b * C + c)] / count;
  }
  expect_close(dinp, want_d, "masked mean dinp");
  // Σ out⊙dout is linear in inp, so the gradient must equal dinp exactly in double.
  const auto numeric = numeric_gradient(x, [&](const auto& v) {
    double total = 0.0;
    for (int64_t b = 0; b < B; ++b) {
      double count = 0;
      for (int64_t t = 0; t < T; ++t) count += mask_values[size_t(b * T + t)];
      if (count == 0) continue;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < C; ++c)
          total += mask_values[size_t(b * T + t)] * v[size_t((b * T + t) * C + c)] * d[size_t(b * C + c)] / count;
    }
    return total;
  });
  expect_close(dinp, numeric, "masked mean dinp vs finite differences", 1e-4);

  Tensor bad = Tensor::from_vector(std::vector<int32_t>(static_cast<size_t>(B * T), 1), {B, T});
  bad.data<int32_t>()[7] = 2;
  expect_error([&] { ops::masked_mean_forward(out, inp, bad); }, {"mask value 2", "batch row 1", "position 1"});
  expect_error([&] { ops::masked_mean_forward(out, inp, Tensor::from_vector(std::vector<int32_t>(5, 1), {5})); },
               {"masked_mean_forward", "'mask'"});
}

TEST(ElementwiseCpu, CastRoundsToNearestEvenAndRoundTripsExactly) {
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

// ---- every device and dtype against the CPU reference ---------------------------------------

class ElementwiseTest : public DeviceDtypeTest {
 protected:
  // f32: the reference's bits (one add or multiply per element); 16-bit: the output rounded once.
  void expect_exact_op(const Tensor& got, const Tensor& want, const std::string& name) const {
    if (is_16bit()) expect_close(got, want, name, kRtol16);
    else expect_same_bits(got, want, name);
  }
};

TEST_P(ElementwiseTest, ResidualAddAndScaleMatchTheCpuReference) {
  const std::vector<Shape> shapes = is_16bit() ? std::vector<Shape>{{1}, {7}, {3, 333}, {4097}, {2, 5, 768}}
                                               : std::vector<Shape>{{1}, {257}, {70001}};
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(what("residual", shape));
    Tensor a = reference_input(random_cpu(shape, 1)), b = reference_input(random_cpu(shape, 2));
    Tensor out = poisoned_cpu(shape), got = nan_tensor(shape);
    Tensor a_p = put(a), b_p = put(b);
    ops::residual_forward(out, a, b);
    ops::residual_forward(got, a_p, b_p);
    expect_exact_op(got, out, "residual");
    ops::add_inplace(a, b);
    ops::add_inplace(a_p, b_p);
    expect_exact_op(a_p, a, "add_inplace");
    // Scale what the parameter's tensor holds (a 16-bit sum is rounded): the same input on both sides.
    Tensor scaled = Tensor::from_vector(read(a_p), shape);
    ops::scale_inplace(scaled, 0.37f);
    ops::scale_inplace(a_p, 0.37f);
    expect_exact_op(a_p, scaled, "scale_inplace");
  }
}

// select_token_forward copies (exact for every dtype); its backward adds into dinp; masked_mean sums
// in double as the CPU does, then rounds once.
TEST_P(ElementwiseTest, TokenPoolingMatchesTheCpuReference) {
  struct Case {
    int64_t B, T, C, index;
  };
  const std::vector<Case> cases = is_16bit() ? std::vector<Case>{{1, 1, 1, 0}, {3, 17, 130, 8}, {4, 33, 768, 16}}
                                             : std::vector<Case>{{2, 5, 7, 0}, {3, 4, 130, 3}, {1, 1, 1, 0}};
  for (const Case& k : cases) {
    const Shape shape = {k.B, k.T, k.C};
    SCOPED_TRACE(what("token pooling", shape) + " index " + std::to_string(k.index));
    Tensor inp = reference_input(random_cpu(shape, 3)), inp_p = put(inp);
    Tensor out = poisoned_cpu({k.B, k.C}), got = nan_tensor({k.B, k.C});
    ops::select_token_forward(out, inp, k.index);
    ops::select_token_forward(got, inp_p, k.index);
    expect_same_bits(got, out, "select_token forward");
    Tensor dout = reference_input(random_cpu({k.B, k.C}, 4)), dinp = reference_input(random_cpu(shape, 5));
    Tensor got_dinp = put(dinp);
    ops::select_token_backward(dinp, dout, k.index);
    ops::select_token_backward(got_dinp, put(dout), k.index);
    expect_exact_op(got_dinp, dinp, "select_token backward");
  }
  const std::vector<Shape> mean_shapes = is_16bit() ? std::vector<Shape>{{1, 1, 1}, {3, 17, 130}, {4, 33, 768}}
                                                    : std::vector<Shape>{{2, 5, 7}, {4, 300, 130}, {3, 1, 1}};
  for (const Shape& shape : mean_shapes) {
    const int64_t B = shape[0], T = shape[1], C = shape[2];
    SCOPED_TRACE(what("masked_mean", shape));
    Tensor inp = reference_input(random_cpu(shape, 6));
    const std::vector<int32_t> mask_values = ragged_mask(B, T, 7);
    Tensor mask = ints_cpu(mask_values, {B, T}), mask_p = put_ints(mask_values, {B, T});
    Tensor out = poisoned_cpu({B, C}), got = nan_tensor({B, C});
    ops::masked_mean_forward(out, inp, mask);
    ops::masked_mean_forward(got, put(inp), mask_p);
    expect_matches(got, out, "masked_mean forward", rtol());
    Tensor dout = reference_input(random_cpu({B, C}, 8));
    Tensor dinp = poisoned_cpu(shape), got_dinp = nan_tensor(shape);
    ops::masked_mean_backward(dinp, dout, mask);
    ops::masked_mean_backward(got_dinp, put(dout), mask_p);
    expect_matches(got_dinp, dinp, "masked_mean backward", rtol());
  }
}

WW_INSTANTIATE_DEVICE_DTYPE_TEST(ElementwiseTest, all_devices_and_dtypes());

// ---- CUDA ---------------------------------------------------------------------------------------

// Mask values live in device memory: a value other than 0/1 is recorded and reported.
TEST(ElementwiseCuda, MaskValuesOtherThanZeroOrOneAreReported) {
  WW_REQUIRE_CUDA();
  std::vector<int32_t> bad(2 * 4, 1);
  bad[5] = 2;
  Tensor bad_gpu = to_gpu(ints_cpu(bad, {2, 4}));
  Tensor out = poisoned_gpu({2, 3});
  expect_error(
      [&] {
        ops::masked_mean_forward(out, to_gpu(random_cpu({2, 4, 3}, 9)), bad_gpu);
        ops::check_device_input_errors();
      },
      {"mask value 2", "batch row 1", "position 1"});
}

TEST(ElementwiseCuda, CastMatchesTheCpuConversionsBitForBit) {
  WW_REQUIRE_CUDA();
  std::vector<float> values = random_cpu({5000}, 54, 10.0f).to_float_vector();
  // Ties, subnormals, overflow, signed zero, infinities.
  const float f16_ulp_at_1 = std::ldexp(1.0f, -10), bf16_ulp_at_1 = std::ldexp(1.0f, -7);
  for (float special : {1.0f + 0.5f * f16_ulp_at_1, 1.0f + 1.5f * f16_ulp_at_1, 1.0f + 0.5f * bf16_ulp_at_1,
                        1.0f + 1.5f * bf16_ulp_at_1, 0.0f, -0.0f, 1e-7f, -3e-6f, 65504.0f, 65520.0f, 1e30f,
                        INFINITY, -INFINITY, 3.0e38f})
    values.push_back(special);
  const Shape shape = {int64_t(values.size())};
  Tensor src = Tensor::from_vector(values, shape);
  for (DType to : kHalfTypes) {
    Tensor cpu_narrow = Tensor::empty(shape, to);
    ops::cast(cpu_narrow, src);
    Tensor g_narrow = gpu_as(src, to);  // GPU cast
    sync_device();
    Tensor back = g_narrow.to(Device::cpu());
    sync_device();
    ASSERT_EQ(back.nbytes(), cpu_narrow.nbytes());
    int64_t differ = 0, first = -1;
    const auto* got = static_cast<const uint16_t*>(back.raw());
    const auto* want = static_cast<const uint16_t*>(cpu_narrow.raw());
    for (int64_t i = 0; i < int64_t(values.size()); ++i)
      if (got[i] != want[i] && differ++ == 0) first = i;
    EXPECT_EQ(differ, 0) << "cast f32 -> " << dtype_name(to) << ": " << differ << " elements differ from the CPU;"
                         << " first at [" << first << "] (value " << (first >= 0 ? values[size_t(first)] : 0.0f)
                         << ")";

    // 16-bit -> f32 on the GPU is exact, and 16-bit -> the other 16-bit type matches the CPU.
    Tensor g_wide = Tensor::empty(shape, DType::F32, Device::cuda(0));
    ops::cast(g_wide, g_narrow);
    Tensor cpu_wide = Tensor::empty(shape, DType::F32);
    ops::cast(cpu_wide, cpu_narrow);
    const std::vector<float> wide_got = read(g_wide), wide_want = cpu_wide.to_float_vector();
    EXPECT_EQ(0, std::memcmp(wide_got.data(), wide_want.data(), wide_got.size() * sizeof(float)))
        << "cast " << dtype_name(to) << " -> f32 differs from the CPU";

    const DType other = to == DType::F16 ? DType::BF16 : DType::F16;
    Tensor g_other = Tensor::empty(shape, other, Device::cuda(0)), cpu_other = Tensor::empty(shape, other);
    ops::cast(g_other, g_narrow);
    ops::cast(cpu_other, cpu_narrow);
    sync_device();
    Tensor other_back = g_other.to(Device::cpu());
    sync_device();
    EXPECT_EQ(0, std::memcmp(other_back.raw(), cpu_other.raw(), cpu_other.nbytes()))
        << "cast " << dtype_name(to) << " -> " << dtype_name(other) << " differs from the CPU";
  }
}

TEST(ElementwiseCuda, CastRoundTripsRepresentableValuesExactly) {
  WW_REQUIRE_CUDA();
  std::vector<float> representable;  // <= 8 significant bits: exact in f16 and bf16
  for (int i = -255; i <= 255; ++i) representable.push_back(float(i) * 0.125f);
  for (float p : {1024.0f, -0.0009765625f, 6.103515625e-05f}) representable.push_back(p);
  const Shape shape = {int64_t(representable.size())};
  Tensor src = Tensor::from_vector(representable, shape);
  for (DType mid : kHalfTypes) {
    Tensor g_wide = Tensor::empty(shape, DType::F32, Device::cuda(0));
    ops::cast(g_wide, gpu_as(src, mid));
    const std::vector<float> got = read(g_wide);
    EXPECT_EQ(0, std::memcmp(got.data(), representable.data(), got.size() * sizeof(float)))
        << "cast f32 -> " << dtype_name(mid) << " -> f32 on the GPU changed a representable value";
  }
}

}  // namespace
