// ops::linear_* (plain, padded, with the tanh-GELU fused): the CPU reference (OpenBLAS) against
// double precision and by its contract, and every device × dtype against the CPU reference
// (tolerances: tests/ops/op_test_util.h; the GEMMs here have K <= 768, so both sides' fp32 rounding
// stays well inside 1e-5; parameter gradients are f32 for every dtype). Then the CUDA paths the CPU
// has no counterpart for: cuBLASLt's epilogues, autotuning, GPT-2's padded head.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "ops/op_test_util.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/activation.h"
#include "wattwise/ops/attention.h"
#include "wattwise/ops/cross_entropy.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/graph.h"
#include "wattwise/ops/linear.h"
#ifdef WW_HAVE_CUDA
#include "kernels/linear.h"
#endif

using namespace ww;
using namespace ww::testing;

namespace {

// ---- the CPU reference ------------------------------------------------------------------------

TEST(LinearCpu, ForwardAndBackwardMatchReference) {
  struct Case {
    int64_t N, IC, OC;
  };
  for (const Case& k : std::vector<Case>{{1, 1, 1}, {7, 13, 5}, {37, 150, 67}, {300, 129, 130}}) {
    for (bool with_bias : {true, false}) {
      SCOPED_TRACE("N=" + std::to_string(k.N) + " IC=" + std::to_string(k.IC) + " OC=" + std::to_string(k.OC) +
                   (with_bias ? " bias" : " no bias"));
      Tensor inp = random_tensor({k.N, k.IC}, 1), weight = random_tensor({k.OC, k.IC}, 2, 0.1f),
             bias = random_tensor({k.OC}, 3);
      Tensor out = Tensor::empty({k.N, k.OC}, DType::F32);
      ops::linear_forward(out, inp, weight, with_bias ? bias : Tensor());
      const std::vector<double> x = as_double(inp), w = as_double(weight), b = as_double(bias);
      std::vector<double> want(static_cast<size_t>(k.N * k.OC));
      for (int64_t n = 0; n < k.N; ++n)
        for (int64_t o = 0; o < k.OC; ++o) {
          double s = with_bias ? b[size_t(o)] : 0.0;
          for (int64_t i = 0; i < k.IC; ++i) s += x[size_t(n * k.IC + i)] * w[size_t(o * k.IC + i)];
          want[size_t(n * k.OC + o)] = s;
        }
      expect_close(out, want, "linear out");

      // Backward: analytic double reference (the op is bilinear). dinp is overwritten (pre-filled
      // with garbage); dweight and dbias accumulate onto their previous values.
      Tensor dout = random_tensor({k.N, k.OC}, 4);
      Tensor dinp = random_tensor({k.N, k.IC}, 5), dweight = random_tensor({k.OC, k.IC}, 6),
             dbias = random_tensor({k.OC}, 7);
      const std::vector<double> d = as_double(dout);
      std::vector<double> want_dinp(static_cast<size_t>(k.N * k.IC), 0.0), want_dweight = as_double(dweight),
                          want_dbias = as_double(dbias);
      for (int64_t n = 0; n < k.N; ++n)
        for (int64_t o = 0; o < k.OC; ++o) {
          const double g = d[size_t(n * k.OC + o)];
          want_dbias[size_t(o)] += g;
          for (int64_t i = 0; i < k.IC; ++i) {
            want_dinp[size_t(n * k.IC + i)] += g * w[size_t(o * k.IC + i)];
            want_dweight[size_t(o * k.IC + i)] += g * x[size_t(n * k.IC + i)];
          }
        }
      ops::linear_backward(dinp, dweight, with_bias ? dbias : Tensor(), dout, inp, weight);
      expect_close(dinp, want_dinp, "dinp");
      expect_close(dweight, want_dweight, "dweight");
      if (with_bias) expect_close(dbias, want_dbias, "dbias");
    }
  }
}

TEST(LinearCpu, BackwardAccumulatesAndSkipsAbsentGradients) {
  Tensor inp = random_tensor({9, 5}, 1), weight = random_tensor({4, 5}, 2), dout = random_tensor({9, 4}, 3);
  Tensor once_w = Tensor::zeros({4, 5}, DType::F32), once_b = Tensor::zeros({4}, DType::F32);
  ops::linear_backward(Tensor(), once_w, once_b, dout, inp, weight);
  Tensor twice_w = Tensor::zeros({4, 5}, DType::F32), twice_b = Tensor::zeros({4}, DType::F32);
  ops::linear_backward(Tensor(), twice_w, twice_b, dout, inp, weight);
  ops::linear_backward(Tensor(), twice_w, twice_b, dout, inp, weight);
  std::vector<double> doubled_w = as_double(once_w), doubled_b = as_double(once_b);
  for (double& v : doubled_w) v *= 2;
  for (double& v : doubled_b) v *= 2;
  expect_close(twice_w, doubled_w, "dweight after two calls");
  expect_close(twice_b, doubled_b, "dbias after two calls");
  // dinp may share memory with inp (it is written last).
  Tensor dinp_expected = Tensor::empty({9, 5}, DType::F32);
  ops::linear_backward(dinp_expected, Tensor(), Tensor(), dout, inp, weight);
  Tensor alias_w = Tensor::zeros({4, 5}, DType::F32);
  Tensor inp_copy = inp.to(Device::cpu());
  ops::linear_backward(inp_copy, alias_w, Tensor(), dout, inp_copy, weight);
  EXPECT_TRUE(same_bits(inp_copy, dinp_expected));
  EXPECT_TRUE(same_bits(alias_w, once_w));
}

TEST(LinearCpu, BiasGradientIsDeterministicAcrossThreadCounts) {
  Tensor inp = random_tensor({513, 40}, 1), weight = random_tensor({300, 40}, 2), dout = random_tensor({513, 300}, 3);
  std::vector<Tensor> dbias;
  for (int threads : {1, 2, 3}) {
    Tensor g = Tensor::zeros({300}, DType::F32);
    with_threads(threads, [&] { ops::linear_backward(Tensor(), Tensor(), g, dout, inp, weight); });
    dbias.push_back(g);
  }
  EXPECT_TRUE(same_bits(dbias[0], dbias[1]));
  EXPECT_TRUE(same_bits(dbias[0], dbias[2]));
  // The sgemm paths give the same bits when repeated.
  std::vector<Tensor> runs;
  for (int repeat = 0; repeat < 2; ++repeat) {
    Tensor dinp = Tensor::empty({513, 40}, DType::F32), dweight = Tensor::zeros({300, 40}, DType::F32),
           out = Tensor::empty({513, 300}, DType::F32);
    ops::linear_forward(out, inp, weight, dbias[0]);
    ops::linear_backward(dinp, dweight, Tensor(), dout, inp, weight);
    runs.insert(runs.end(), {out, dinp, dweight});
  }
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(same_bits(runs[i], runs[i + 3])) << "tensor " << i;
}

TEST(LinearCpu, RejectsBadShapes) {
  Tensor inp = random_tensor({6, 5}, 1), weight = random_tensor({4, 5}, 2), out = Tensor::empty({6, 4}, DType::F32);
  expect_error([&] { ops::linear_forward(out, inp, weight, random_tensor({3}, 3)); },
               {"linear_forward", "'bias'", "4 elements"});
  expect_error([&] { ops::linear_forward(out, random_tensor({6, 3}, 1), weight, Tensor()); },
               {"linear_forward", "'inp'", "multiple of 5"});
  expect_error([&] { ops::linear_forward(Tensor::empty({6, 5}, DType::F32), inp, weight, Tensor()); },
               {"linear_forward", "'out'", "24 elements"});
  expect_error([&] { ops::linear_forward(out, inp, Tensor::empty({4, 5}, DType::I32), Tensor()); },
               {"linear_forward", "'weight'", "f32"});
  expect_error([&] { ops::linear_forward(inp, inp, Tensor::empty({5, 5}, DType::F32), Tensor()); },
               {"linear_forward", "'out'", "'inp'"});
  expect_error([&] { ops::linear_backward(Tensor(), Tensor::empty({4, 4}, DType::F32), Tensor(), out, inp, weight); },
               {"linear_backward", "'dweight'"});
}

// linear_gelu_tanh_forward / linear_backward_gelu_tanh are, by definition, linear then GELU (tanh
// form) and its backward: the CPU path must give exactly those bits, with and without pre kept.
TEST(LinearCpu, GeluTanhOpsAreLinearThenGelu) {
  const int64_t N = 7, IC = 5, OC = 6;
  Tensor inp = random_tensor({N, IC}, 11), weight = random_tensor({OC, IC}, 12), bias = random_tensor({OC}, 13);
  Tensor pre_want = Tensor::empty({N, OC}, DType::F32), out_want = Tensor::empty({N, OC}, DType::F32);
  ops::linear_forward(pre_want, inp, weight, bias);
  ops::gelu_tanh_forward(out_want, pre_want);
  Tensor pre = Tensor::empty({N, OC}, DType::F32), out = Tensor::empty({N, OC}, DType::F32);
  ops::linear_gelu_tanh_forward(out, pre, inp, weight, bias);
  EXPECT_EQ(pre.to_float_vector(), pre_want.to_float_vector());
  EXPECT_EQ(out.to_float_vector(), out_want.to_float_vector());
  Tensor out_only = Tensor::empty({N, OC}, DType::F32);
  ops::linear_gelu_tanh_forward(out_only, Tensor(), inp, weight, bias);
  EXPECT_EQ(out_only.to_float_vector(), out_want.to_float_vector());

  // The next layer (OC → 3) and its backward through the GELU.
  Tensor w2 = random_tensor({3, OC}, 14), dout = random_tensor({N, 3}, 15);
  Tensor dw_want = random_tensor({3, OC}, 16), db_want = random_tensor({3}, 17);
  Tensor dw = Tensor::from_vector(dw_want.to_float_vector(), {3, OC}), db = Tensor::from_vector(db_want.to_float_vector(), {3});
  Tensor dact = Tensor::empty({N, OC}, DType::F32), dpre_want = Tensor::empty({N, OC}, DType::F32);
  ops::linear_backward(dact, dw_want, db_want, dout, out_want, w2);
  ops::gelu_tanh_backward(dpre_want, pre_want, dact);
  Tensor dpre = Tensor::empty({N, OC}, DType::F32);
  ops::linear_backward_gelu_tanh(dpre, dw, db, dout, out, w2, pre);
  EXPECT_EQ(dpre.to_float_vector(), dpre_want.to_float_vector());
  EXPECT_EQ(dw.to_float_vector(), dw_want.to_float_vector());
  EXPECT_EQ(db.to_float_vector(), db_want.to_float_vector());

  expect_error([&] { ops::linear_gelu_tanh_forward(out, Tensor::empty({N, 4}, DType::F32), inp, weight, bias); },
               {"linear_gelu_tanh_forward", "'pre'", "42 elements"});
  expect_error([&] { ops::linear_gelu_tanh_forward(out, out, inp, weight, bias); },
               {"linear_gelu_tanh_forward", "'out'", "'pre'"});
  expect_error([&] { ops::linear_backward_gelu_tanh(pre, dw, db, dout, out, w2, pre); },
               {"linear_backward_gelu_tanh", "'dpre'", "'pre'"});
  expect_error([&] { ops::linear_backward_gelu_tanh(dpre, dw, db, dout, out, w2, Tensor::empty({N, 2}, DType::F32)); },
               {"linear_backward_gelu_tanh", "'pre'", "42 elements"});
}

// The padded forms (GPT-2's head): out / dout are [N, L] with L >= OC; only the first OC columns
// are written or read. The padding starts as NaN: a read of it would poison every result, and it
// must still be NaN afterwards.
TEST(LinearCpu, PaddedLinearAndCrossEntropyUseOnlyTheFirstColumns) {
  const int64_t N = 37, IC = 150, OC = 67, L = 72;
  Tensor inp = random_tensor({N, IC}, 1), weight = random_tensor({OC, IC}, 2, 0.1f);
  auto padded_copy = [&](const Tensor& rows) {  // [N, OC] → [N, L] with NaN padding
    std::vector<float> v = rows.to_float_vector(), out(size_t(N * L), std::nanf(""));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < OC; ++o) out[size_t(n * L + o)] = v[size_t(n * OC + o)];
    return Tensor::from_vector(out, {N, L});
  };
  auto used_columns = [&](const Tensor& padded) {  // [N, L] → [N, OC], checking the padding is untouched
    std::vector<float> v = padded.to_float_vector(), out;
    int64_t touched = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < L; ++o)
        if (o < OC) out.push_back(v[size_t(n * L + o)]);
        else touched += !std::isnan(v[size_t(n * L + o)]);
    EXPECT_EQ(touched, 0) << "padding columns written";
    return Tensor::from_vector(out, {N, OC});
  };
  Tensor out = Tensor::empty({N, OC}, DType::F32);
  ops::linear_forward(out, inp, weight, Tensor());
  Tensor padded = padded_copy(Tensor::zeros({N, OC}, DType::F32));
  ops::linear_forward_padded(padded, inp, weight);
  expect_close(used_columns(padded), as_double(out), "padded logits");

  // Cross-entropy over the first OC columns, in place, equals the contiguous call bit for bit.
  std::vector<int32_t> labels = random_ids(N, OC, 3);
  labels[1] = -100;
  labels[2] = int32_t(OC - 1);
  const Tensor label_tensor = Tensor::from_vector(labels, {N});
  Tensor losses = Tensor::empty({N}, DType::F32), padded_losses = Tensor::empty({N}, DType::F32);
  ops::cross_entropy_forward_padded(padded_losses, padded, OC, label_tensor, 0.1f);
  ops::cross_entropy_forward(losses, out, label_tensor, 0.1f);
  EXPECT_TRUE(same_bits(padded_losses, losses));
  ops::cross_entropy_forward_backward(losses, out, out, label_tensor, 0.1f, 0.25f);
  ops::cross_entropy_forward_backward_padded(padded_losses, padded, padded, OC, label_tensor, 0.1f, 0.25f);
  EXPECT_TRUE(same_bits(padded_losses, losses));
  EXPECT_TRUE(same_bits(used_columns(padded), out));

  // Backward from the padded gradient: the same dinp and dweight as from the contiguous one.
  Tensor dinp = Tensor::empty({N, IC}, DType::F32), dweight = Tensor::zeros({OC, IC}, DType::F32);
  ops::linear_backward(dinp, dweight, Tensor(), out, inp, weight);
  Tensor padded_dinp = Tensor::empty({N, IC}, DType::F32), padded_dweight = Tensor::zeros({OC, IC}, DType::F32);
  ops::linear_backward_padded(padded_dinp, padded_dweight, padded, inp, weight);
  expect_close(padded_dinp, as_double(dinp), "dinp from padded dout");
  expect_close(padded_dweight, as_double(dweight), "dweight from padded dout");

  expect_error([&] { ops::linear_forward_padded(Tensor::empty({N, OC - 1}, DType::F32), inp, weight); },
               {"linear_forward_padded", "'out'", "L >= 67"});
  expect_error([&] { ops::linear_backward_padded(Tensor(), dweight, Tensor::empty({N + 1, L}, DType::F32), inp,
                                                 weight); },
               {"linear_backward_padded", "'dout'", "[37, L]"});
  expect_error([&] { ops::cross_entropy_forward_padded(losses, padded, L + 1, label_tensor, 0.0f); },
               {"cross_entropy_forward_padded", "73 classes"});
  std::vector<int32_t> bad = labels;
  bad[4] = int32_t(OC);  // a padding column is not a class
  expect_error([&] { ops::cross_entropy_forward_backward_padded(losses, padded, padded, OC,
                                                                 Tensor::from_vector(bad, {N}), 0.0f, 1.0f); },
               {"label 67", "row 4", "[0, 67)"});
}

