// src/ops/dispatch.h: each op's device dispatch. A tensor that claims to live on a GPU (a view of
// host memory, never read) reaches every op's dispatch without a GPU; in a build without the CUDA
// backend each op must fail with the message it has always given.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ops/op_test_util.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/activation.h"
#include "wattwise/ops/attention.h"
#include "wattwise/ops/cross_entropy.h"
#include "wattwise/ops/dropout.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/embedding.h"
#include "wattwise/ops/layernorm.h"
#include "wattwise/ops/linear.h"
#include "wattwise/ops/optimizer.h"
#include "wattwise/ops/quantized.h"
#include "wattwise/ops/softmax.h"

using namespace ww;
using namespace ww::testing;

namespace {

TEST(Dispatch, CudaTensorsGetAClearNotImplementedError) {
  // A view that claims to live on the GPU: enough to exercise dispatch without a GPU (never read).
  // The "does not implement" half of this test goes away when the CUDA kernels land; the
  // mixed-device half stays.
  std::vector<float> storage(64, 0.0f);
  Tensor gpu = Tensor::view(storage.data(), {8, 8}, DType::F32, Device::cuda(0));
  Tensor gpu_out = Tensor::view(storage.data() + 0, {8, 8}, DType::F32, Device::cuda(0));
  std::vector<float> storage2(64, 0.0f);
  Tensor gpu_weight = Tensor::view(storage2.data(), {8, 8}, DType::F32, Device::cuda(0));
  std::vector<float> storage3(64, 0.0f);
  Tensor gpu_result = Tensor::view(storage3.data(), {8, 8}, DType::F32, Device::cuda(0));
#ifndef WW_HAVE_CUDA
  // With CUDA built in, linear_forward runs its kernel (tests/test_cuda_gemm.cpp), which must not
  // be handed these host pointers.
  expect_error([&] { ops::linear_forward(gpu_result, gpu, gpu_weight, Tensor()); },
               {"linear_forward: the CUDA backend does not implement this yet"});
  expect_error([&] { ops::gelu_forward(gpu_out, gpu); }, {"gelu_forward: the CUDA backend does not implement this yet"});
  expect_error([&] { ops::dropout_forward(gpu_out, gpu, 0.1f, 1, 2); },
               {"dropout_forward: the CUDA backend does not implement this yet"});
#endif
  // Mixed devices are an error naming the op.
  Tensor cpu = random_tensor({8, 8}, 1), cpu_out = Tensor::empty({8, 8}, DType::F32);
  expect_error([&] { ops::linear_forward(cpu_out, cpu, gpu_weight, Tensor()); }, {"linear_forward", "one device"});
  expect_error([&] { ops::residual_forward(cpu_out, cpu, gpu); }, {"residual_forward", "one device"});
}

// Every op entry point, handed well-formed cuda tensors in a build without CUDA.
TEST(Dispatch, EveryOpWithoutTheCudaBackendSaysSo) {
#ifdef WW_HAVE_CUDA
  GTEST_SKIP() << "this build has the CUDA backend";
#else
  std::vector<std::vector<float>> storage;
  auto gpu = [&](const Shape& shape, DType dtype = DType::F32) {
    storage.emplace_back(size_t(shape_numel(shape)) * 2 + 16, 0.0f);  // room for any dtype, 16-byte aligned
    return Tensor::view(storage.back().data(), shape, dtype, Device::cuda(0));
  };
  auto gpu_ints = [&](const Shape& shape, int32_t value) {
    storage.emplace_back(size_t(shape_numel(shape)) + 16, 0.0f);
    auto* ints = reinterpret_cast<int32_t*>(storage.back().data());
    for (int64_t i = 0; i < shape_numel(shape); ++i) ints[i] = value;
    return Tensor::view(ints, shape, DType::I32, Device::cuda(0));
  };
  const int64_t B = 2, T = 4, C = 8, N = B * T, H = 2;
  const Tensor x = gpu({N, C}), y = gpu({N, C}), out = gpu({N, C}), btc = gpu({B, T, C}), bc = gpu({B, C});
  const Tensor w = gpu({C}), bias = gpu({C}), mean = gpu({N}), rstd = gpu({N}), mask = gpu_ints({B, T}, 1);
  const Tensor ids = gpu_ints({B, T}, 1), table = gpu({16, C}), labels = gpu_ints({N}, 1), losses = gpu({N});
  const Tensor weight = gpu({C, C}), dweight = gpu({C, C}), dbias = gpu({C});
  const Tensor qkv = gpu({B, T, 3 * C}), att_out = gpu({B, T, C}), probs = gpu({B, H, T, T}), lse = gpu({B, H, T});
  const std::string not_yet = ": the CUDA backend does not implement this yet";
  struct Call {
    const char* op;
    std::function<void()> run;
  };
  const std::vector<Call> calls = {
      {"residual_forward", [&] { ops::residual_forward(out, x, y); }},
      {"add_inplace", [&] { ops::add_inplace(out, x); }},
      {"scale_inplace", [&] { ops::scale_inplace(out, 2.0f); }},
      {"select_token_forward", [&] { ops::select_token_forward(bc, btc, 1); }},
      {"select_token_backward", [&] { ops::select_token_backward(btc, bc, 1); }},
      {"masked_mean_forward", [&] { ops::masked_mean_forward(bc, btc, mask); }},
      {"masked_mean_backward", [&] { ops::masked_mean_backward(btc, bc, mask); }},
      {"cast", [&] { ops::cast(gpu({N, C}, DType::BF16), x); }},
      {"gelu_forward", [&] { ops::gelu_forward(out, x); }},
      {"gelu_backward", [&] { ops::gelu_backward(out, x, y); }},
      {"gelu_tanh_forward", [&] { ops::gelu_tanh_forward(out, x); }},
      {"gelu_tanh_backward", [&] { ops::gelu_tanh_backward(out, x, y); }},
      {"relu_forward", [&] { ops::relu_forward(out, x); }},
      {"relu_backward", [&] { ops::relu_backward(out, x, y); }},
      {"tanh_forward", [&] { ops::tanh_forward(out, x); }},
      {"tanh_backward", [&] { ops::tanh_backward(out, x, y); }},
      {"dropout_forward", [&] { ops::dropout_forward(out, x, 0.1f, 1, 2); }},
      {"dropout_backward", [&] { ops::dropout_backward(out, x, 0.1f, 1, 2); }},
      {"softmax_forward", [&] { ops::softmax_forward(out, x); }},
      {"softmax_backward", [&] { ops::softmax_backward(out, x, y); }},
      {"layernorm_forward", [&] { ops::layernorm_forward(out, mean, rstd, x, w, bias, 1e-5f); }},
      {"residual_layernorm_forward",
       [&] { ops::residual_layernorm_forward(out, gpu({N, C}), mean, rstd, x, y, w, bias, 1e-5f); }},
      {"layernorm_backward", [&] { ops::layernorm_backward(out, gpu({C}), gpu({C}), y, x, w, mean, rstd); }},
      {"embeddings_forward", [&] { ops::embeddings_forward(btc, ids, Tensor(), table, Tensor(), Tensor()); }},
      {"embeddings_backward", [&] { ops::embeddings_backward(gpu({16, C}), Tensor(), Tensor(), btc, ids, Tensor()); }},
      {"cross_entropy_forward", [&] { ops::cross_entropy_forward(losses, x, labels, 0.0f); }},
      {"cross_entropy_backward", [&] { ops::cross_entropy_backward(out, x, labels, 0.0f, 1.0f); }},
      {"cross_entropy_forward_backward", [&] { ops::cross_entropy_forward_backward(losses, out, x, labels, 0.0f, 1.0f); }},
      {"count_valid_labels", [&] { ops::count_valid_labels(labels); }},
      {"mse_forward", [&] { ops::mse_forward(losses, gpu({N}), gpu({N})); }},
      {"mse_backward", [&] { ops::mse_backward(gpu({N}), gpu({N}), gpu({N}), 1.0f); }},
      {"linear_forward", [&] { ops::linear_forward(out, x, weight, bias); }},
      {"linear_backward", [&] { ops::linear_backward(out, dweight, dbias, y, x, weight); }},
      {"linear_gelu_tanh_forward", [&] { ops::linear_gelu_tanh_forward(out, Tensor(), x, weight, bias); }},
      {"linear_backward_gelu_tanh",
       [&] { ops::linear_backward_gelu_tanh(out, dweight, dbias, y, x, weight, gpu({N, C})); }},
      {"attention_forward", [&] { ops::attention_forward(att_out, probs, qkv, Tensor(), H, false, 0.0f, 1, 2); }},
      {"attention_backward",
       [&] { ops::attention_backward(gpu({B, T, 3 * C}), gpu({B, H, T, T}), att_out, qkv, probs, Tensor(), H, false, 0.0f, 1, 2); }},
  };
  for (const Call& call : calls) {
    SCOPED_TRACE(call.op);
    expect_error(call.run, {std::string(call.op) + not_yet});
  }
  // The fused attention and the optimizer steps have always said it their own way.
  const Tensor fused_qkv = gpu({B, T, 3 * 64}, DType::BF16), fused_out = gpu({B, T, 64}, DType::BF16);
  expect_error([&] { ops::attention_forward_fused(fused_out, lse, fused_qkv, Tensor(), H, false, 0.0f, 1, 2); },
               {"attention_forward_fused: this build has no CUDA backend (configure with WW_CUDA=ON)"});
  expect_error(
      [&] {
        ops::attention_backward_fused(gpu({B, T, 3 * 64}, DType::BF16), gpu({B, H, T}), fused_out, fused_qkv,
                                      fused_out, lse, Tensor(), H, false, 0.0f, 1, 2);
      },
      {"attention_backward_fused: this build has no CUDA backend (configure with WW_CUDA=ON)"});
  const Tensor params = gpu({N}), grads = gpu({N}), m = gpu({N}), v = gpu({N});
  expect_error([&] { ops::adamw_step(params, grads, m, v, Tensor(), ops::AdamStepArgs{}); },
               {"adamw_step: no kernel for device cuda:0 in this build"});
  expect_error([&] { ops::sgd_step(params, grads, Tensor(), Tensor(), ops::SgdStepArgs{}); },
               {"sgd_step: no kernel for device cuda:0 in this build"});
  expect_error([&] { ops::global_grad_norm(grads); }, {"global_grad_norm: no kernel for device cuda:0 in this build"});
  expect_error([&] { ops::make_device_step_buffers(params); },
               {"make_device_step_buffers: no kernel for device cuda:0 in this build"});
  ops::DeviceStepBuffers buffers;
  expect_error([&] { ops::adamw_step_on_device(params, grads, m, v, Tensor(), buffers, 0.9); },
               {"adamw_step_on_device: no kernel for device cuda:0 in this build"});
  expect_error([&] { ops::sgd_step_on_device(params, grads, Tensor(), Tensor(), buffers); },
               {"sgd_step_on_device: no kernel for device cuda:0 in this build"});
  expect_error([&] { ops::check_quantization_supported(ops::QuantMethod::Fp8, Device::cuda(0)); },
               {"fp8: the CUDA backend does not implement this yet"});
#endif
}

}  // namespace
