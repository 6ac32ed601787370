// The argument checks every op shares (src/ops/checks.h): activation dtypes (f32 on the CPU; f32,
// f16 or bf16 on a GPU, one dtype per call; parameters and their gradients f32), named in errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ops/op_test_util.h"
#include "wattwise/core/dtype.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/activation.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/layernorm.h"
#include "wattwise/ops/linear.h"
#include "wattwise/ops/softmax.h"

using namespace ww;
using namespace ww::testing;

namespace {

TEST(Checks, SixteenBitActivationsOnTheCpuAreAnError) {
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

TEST(Checks, MismatchedActivationDtypesAreAnError) {
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

TEST(ChecksCuda, DtypeErrorsOnTheGpu) {
  WW_REQUIRE_CUDA();
  Tensor h = gpu_poisoned({2, 3}, DType::F16), b = gpu_poisoned({2, 3}, DType::BF16), f = gpu_poisoned({2, 3}, DType::F32);
  expect_error([&] { ops::residual_forward(h, h, b); },
               {"residual_forward: argument 'b' is bf16[2, 3] on cuda:0 but 'a' is f16[2, 3] on cuda:0"});
  expect_error([&] { ops::gelu_forward(f, h); }, {"gelu_forward: argument 'out' is f32", "'inp' is f16"});
  Tensor w = gpu_poisoned({4, 3}, DType::BF16), out = gpu_poisoned({2, 4}, DType::F16);
  expect_error([&] { ops::linear_forward(out, h, w, Tensor()); },
               {"linear_forward: argument 'weight' is bf16[4, 3] on cuda:0 but 'inp' is f16[2, 3] on cuda:0"});
  // Parameter gradients of linear are f32 for every activation dtype.
  Tensor w16 = gpu_poisoned({4, 3}, DType::F16), dout = gpu_poisoned({2, 4}, DType::F16);
  expect_error([&] { ops::linear_backward(Tensor(), gpu_poisoned({4, 3}, DType::F16), Tensor(), dout, h, w16); },
               {"linear_backward: argument 'dweight' must be f32"});
  Tensor mean = gpu_poisoned({2}, DType::F32);
  expect_error([&] { ops::layernorm_forward(h, mean, mean, h, gpu_poisoned({3}, DType::F16), gpu_poisoned({3}, DType::F32), 1e-5f); },
               {"layernorm_forward: argument 'weight' must be f32"});
}

}  // namespace