TEST(LinearCpu, Tf32SwitchDefaultsOffAndDoesNotChangeTheCpu) {
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

// ---- every device and dtype against the CPU reference ---------------------------------------

// `values` on the GPU in `dtype` (16-bit: rounded to nearest even by ops::cast).
Tensor gpu_in(const std::vector<float>& values, const Shape& shape, DType dtype) {
  Tensor wide = cpu_tensor(values, shape).to(Device::cuda(0));
  if (dtype == DType::F32) return wide;
  Tensor narrow = Tensor::empty(shape, dtype, Device::cuda(0));
  ops::cast(narrow, wide);
  return narrow;
}

struct Case {
  int64_t N, IC, OC;
  bool bias;
  int64_t shift;  // element offset of inp and bias views (0 = aligned allocations)
};

std::string name(const Case& c) {
  return "N=" + std::to_string(c.N) + " IC=" + std::to_string(c.IC) + " OC=" + std::to_string(c.OC) +
         (c.bias ? " bias" : " no bias") + " shift=" + std::to_string(c.shift);
}

// f32: shifted operands (not 256-byte aligned), bias gradients over several 256-row chunks with
// 16-byte column loads, a weight gradient in two GEMMs.
const std::vector<Case> kCases = {
    {1, 1, 1, true, 0},      {7, 13, 5, true, 0},     {7, 13, 5, false, 0},   {33, 257, 129, true, 1},
    {64, 768, 768, true, 0}, {130, 64, 300, true, 3}, {5, 96, 17, false, 1},
    {0, 12, 8, true, 0},     {9, 12, 0, true, 0},
    // Bias gradients over several 256-row chunks, 16-byte column loads, a part-filled column tile.
    {600, 32, 520, true, 0},
    // A weight gradient in two GEMMs (OC >= 1024, not a multiple of 128: 1024 + 76 columns).
    {300, 64, 1100, true, 0}, {300, 64, 1100, false, 2},
};
// 16-bit.
const std::vector<Case> kCases16 = {{1, 1, 1, true, 0},     {7, 13, 5, true, 0},     {7, 13, 5, false, 0},
                                    {33, 257, 129, true, 0}, {64, 768, 768, true, 0}, {130, 64, 300, true, 0},
                                    {0, 12, 8, true, 0}};

class LinearTest : public DeviceDtypeTest {
 protected:
  // The parameter's tensor holding `cpu`, `shift` elements into a larger buffer kept by `owner`.
  Tensor put_shifted(const Tensor& cpu, int64_t shift, Tensor& owner) const {
    if (shift == 0) return put(cpu);
    owner = Tensor::empty({cpu.numel() + shift}, dtype(), device());
    Tensor view = Tensor::view(static_cast<char*>(owner.raw()) + shift * int64_t(dtype_size(dtype())), cpu.shape(),
                               dtype(), device());
    const Tensor source = put(cpu);
    if (on_cuda()) sync_device();
    view.copy_from(source);
    if (on_cuda()) sync_device();
    return view;
  }
};

// Outputs that are overwritten start as NaN; accumulated ones (dweight, dbias) start from the same
// random values on both sides.
TEST_P(LinearTest, MatchesTheCpuReference) {
  for (const Case& c : is_16bit() ? kCases16 : kCases) {
    SCOPED_TRACE(what("linear", {c.N, c.IC}) + " " + name(c));
    Tensor inp = reference_input(random_cpu({c.N, c.IC}, 1));
    Tensor weight = reference_input(random_cpu({c.OC, c.IC}, 2, 0.1f));
    Tensor bias = c.bias ? reference_input(random_cpu({c.OC}, 3)) : Tensor();
    Tensor out = Tensor::empty({c.N, c.OC}, DType::F32);
    ops::linear_forward(out, inp, weight, bias);
    Tensor inp_owner, bias_owner;
    const Tensor inp_p = put_shifted(inp, c.shift, inp_owner), weight_p = put(weight);
    const Tensor bias_p = c.bias ? put_shifted(bias, c.shift, bias_owner) : Tensor();
    Tensor got = nan_tensor({c.N, c.OC});
    ops::linear_forward(got, inp_p, weight_p, bias_p);
    expect_matches(got, out, "out", rtol());

    Tensor dout = reference_input(random_cpu({c.N, c.OC}, 6));
    Tensor dweight = random_cpu({c.OC, c.IC}, 7), dbias = random_cpu({c.OC}, 8);  // accumulated into
    Tensor got_dweight = put_f32(dweight), got_dbias = c.bias ? put_f32(dbias) : Tensor();
    Tensor dinp = Tensor::empty({c.N, c.IC}, DType::F32);
    ops::linear_backward(dinp, dweight, c.bias ? dbias : Tensor(), dout, inp, weight);
    Tensor got_dinp = nan_tensor({c.N, c.IC});
    ops::linear_backward(got_dinp, got_dweight, got_dbias, put(dout), inp_p, weight_p);
    expect_matches(got_dinp, dinp, "dinp", rtol());
    expect_matches(got_dweight, dweight, "dweight", param_grad_rtol());
    if (c.bias) expect_matches(got_dbias, dbias, "dbias", param_grad_rtol());
  }
}

WW_INSTANTIATE_DEVICE_DTYPE_TEST(LinearTest, all_devices_and_dtypes());

// ---- CUDA ---------------------------------------------------------------------------------------

TEST(LinearCuda, BackwardOptionalOutputsAndDinpSharingInp) {
  WW_REQUIRE_CUDA();
  const int64_t N = 19, IC = 24, OC = 11;
  Tensor inp = cpu_tensor(random_normals(N * IC, 9), {N, IC});
  Tensor weight = cpu_tensor(random_normals(OC * IC, 10), {OC, IC});
  Tensor dout = cpu_tensor(random_normals(N * OC, 11), {N, OC});
  Tensor dweight = Tensor::zeros({OC, IC}, DType::F32);
  Tensor dinp = Tensor::empty({N, IC}, DType::F32);
  ops::linear_backward(dinp, dweight, Tensor(), dout, inp, weight);

  // dinp written into inp's own memory (allowed: dweight reads inp first).
  Tensor g_inp = gpu_copy(inp), g_dweight = Tensor::zeros({OC, IC}, DType::F32, Device::cuda(0));
  ops::linear_backward(g_inp, g_dweight, Tensor(), gpu_copy(dout), g_inp, gpu_copy(weight));
  expect_close(read_back(g_inp), dinp.to_float_vector(), "dinp (in inp's memory)", kRtol);
  expect_close(read_back(g_dweight), dweight.to_float_vector(), "dweight", kRtol);

  // Only dweight; only dinp.
  Tensor g_dweight2 = Tensor::zeros({OC, IC}, DType::F32, Device::cuda(0));
  ops::linear_backward(Tensor(), g_dweight2, Tensor(), gpu_copy(dout), gpu_copy(inp), gpu_copy(weight));
  expect_close(read_back(g_dweight2), dweight.to_float_vector(), "dweight alone", kRtol);
  Tensor g_dinp = gpu_poisoned({N, IC});
  ops::linear_backward(g_dinp, Tensor(), Tensor(), gpu_copy(dout), gpu_copy(inp), gpu_copy(weight));
  expect_close(read_back(g_dinp), dinp.to_float_vector(), "dinp alone", kRtol);
}

TEST(LinearCuda, BiasGradientIsDeterministic) {
  WW_REQUIRE_CUDA();
  const int64_t N = 4099, IC = 8, OC = 77;
  Tensor g_dout = gpu_copy(cpu_tensor(random_normals(N * OC, 12), {N, OC}));
  Tensor g_inp = gpu_copy(cpu_tensor(random_normals(N * IC, 13), {N, IC}));
  Tensor g_weight = gpu_copy(cpu_tensor(random_normals(OC * IC, 14), {OC, IC}));
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    Tensor g_dbias = Tensor::zeros({OC}, DType::F32, Device::cuda(0));
    ops::linear_backward(Tensor(), Tensor(), g_dbias, g_dout, g_inp, g_weight);
    std::vector<float> got = read_back(g_dbias);
    if (run == 0) first = got;
    else EXPECT_EQ(got, first) << "run " << run << " differs bitwise from run 0";
  }
}

