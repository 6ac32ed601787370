// linear_forward / linear_backward on CUDA (cuBLASLt, exact fp32 compute) against the CPU kernels
// (OpenBLAS) on the same random inputs. Tolerance: |gpu − cpu| <= 1e-5·|cpu| + 1e-5·max|cpu| per
// tensor (K <= 768 here, so both sides' rounding stays well inside it). Outputs that are
// overwritten start as NaN on the GPU; accumulated ones (dweight, dbias) start from the same random
// values on both sides.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "cuda_compare.h"
#include "cuda_test_util.h"
#include "wattwise/ops/activation.h"
#include "wattwise/ops/cross_entropy.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/graph.h"
#include "wattwise/ops/linear.h"
#ifdef WW_HAVE_CUDA
#include "kernels/linear.h"
#endif

using namespace ww;
using ww::testing::cpu_tensor;
using ww::testing::expect_close;
using ww::testing::gpu_copy;
using ww::testing::gpu_poisoned;
using ww::testing::random_normals;
using ww::testing::read_back;

namespace {

constexpr double kRtol = 1e-5;

// A GPU view starting `shift` floats into a fresh buffer (to test operands that are not 256-byte
// aligned), holding a copy of `cpu`. The buffer stays alive through `owner`.
Tensor gpu_shifted_copy(const Tensor& cpu, int64_t shift, Tensor& owner) {
  owner = Tensor::zeros({cpu.numel() + shift}, DType::F32, Device::cuda(0));
  Tensor view = Tensor::view(owner.data<float>() + shift, cpu.shape(), DType::F32, Device::cuda(0));
  view.copy_from(cpu);
  return view;
}

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
  int64_t shift;  // float offset of inp and bias views (0 = aligned allocations)
};

std::string name(const Case& c) {
  return "N=" + std::to_string(c.N) + " IC=" + std::to_string(c.IC) + " OC=" + std::to_string(c.OC) +
         (c.bias ? " bias" : " no bias") + " shift=" + std::to_string(c.shift);
}

const std::vector<Case> kCases = {
    {1, 1, 1, true, 0},      {7, 13, 5, true, 0},     {7, 13, 5, false, 0},   {33, 257, 129, true, 1},
    {64, 768, 768, true, 0}, {130, 64, 300, true, 3}, {5, 96, 17, false, 1},
    {0, 12, 8, true, 0},     {9, 12, 0, true, 0},
    // Bias gradients over several 256-row chunks, 16-byte column loads, a part-filled column tile.
    {600, 32, 520, true, 0},
    // A weight gradient in two GEMMs (OC >= 1024, not a multiple of 128: 1024 + 76 columns).
    {300, 64, 1100, true, 0}, {300, 64, 1100, false, 2},
};

TEST(CudaGemm, LinearForwardMatchesCpu) {
  WW_REQUIRE_CUDA();
  for (const Case& c : kCases) {
    SCOPED_TRACE(name(c));
    Tensor inp = cpu_tensor(random_normals(c.N * c.IC, 1), {c.N, c.IC});
    Tensor weight = cpu_tensor(random_normals(c.OC * c.IC, 2, 0.1f), {c.OC, c.IC});
    Tensor bias = c.bias ? cpu_tensor(random_normals(c.OC, 3), {c.OC}) : Tensor();
    Tensor out = Tensor::empty({c.N, c.OC}, DType::F32);
    ops::linear_forward(out, inp, weight, bias);

    Tensor inp_owner, bias_owner;
    Tensor g_inp = gpu_shifted_copy(inp, c.shift, inp_owner);
    Tensor g_bias = c.bias ? gpu_shifted_copy(bias, c.shift, bias_owner) : Tensor();
    Tensor g_out = gpu_poisoned({c.N, c.OC});
    ops::linear_forward(g_out, g_inp, gpu_copy(weight), g_bias);
    expect_close(read_back(g_out), out.to_float_vector(), "out", kRtol);
  }
}

TEST(CudaGemm, LinearBackwardMatchesCpu) {
  WW_REQUIRE_CUDA();
  for (const Case& c : kCases) {
    SCOPED_TRACE(name(c));
    Tensor inp = cpu_tensor(random_normals(c.N * c.IC, 4), {c.N, c.IC});
    Tensor weight = cpu_tensor(random_normals(c.OC * c.IC, 5, 0.1f), {c.OC, c.IC});
    Tensor dout = cpu_tensor(random_normals(c.N * c.OC, 6), {c.N, c.OC});
    Tensor dweight = cpu_tensor(random_normals(c.OC * c.IC, 7), {c.OC, c.IC});  // accumulated into
    Tensor dbias = cpu_tensor(random_normals(c.OC, 8), {c.OC});
    Tensor g_dweight = gpu_copy(dweight), g_dbias = c.bias ? gpu_copy(dbias) : Tensor();
    Tensor dinp = Tensor::empty({c.N, c.IC}, DType::F32);
    ops::linear_backward(dinp, dweight, c.bias ? dbias : Tensor(), dout, inp, weight);

    Tensor inp_owner;
    Tensor g_inp = gpu_shifted_copy(inp, c.shift, inp_owner);
    Tensor g_dinp = gpu_poisoned({c.N, c.IC});
    ops::linear_backward(g_dinp, g_dweight, g_dbias, gpu_copy(dout), g_inp, gpu_copy(weight));
    expect_close(read_back(g_dinp), dinp.to_float_vector(), "dinp", kRtol);
    expect_close(read_back(g_dweight), dweight.to_float_vector(), "dweight", kRtol);
    if (c.bias) expect_close(read_back(g_dbias), dbias.to_float_vector(), "dbias", kRtol);
  }
}

TEST(CudaGemm, LinearBackwardOptionalOutputsAndDinpSharingInp) {
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

TEST(CudaGemm, BiasGradientIsDeterministic) {
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

}  // namespace

// GPT-2's head at its real sizes: logits in rows padded from 50,257 to 50,304 elements (so the
// GEMMs get 16-byte-aligned rows) give the contiguous layout's results, and the padding is never
// written or read (it starts as NaN; a read would poison the sums).
TEST(CudaGemm, PaddedLmHeadAtGpt2VocabMatchesContiguous) {
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
TEST(CudaGemm, AutotunedLmHeadGemmMatchesHeuristicChoiceAndCaptures) {
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
TEST(CudaGemm, AutotunedAccumulatingGemmAddsOnce) {
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
TEST(CudaGemm, GeluEpilogueIsTheTanhFormInF32) {
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
TEST(CudaGemm, LinearGeluTanhOpsFusedMatchUnfusedIn16Bit) {
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
TEST(CudaGemm, LinearGeluTanhOpsMatchCpuInEveryForm) {
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
