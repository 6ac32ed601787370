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
#include "wattwise/ops/cross_entropy.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/linear.h"

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
    auto upload = [&](const std::vector<float>& values, const Shape& shape) {
      Tensor wide = cpu_tensor(values, shape).to(gpu);
      if (dtype == DType::F32) return wide;
      Tensor narrow = Tensor::empty(shape, dtype, gpu);
      ops::cast(narrow, wide);
      return narrow;
    };
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