// GPT-2's head at its real sizes: logits in rows padded from 50,257 to 50,304 elements (so the
// GEMMs get 16-byte-aligned rows) give the contiguous layout's results, and the padding is never
// written or read (it starts as NaN; a read would poison the sums).
TEST(LinearCuda, PaddedLmHeadAtGpt2VocabMatchesContiguous) {
  WW_REQUIRE_CUDA();
  const int64_t N = 64, IC = 768, OC = 50257, L = 50304;
  const Device gpu = Device::cuda(0);
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    auto upload = [&](const std::vector<float>& values, const Shape& shape) { return gpu_in(values, shape, dtype); };
    auto padded_layout = [&](const std::vector<float>& rows) {  // [N, OC] → [N, L], NaN padding
      std::vector<float> out(size_t(N * L), std::numeric_limits<float>::quiet_NaN());
      for (int64_t n = 0; n < N; ++n)
        std::copy_n(rows.begin() + n * OC, OC, out.begin() + n * L);
      return out;
    };
    auto used_columns = [&](const std::vector<float>& padded, const std::string& what) {
      std::vector<float> out;
      int64_t touched = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < L; ++o)
          if (o < OC) out.push_back(padded[size_t(n * L + o)]);
          else touched += !std::isnan(padded[size_t(n * L + o)]);
      EXPECT_EQ(touched, 0) << what << ": padding columns written";
      return out;
    };
    const double rtol = dtype == DType::F32 ? 1e-4 : 2e-2;
    Tensor inp = upload(random_normals(N * IC, 21), {N, IC});
    Tensor weight = upload(random_normals(OC * IC, 22, 0.05f), {OC, IC});

    Tensor out = Tensor::empty({N, OC}, dtype, gpu);
    ops::linear_forward(out, inp, weight, Tensor());
    Tensor padded = upload(padded_layout(std::vector<float>(size_t(N * OC), 0.0f)), {N, L});
    ops::linear_forward_padded(padded, inp, weight);
    const std::vector<float> logits = read_back(out);
    expect_close(used_columns(read_back(padded), "logits"), logits, "padded logits", rtol);

    // The same logits in both layouts: the same cross-entropy up to the summation order (a row's
    // split into 16-byte vectors depends on where it starts, and padded rows all start aligned).
    std::vector<int32_t> label_values(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) label_values[size_t(n)] = int32_t((n * 7919) % OC);
    label_values[3] = -100;
    label_values[5] = int32_t(OC - 1);
    Tensor labels = Tensor::from_vector(label_values, {N}).to(gpu);
    padded = upload(padded_layout(logits), {N, L});
    Tensor losses = gpu_poisoned({N}), padded_losses = gpu_poisoned({N});
    ops::cross_entropy_forward_backward(losses, out, out, labels, 0.1f, 1.0f / 63.0f);
    ops::cross_entropy_forward_backward_padded(padded_losses, padded, padded, OC, labels, 0.1f, 1.0f / 63.0f);
    expect_close(read_back(padded_losses), read_back(losses), "losses", 1e-6);
    expect_close(used_columns(read_back(padded), "dlogits"), read_back(out), "dlogits",
                 dtype == DType::F32 ? 1e-5 : 1e-2);

    // Backward from the gradient in either layout.
    Tensor dinp = Tensor::empty({N, IC}, dtype, gpu), padded_dinp = Tensor::empty({N, IC}, dtype, gpu);
    Tensor dweight = Tensor::zeros({OC, IC}, DType::F32, gpu), padded_dweight = Tensor::zeros({OC, IC}, DType::F32, gpu);
    ops::linear_backward(dinp, dweight, Tensor(), out, inp, weight);
    ops::linear_backward_padded(padded_dinp, padded_dweight, padded, inp, weight);
    expect_close(read_back(padded_dinp), read_back(dinp), "dinp", rtol);
    expect_close(read_back(padded_dweight), read_back(dweight), "dweight", dtype == DType::F32 ? 1e-4 : 1e-3);
  }
}

