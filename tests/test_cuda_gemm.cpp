// linear_forward / linear_backward on CUDA (cuBLASLt, exact fp32 compute) against the CPU kernels
// (OpenBLAS) on the same random inputs. Tolerance: |gpu − cpu| <= 1e-5·|cpu| + 1e-5·max|cpu| per
// tensor (K <= 768 here, so both sides' rounding stays well inside it). Outputs that are
// overwritten start as NaN on the GPU; accumulated ones (dweight, dbias) start from the same random
// values on both sides.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "cuda_compare.h"
#include "cuda_test_util.h"
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
