// ops::dropout_forward / dropout_backward and the dropout inside residual_forward and
// residual_layernorm_forward: the counter-based Philox mask of core/rng.h on the CPU, and every
// device × dtype drawing the CPU reference's mask bit for bit (16-bit: the f32 rule applied to the
// 16-bit values, the result rounded once).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "ops/op_test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/dropout.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/layernorm.h"

using namespace ww;
using namespace ww::testing;

namespace {

// ---- the CPU reference ------------------------------------------------------------------------

TEST(DropoutCpu, UsesTheCounterBasedMask) {
  const int64_t n = 4099;  // not a multiple of Philox's block of eight elements
  const uint64_t seed = 1234, offset = 77;
  const float p = 0.3f;
  // round(0.3 · 65536) = 19661: the expectation-preserving scale of the rounded probability.
  ASSERT_EQ(element_dropout_threshold(p), 19661u);
  const float scale = 65536.0f / float(65536 - 19661);
  EXPECT_EQ(element_dropout_keep_scale(p), scale);
  EXPECT_NEAR(scale, 1.0f / (1.0f - p), 1e-4);
  Tensor inp = random_tensor({n}, 1), out = Tensor::empty({n}, DType::F32);
  ops::dropout_forward(out, inp, p, seed, offset);
  const std::vector<float> x = inp.to_float_vector(), y = out.to_float_vector();
  for (int64_t i = 0; i < n; ++i) {
    // The rule spelled out: half i % 8 (low half of each word first) of Philox block i / 8.
    const Philox4 words = philox_block(seed, offset, uint64_t(i / 8));
    const uint32_t half = (words.v[(i % 8) / 2] >> (16 * (i % 2))) & 0xFFFFu;
    const bool keep = half >= 19661u;
    ASSERT_EQ(keep, element_dropout_keep(seed, offset, uint64_t(i), 19661u)) << "element " << i;
    ASSERT_EQ(y[size_t(i)], keep ? x[size_t(i)] * scale : 0.0f) << "element " << i;
  }
  // Backward regenerates the same mask: zero exactly where forward dropped.
  Tensor dout = random_tensor({n}, 2), dinp = Tensor::empty({n}, DType::F32);
  ops::dropout_backward(dinp, dout, p, seed, offset);
  const std::vector<float> d = dout.to_float_vector(), dx = dinp.to_float_vector();
  for (int64_t i = 0; i < n; ++i) {
    const bool kept = y[size_t(i)] != 0.0f;
    ASSERT_EQ(dx[size_t(i)], kept ? d[size_t(i)] * scale : 0.0f) << "element " << i;
  }
  // In place gives the same bits; the same (seed, offset) the same mask; another offset or seed
  // another mask.
  Tensor again = inp.to(Device::cpu());
  ops::dropout_forward(again, again, p, seed, offset);
  EXPECT_TRUE(same_bits(again, out));
  Tensor other_offset = Tensor::empty({n}, DType::F32), other_seed = Tensor::empty({n}, DType::F32);
  ops::dropout_forward(other_offset, inp, p, seed, offset + 1);
  ops::dropout_forward(other_seed, inp, p, seed + 1, offset);
  EXPECT_FALSE(same_bits(other_offset, out));
  EXPECT_FALSE(same_bits(other_seed, out));
  // Thread count does not matter.
  Tensor single = Tensor::empty({n}, DType::F32);
  with_threads(1, [&] { ops::dropout_forward(single, inp, p, seed, offset); });
  EXPECT_TRUE(same_bits(single, out));
}

TEST(DropoutCpu, KeepsAnElementWhoseDrawEqualsTheThreshold) {
  // The rule is "keep iff draw >= round(p·65536)": pick p so that the threshold equals one
  // element's draw; that element must survive, and with a threshold one higher it must not.
  const uint64_t seed = 9, offset = 4;
  const int64_t n = 64;
  for (int64_t i : {int64_t(5), int64_t(42)}) {
    const Philox4 words = philox_block(seed, offset, uint64_t(i / 8));
    const uint32_t draw = (words.v[(i % 8) / 2] >> (16 * (i % 2))) & 0xFFFFu;
    ASSERT_GT(draw, 1u);
    ASSERT_LT(draw, 65535u);
    for (uint32_t threshold : {draw, draw + 1}) {
      const float p = float(threshold) / 65536.0f;
      ASSERT_EQ(element_dropout_threshold(p), threshold);
      Tensor ones = Tensor::from_vector(std::vector<float>(size_t(n), 1.0f), {n}), out = Tensor::empty({n}, DType::F32);
      ops::dropout_forward(out, ones, p, seed, offset);
      EXPECT_EQ(out.to_float_vector()[size_t(i)], threshold == draw ? element_dropout_keep_scale(p) : 0.0f)
          << "element " << i << ", threshold " << threshold;
    }
  }
}

// Dropout applied inside residual_forward and residual_layernorm_forward: the bits of dropout_forward
// into b followed by the plain op, b left as it was, in place (out = a), with a step counter in
// offset_base, and a bad p named.
TEST(DropoutCpu, InsideTheResidualOpsEqualsDropoutThenTheOp) {
  const int64_t N = 7, C = 100;  // 700 elements: not a multiple of Philox's eight
  const uint64_t seed = 31, offset = 5;
  const float p = 0.1f;
  Tensor a = random_tensor({N, C}, 11), b = random_tensor({N, C}, 12);
  Tensor weight = random_tensor({C}, 13), bias = random_tensor({C}, 14);
  Tensor base = Tensor::from_vector(std::vector<int32_t>{0}, {1}).to(Device::cpu());
  Tensor step = Tensor::empty({1}, DType::I64);
  step.data<int64_t>()[0] = 3 << 16;
  for (const Tensor& offset_base : {Tensor(), step}) {
    SCOPED_TRACE(offset_base.defined() ? "offset_base" : "no offset_base");
    const ops::ElementDropout drop{p, seed, offset, offset_base};
    Tensor dropped = Tensor::empty({N, C}, DType::F32);
    ops::dropout_forward(dropped, b, p, seed, offset, offset_base);

    Tensor want = Tensor::empty({N, C}, DType::F32), got = Tensor::empty({N, C}, DType::F32);
    ops::residual_forward(want, a, dropped);
    const Tensor b_before = b.to(Device::cpu());
    ops::residual_forward(got, a, b, drop);
    EXPECT_TRUE(same_bits(got, want));
    EXPECT_TRUE(same_bits(b, b_before)) << "b must not be written";
    Tensor in_place = a.to(Device::cpu());
    ops::residual_forward(in_place, in_place, b, drop);
    EXPECT_TRUE(same_bits(in_place, want));

    Tensor out_want = Tensor::empty({N, C}, DType::F32), sum_want = Tensor::empty({N, C}, DType::F32);
    Tensor mean_want = Tensor::empty({N}, DType::F32), rstd_want = Tensor::empty({N}, DType::F32);
    ops::residual_layernorm_forward(out_want, sum_want, mean_want, rstd_want, a, dropped, weight, bias, 1e-5f);
    Tensor out = Tensor::empty({N, C}, DType::F32), sum = Tensor::empty({N, C}, DType::F32);
    Tensor mean = Tensor::empty({N}, DType::F32), rstd = Tensor::empty({N}, DType::F32);
    ops::residual_layernorm_forward(out, sum, mean, rstd, a, b, weight, bias, 1e-5f, drop);
    EXPECT_TRUE(same_bits(sum, sum_want));
    EXPECT_TRUE(same_bits(out, out_want));
    EXPECT_TRUE(same_bits(mean, mean_want));
    EXPECT_TRUE(same_bits(rstd, rstd_want));
    EXPECT_TRUE(same_bits(b, b_before)) << "b must not be written";
    // Without a sum to keep (inference): the same out and statistics.
    Tensor out_only = Tensor::empty({N, C}, DType::F32);
    ops::residual_layernorm_forward(out_only, Tensor(), mean, rstd, a, b, weight, bias, 1e-5f, drop);
    EXPECT_TRUE(same_bits(out_only, out_want));
    EXPECT_TRUE(same_bits(mean, mean_want));
    EXPECT_TRUE(same_bits(rstd, rstd_want));
    EXPECT_TRUE(same_bits(b, b_before)) << "b must not be written";
  }
  Tensor out = Tensor::empty({N, C}, DType::F32);
  expect_error([&] { ops::residual_forward(out, a, b, ops::ElementDropout{1.0f, seed, offset, Tensor()}); },
               {"residual_forward", "dropout probability", "[0, 1)"});
  Tensor m = Tensor::empty({N}, DType::F32), r = Tensor::empty({N}, DType::F32), sm = Tensor::empty({N, C}, DType::F32);
  expect_error(
      [&] { ops::residual_layernorm_forward(out, sm, m, r, a, b, weight, bias, 1e-5f, {0.1f, seed, offset, base}); },
      {"residual_layernorm_forward", "offset_base must be an i64 tensor of one element"});
}

TEST(DropoutCpu, KeepsAboutOneMinusP) {
  const int64_t n = 200000;
  Tensor ones = Tensor::from_vector(std::vector<float>(static_cast<size_t>(n), 1.0f), {n}), out = Tensor::empty({n}, DType::F32);
  for (float p : {0.1f, 0.5f, 0.9f}) {
    ops::dropout_forward(out, ones, p, 42, 3);
    int64_t kept = 0;
    double sum = 0.0;
    for (float v : out.to_float_vector()) {
      kept += v != 0.0f;
      sum += v;
    }
    const double fraction = double(kept) / double(n), sigma = std::sqrt(p * (1.0 - p) / double(n));
    EXPECT_NEAR(fraction, 1.0 - p, 5 * sigma) << "p=" << p;
    EXPECT_NEAR(sum / double(n), 1.0, 5 * sigma / (1.0 - p)) << "inverted dropout keeps the mean, p=" << p;
  }
}

TEST(DropoutCpu, ZeroCopiesAndBadProbabilityIsAnError) {
  Tensor inp = random_tensor({17}, 1), out = Tensor::zeros({17}, DType::F32);
  ops::dropout_forward(out, inp, 0.0f, 1, 2);
  EXPECT_TRUE(same_bits(out, inp));
  ops::dropout_backward(out, inp, 0.0f, 1, 2);
  EXPECT_TRUE(same_bits(out, inp));
  expect_error([&] { ops::dropout_forward(out, inp, 1.0f, 1, 2); }, {"dropout_forward", "[0, 1)", "1"});
  expect_error([&] { ops::dropout_backward(out, inp, -0.1f, 1, 2); }, {"dropout_backward", "[0, 1)"});
  expect_error([&] { ops::dropout_forward(out, inp, std::nanf(""), 1, 2); }, {"dropout_forward", "[0, 1)"});
}

// ---- every device and dtype against the CPU reference ---------------------------------------

class DropoutTest : public DeviceDtypeTest {};

// f32: forward, backward, an unaligned view (one element in: the kernel's scalar form) and in
// place give the CPU's bits. 16-bit: the f32 rule on the 16-bit values, rounded once (bits), and
// the dropped positions are the f32 mask's.
TEST_P(DropoutTest, MaskMatchesTheCpuReference) {
  const uint64_t seed = 0x0123456789ABCDEFull, offset = (uint64_t(1) << 33) + 5;  // high words matter
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(4), int64_t(5), int64_t(1023), int64_t(100001)}) {
    for (float p : {0.0f, 0.1f, 0.5f}) {
      SCOPED_TRACE(what("dropout", {n}) + " p=" + std::to_string(p));
      Tensor inp = reference_input(random_cpu({n}, uint64_t(n) + 9)), inp_param = put(inp);
      Tensor out = poisoned_cpu({n}), got = nan_tensor({n});
      ops::dropout_forward(out, inp, p, seed, offset);
      ops::dropout_forward(got, inp_param, p, seed, offset);
      expect_same_bits(got, ww::testing::rounded(out, dtype()), "dropout forward");
      if (is_16bit()) continue;
      Tensor dinp = poisoned_cpu({n}), got_dinp = nan_tensor({n});
      ops::dropout_backward(dinp, inp, p, seed, offset + 1);
      ops::dropout_backward(got_dinp, inp_param, p, seed, offset + 1);
      expect_same_bits(got_dinp, dinp, "dropout backward");
      if (n > 1) {  // a view one element in: not 16-byte aligned, so the kernel's scalar form
        Tensor view_out = poisoned_cpu({n - 1}), got_view = nan_tensor({n - 1});
        ops::dropout_forward(view_out, inp.slice(1, n), p, seed, offset);
        ops::dropout_forward(got_view, inp_param.slice(1, n), p, seed, offset);
        expect_same_bits(got_view, view_out, "dropout of an unaligned view");
      }
      ops::dropout_forward(inp_param, inp_param, p, seed, offset);  // in place
      expect_same_bits(inp_param, out, "dropout in place");
    }
  }
  if (!is_16bit()) return;
  for (const Shape& shape : std::vector<Shape>{{1}, {7}, {3, 333}, {4097}, {2, 5, 768}}) {
    const std::string forward = what("dropout_forward", shape);
    // Inputs away from zero, so a zero output means "dropped".
    Tensor x = reference_input(random_cpu(shape, 3, 0.1f, 1.0f));
    Tensor out = Tensor::empty(shape, DType::F32);
    ops::dropout_forward(out, x, 0.3f, 42, 7);
    Tensor got = nan_tensor(shape);
    ops::dropout_forward(got, put(x), 0.3f, 42, 7);
    expect_close(got, out, forward, rtol());
    const std::vector<float> got_values = read(got), want = out.to_float_vector();
    int64_t mask_differences = 0;
    for (size_t i = 0; i < got_values.size(); ++i) mask_differences += (got_values[i] == 0.0f) != (want[i] == 0.0f);
    EXPECT_EQ(mask_differences, 0) << forward << ": dropped positions differ from the f32 mask";

    Tensor got_back = nan_tensor(shape);
    ops::dropout_backward(got_back, put(x), 0.3f, 42, 7);
    Tensor back = Tensor::empty(shape, DType::F32);
    ops::dropout_backward(back, x, 0.3f, 42, 7);
    expect_close(got_back, back, what("dropout_backward", shape), rtol());
  }
}