// GEMM autotuning at GPT-2's LM-head shape (bf16, 158 GFLOP: above the tuning threshold): the
// timed choice computes what the heuristic's first choice computes (up to the last bf16 bit), the
// padding columns stay untouched, and a tunable GEMM first met inside CUDA-graph capture records
// (nothing is timed or synchronised there) and replays to the same logits.
TEST(LinearCuda, AutotunedLmHeadGemmMatchesHeuristicChoiceAndCaptures) {
  WW_REQUIRE_CUDA();
  const int64_t IC = 768, OC = 50257, L = 50304;
  const Device gpu = Device::cuda(0);
  auto bf16 = [](const std::vector<float>& values, const Shape& shape) { return gpu_in(values, shape, DType::BF16); };
  Tensor weight = bf16(random_normals(OC * IC, 31, 0.05f), {OC, IC});
  auto logits = [&](int64_t N, bool tuned, bool captured) {
    Tensor inp = bf16(random_normals(N * IC, 32), {N, IC});
    Tensor out = bf16(std::vector<float>(size_t(N * L), 7.0f), {N, L});
    ops::set_gemm_autotuning(tuned);
    if (captured) {
      ops::CapturedWork work = ops::CapturedWork::capture(gpu, [&] { ops::linear_forward_padded(out, inp, weight); });
      work.replay();
    } else {
      ops::linear_forward_padded(out, inp, weight);
    }
    ops::set_gemm_autotuning(true);
    return read_back(out);
  };
  for (const auto& [N, captured] : std::vector<std::pair<int64_t, bool>>{{2048, false}, {2056, true}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + (captured ? " captured" : ""));
    const std::vector<float> heuristic = logits(N, false, false), tuned = logits(N, true, captured);
    int64_t off = 0, padding = 0;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t o = 0; o < OC; ++o) {
        const float h = heuristic[size_t(n * L + o)], t = tuned[size_t(n * L + o)];
        off += !(std::fabs(t - h) <= 8e-3 * std::fabs(h) + 1e-3);
      }
      for (int64_t o = OC; o < L; ++o) padding += tuned[size_t(n * L + o)] != 7.0f;
    }
    EXPECT_EQ(off, 0) << "logits beyond one bf16 rounding from the heuristic choice's";
    EXPECT_EQ(padding, 0) << "padding columns written";
  }
  EXPECT_TRUE(ops::gemm_autotuning());
}

// The LM head's weight gradient, an accumulating GEMM (dweight += doutᵀ·inp, f32 out, 158 GFLOP):
// autotuning times its candidates on a scratch D, so dweight is added to exactly once and ends up
// where the heuristic choice puts it (the f32 sums of different kernels differ in rounding only).
TEST(LinearCuda, AutotunedAccumulatingGemmAddsOnce) {
  WW_REQUIRE_CUDA();
  const int64_t N = 2048, IC = 768, OC = 50257, L = 50304;
  const Device gpu = Device::cuda(0);
  auto bf16 = [](const std::vector<float>& values, const Shape& shape) { return gpu_in(values, shape, DType::BF16); };
  Tensor inp = bf16(random_normals(N * IC, 41), {N, IC});
  Tensor weight = bf16(random_normals(OC * IC, 42, 0.05f), {OC, IC});
  Tensor dout = bf16(random_normals(N * L, 43, 0.01f), {N, L});
  const std::vector<float> start = random_normals(OC * IC, 44);
  auto dweight_after = [&](bool tuned) {
    Tensor dweight = cpu_tensor(start, {OC, IC}).to(gpu);
    ops::set_gemm_autotuning(tuned);
    ops::linear_backward_padded(Tensor(), dweight, dout, inp, weight);
    ops::set_gemm_autotuning(true);
    return read_back(dweight);
  };
  const std::vector<float> heuristic = dweight_after(false), tuned = dweight_after(true);
  std::vector<float> added(heuristic.size());
  for (size_t i = 0; i < added.size(); ++i) added[i] = heuristic[i] - start[i];
  double scale = 0.0;
  for (float a : added) scale = std::max(scale, double(std::fabs(a)));
  ASSERT_GT(scale, 0.01);  // the product is not lost in the starting values
  int64_t off = 0;
  for (size_t i = 0; i < tuned.size(); ++i) off += !(std::fabs(tuned[i] - heuristic[i]) <= 1e-4 * scale);
  EXPECT_EQ(off, 0) << "dweight entries off the heuristic choice's by more than 1e-4 of the largest update";
}