WW_INSTANTIATE_DEVICE_DTYPE_TEST(DropoutTest, all_devices_and_dtypes());

// ---- CUDA ---------------------------------------------------------------------------------------

// Dropout inside residual_forward and residual_layernorm_forward on the GPU: the bits of
// dropout_forward into b followed by the plain op, in f32, bf16 and f16, on the 16-byte vector path
// (C = 768) and the scalar one (C = 100, and views one element in), with the step counter in a
// device offset_base; b is not written.
TEST(DropoutCuda, InsideTheResidualOpsEqualsDropoutThenTheOp) {
  WW_REQUIRE_CUDA();
  const uint64_t seed = 77, offset = (uint64_t(2) << 32) + 9;
  Tensor step = Tensor::empty({1}, DType::I64);
  step.data<int64_t>()[0] = int64_t(5) << 16;
  const Tensor step_gpu = step.to(Device::cuda(0));
  for (const auto& [N, C, shift] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {64, 768, 0}, {7, 100, 0}, {9, 768, 1}}) {
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C) + " shift=" + std::to_string(shift) + " " +
                   std::string(dtype_name(dtype)));
      // Operands `shift` elements into their buffers (shift 1: not 16-byte aligned).
      auto operand = [&](uint64_t data_seed, Tensor& owner) {
        owner = gpu_as(random_cpu({N * C + shift}, data_seed), dtype);
        return Tensor::view(static_cast<char*>(owner.raw()) + shift * dtype_size(dtype), {N, C}, dtype,
                            Device::cuda(0));
      };
      Tensor a_owner, b_owner;
      const Tensor a = operand(21, a_owner), b = operand(22, b_owner);
      const Tensor weight = to_gpu(random_cpu({C}, 23)), bias = to_gpu(random_cpu({C}, 24));
      const ops::ElementDropout drop{0.1f, seed, offset, step_gpu};
      Tensor dropped = Tensor::empty({N, C}, dtype, Device::cuda(0));
      ops::dropout_forward(dropped, b, 0.1f, seed, offset, step_gpu);
      const std::vector<float> b_before = from_gpu(b);

      Tensor want = Tensor::empty({N, C}, dtype, Device::cuda(0)), got = Tensor::empty({N, C}, dtype, Device::cuda(0));
      ops::residual_forward(want, a, dropped);
      ops::residual_forward(got, a, b, drop);
      expect_same_bits(got, Tensor::from_vector(from_gpu(want), {N, C}), "residual + dropout");

      auto f32 = [&](const Shape& shape) { return Tensor::empty(shape, DType::F32, Device::cuda(0)); };
      Tensor out_want = Tensor::empty({N, C}, dtype, Device::cuda(0)), sum_want = Tensor::empty({N, C}, dtype, Device::cuda(0));
      Tensor mean_want = f32({N}), rstd_want = f32({N});
      ops::residual_layernorm_forward(out_want, sum_want, mean_want, rstd_want, a, dropped, weight, bias, 1e-5f);
      Tensor out = Tensor::empty({N, C}, dtype, Device::cuda(0)), sum = Tensor::empty({N, C}, dtype, Device::cuda(0));
      Tensor mean = f32({N}), rstd = f32({N});
      ops::residual_layernorm_forward(out, sum, mean, rstd, a, b, weight, bias, 1e-5f, drop);
      expect_same_bits(sum, Tensor::from_vector(from_gpu(sum_want), {N, C}), "residual LayerNorm + dropout: sum");
      expect_same_bits(out, Tensor::from_vector(from_gpu(out_want), {N, C}), "residual LayerNorm + dropout: out");
      expect_same_bits(mean, Tensor::from_vector(from_gpu(mean_want), {N}), "mean");
      expect_same_bits(rstd, Tensor::from_vector(from_gpu(rstd_want), {N}), "rstd");
      EXPECT_EQ(from_gpu(b), b_before) << "b must not be written";
    }
  }
}

// Inference's residual LayerNorm keeps no sum (sum undefined): the same out, mean and rstd bits as
// with the sum stored, with and without dropout, on the vector path (33 rows: parameters
// prefetched; 1,100: not), the scalar one (C = 100) and
// rows longer than a lane's register cache (C = 1,536 on the vector path, 2,001 on the scalar

}  // namespace