// ---------------------------------------------------------------------------------------------
// Linear + GELU (tanh form) with the GELU in cuBLASLt's epilogue.

#ifdef WW_HAVE_CUDA  // these call the CUDA kernels directly
// The kernels themselves in f32, against the CPU's linear and GELU kernels: that cuBLASLt's GELU
// is the tanh form (not erf) and how closely it evaluates it. Pre-activations span about ±4.
TEST(LinearCuda, GeluEpilogueIsTheTanhFormInF32) {
  WW_REQUIRE_CUDA();
  const int64_t N = 96, IC = 64, OC = 256;
  Tensor inp = cpu_tensor(random_normals(N * IC, 31), {N, IC});
  Tensor weight = cpu_tensor(random_normals(OC * IC, 32, 0.25f), {OC, IC});
  Tensor bias = cpu_tensor(random_normals(OC, 33, 0.5f), {OC});
  Tensor pre = Tensor::empty({N, OC}, DType::F32), tanh_form = Tensor::empty({N, OC}, DType::F32);
  Tensor erf_form = Tensor::empty({N, OC}, DType::F32);
  ops::linear_forward(pre, inp, weight, bias);
  ops::gelu_tanh_forward(tanh_form, pre);
  ops::gelu_forward(erf_form, pre);

  Tensor g_out = gpu_poisoned({N, OC}), g_pre = gpu_poisoned({N, OC});
  Tensor g_inp = gpu_copy(inp), g_weight = gpu_copy(weight), g_bias = gpu_copy(bias);
  ASSERT_TRUE(kernels::cuda::linear_gelu_tanh_forward(g_out.raw(), g_pre.raw(), g_inp.raw(), g_weight.raw(),
                                                      g_bias.raw(), DType::F32, N, IC, OC))
      << "cuBLASLt offers no GELU_AUX_BIAS kernel for an aligned f32 GEMM";
  const std::vector<float> got = read_back(g_out), want = tanh_form.to_float_vector();
  const std::vector<float> erf = erf_form.to_float_vector();
  double off_tanh = 0, off_erf = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    off_tanh = std::max(off_tanh, double(std::abs(got[i] - want[i])));
    off_erf = std::max(off_erf, double(std::abs(got[i] - erf[i])));
  }
  std::printf("GELU epilogue (f32): max |fused - tanh form| %.2e, |fused - erf form| %.2e\n", off_tanh, off_erf);
  EXPECT_LT(off_tanh, 2e-4);
  EXPECT_LT(off_tanh, off_erf / 2) << "the epilogue is closer to the erf form than to the tanh form";
  expect_close(read_back(g_pre), pre.to_float_vector(), "pre (aux)", kRtol);

  // Backward: dpre = (dout · W) ⊙ gelu_tanh'(pre), through the DGELU epilogue.
  Tensor dout = cpu_tensor(random_normals(N * IC, 34), {N, IC});  // the next layer's view: OC' = IC
  Tensor w2 = cpu_tensor(random_normals(IC * OC, 35, 0.1f), {IC, OC});
  Tensor dact = Tensor::empty({N, OC}, DType::F32), dpre = Tensor::empty({N, OC}, DType::F32);
  ops::linear_backward(dact, Tensor(), Tensor(), dout, tanh_form, w2);
  ops::gelu_tanh_backward(dpre, pre, dact);
  Tensor g_dpre = gpu_poisoned({N, OC});
  Tensor g_dout = gpu_copy(dout), g_w2 = gpu_copy(w2), g_pre_exact = gpu_copy(pre);
  ASSERT_TRUE(kernels::cuda::linear_dinp_gelu_tanh(g_dpre.raw(), g_dout.raw(), g_w2.raw(), g_pre_exact.raw(),
                                                   DType::F32, N, OC, IC, IC))
      << "cuBLASLt offers no DGELU kernel for an aligned f32 GEMM";
  expect_close(read_back(g_dpre), dpre.to_float_vector(), "dpre (DGELU epilogue)", 1e-3);
}

// The ops in 16 bits at GPT-2's MLP shape: the fused GEMM is taken, and it agrees with the
// unfused GEMM + GELU kernel to within 16-bit rounding (pre, out, dpre, dweight, dbias).
TEST(LinearCuda, GeluTanhOpsFusedMatchUnfusedIn16Bit) {
  WW_REQUIRE_CUDA();
  const int64_t N = 256, C = 768, I = 3072;
  for (DType dtype : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(dtype_name(dtype));
    auto upload = [&](const std::vector<float>& v, const Shape& shape) {
      Tensor t = Tensor::empty(shape, dtype, Device::cuda(0));
      ops::cast(t, gpu_copy(cpu_tensor(v, shape)));
      return t;
    };
    Tensor inp = upload(random_normals(N * C, 41), {N, C});
    Tensor w_fc = upload(random_normals(I * C, 42, 0.05f), {I, C}), b_fc = upload(random_normals(I, 43, 0.1f), {I});
    Tensor w_proj = upload(random_normals(C * I, 44, 0.02f), {C, I});
    Tensor dout = upload(random_normals(N * C, 45), {N, C});
    struct Result {
      std::vector<float> pre, act, dpre, dweight, dbias;
    };
    auto run = [&](bool fused) {
      ops::set_fused_gemm_epilogues(fused);
      Tensor pre = Tensor::empty({N, I}, dtype, Device::cuda(0)), act = Tensor::empty({N, I}, dtype, Device::cuda(0));
      Tensor dpre = Tensor::empty({N, I}, dtype, Device::cuda(0));
      Tensor dweight = Tensor::zeros({C, I}, DType::F32, Device::cuda(0));
      Tensor dbias = Tensor::zeros({C}, DType::F32, Device::cuda(0));
      ops::linear_gelu_tanh_forward(act, pre, inp, w_fc, b_fc);
      ops::linear_backward_gelu_tanh(dpre, dweight, dbias, dout, act, w_proj, pre);
      ops::set_fused_gemm_epilogues(true);
      return Result{read_back(pre), read_back(act), read_back(dpre), read_back(dweight), read_back(dbias)};
    };
    const Result fused = run(true), plain = run(false);
    expect_close(fused.pre, plain.pre, "pre", 1e-2);
    expect_close(fused.act, plain.act, "act", 1e-2);
    expect_close(fused.dpre, plain.dpre, "dpre", 2e-2);
    expect_close(fused.dweight, plain.dweight, "dweight", 1e-2);
    expect_close(fused.dbias, plain.dbias, "dbias", 1e-5);  // same dout, same column sums

    Tensor out = Tensor::empty({N, I}, dtype, Device::cuda(0)), pre = Tensor::empty({N, I}, dtype, Device::cuda(0));
    EXPECT_TRUE(kernels::cuda::linear_gelu_tanh_forward(out.raw(), pre.raw(), inp.raw(), w_fc.raw(), b_fc.raw(), dtype,
                                                        N, C, I))
        << "no fused GELU_AUX_BIAS kernel at GPT-2's MLP shape";
    EXPECT_TRUE(kernels::cuda::linear_dinp_gelu_tanh(out.raw(), dout.raw(), w_proj.raw(), pre.raw(), dtype, N, I, C, C))
        << "no fused DGELU kernel at GPT-2's MLP shape";
    read_back(out);
  }
}

#endif  // WW_HAVE_CUDA

// The ops in f32 (which keep GELU out of the epilogue: GEMM, then our GELU kernel) match the CPU
// with and without pre (the inference form writes GELU over the GEMM's output), at odd shapes.
TEST(LinearCuda, GeluTanhOpsMatchCpuInEveryForm) {
  WW_REQUIRE_CUDA();
  struct Shape3 {
    int64_t N, IC, OC;
  };
  for (const Shape3 s : {Shape3{37, 64, 24}, Shape3{19, 40, 20}, Shape3{5, 16, 8}}) {
    SCOPED_TRACE("N=" + std::to_string(s.N) + " IC=" + std::to_string(s.IC) + " OC=" + std::to_string(s.OC));
    Tensor inp = cpu_tensor(random_normals(s.N * s.IC, 51), {s.N, s.IC});
    Tensor weight = cpu_tensor(random_normals(s.OC * s.IC, 52, 0.2f), {s.OC, s.IC});
    Tensor bias = cpu_tensor(random_normals(s.OC, 53), {s.OC});
    Tensor out = Tensor::empty({s.N, s.OC}, DType::F32), pre = Tensor::empty({s.N, s.OC}, DType::F32);
    ops::linear_gelu_tanh_forward(out, pre, inp, weight, bias);
    Tensor g_out = gpu_poisoned({s.N, s.OC}), g_pre = gpu_poisoned({s.N, s.OC}), g_out2 = gpu_poisoned({s.N, s.OC});
    ops::linear_gelu_tanh_forward(g_out, g_pre, gpu_copy(inp), gpu_copy(weight), gpu_copy(bias));
    ops::linear_gelu_tanh_forward(g_out2, Tensor(), gpu_copy(inp), gpu_copy(weight), gpu_copy(bias));
    expect_close(read_back(g_out), out.to_float_vector(), "out", kRtol);
    expect_close(read_back(g_pre), pre.to_float_vector(), "pre", kRtol);
    expect_close(read_back(g_out2), out.to_float_vector(), "out without pre", kRtol);
  }
}

struct LinearCase {
  int64_t N, IC, OC;
  bool bias;
};
const std::vector<LinearCase> kLinearCases = {{1, 1, 1, true},     {7, 13, 5, true},     {7, 13, 5, false},
                                              {33, 257, 129, true}, {64, 768, 768, true}, {130, 64, 300, true},
                                              {0, 12, 8, true}};

std::string linear_label(const std::string& what, DType dtype, const LinearCase& c) {
  return label(what, dtype, {c.N, c.IC}) + " OC=" + std::to_string(c.OC) + (c.bias ? " bias" : " no bias");
}

TEST(LinearCuda, Tf32LinearAndAttentionStayNearF32) {
  WW_REQUIRE_CUDA();
  ASSERT_FALSE(ops::allow_tf32()) << "TF32 must default to off";
  const ops::Tf32Scope tf32(true);  // ends with the test, even when an assertion returns early
  for (const LinearCase& c : kLinearCases) {
    Tensor inp = random_cpu({c.N, c.IC}, 46), weight = random_cpu({c.OC, c.IC}, 47, 0.1f);
    Tensor bias = c.bias ? random_cpu({c.OC}, 48) : Tensor();
    Tensor out = Tensor::empty({c.N, c.OC}, DType::F32), g_out = gpu_poisoned({c.N, c.OC}, DType::F32);
    ops::linear_forward(out, inp, weight, bias);
    ops::linear_forward(g_out, gpu_as(inp, DType::F32), gpu_as(weight, DType::F32),
                        c.bias ? gpu_as(bias, DType::F32) : Tensor());
    expect_close(g_out, out, linear_label("linear_forward out (TF32)", DType::F32, c), kRtol16);

    Tensor dout = random_cpu({c.N, c.OC}, 49);
    Tensor dinp = Tensor::empty({c.N, c.IC}, DType::F32), g_dinp = gpu_poisoned({c.N, c.IC}, DType::F32);
    Tensor dweight = Tensor::zeros({c.OC, c.IC}, DType::F32), g_dweight = gpu_as(dweight, DType::F32);
    ops::linear_backward(dinp, dweight, Tensor(), dout, inp, weight);
    ops::linear_backward(g_dinp, g_dweight, Tensor(), gpu_as(dout, DType::F32), gpu_as(inp, DType::F32),
                         gpu_as(weight, DType::F32));
    expect_close(g_dinp, dinp, linear_label("linear_backward dinp (TF32)", DType::F32, c), kRtol16);
    expect_close(g_dweight, dweight, linear_label("linear_backward dweight (TF32)", DType::F32, c), kRtol16);
  }
  const int64_t B = 2, T = 33, H = 2, D = 64, C = H * D;
  Tensor qkv = random_cpu({B, T, 3 * C}, 50, 0.5f);
  Tensor out = Tensor::empty({B, T, C}, DType::F32), probs = Tensor::empty({B, H, T, T}, DType::F32);
  ops::attention_forward(out, probs, qkv, Tensor(), H, true, 0.0f, 1, 2);
  Tensor g_out = gpu_poisoned({B, T, C}, DType::F32), g_probs = gpu_poisoned({B, H, T, T}, DType::F32);
  ops::attention_forward(g_out, g_probs, gpu_as(qkv, DType::F32), Tensor(), H, true, 0.0f, 1, 2);
  expect_close(g_out, out, label("attention_forward out (TF32)", DType::F32, {B, T, 3 * C}), kRtol16);
}

}  // namespace
