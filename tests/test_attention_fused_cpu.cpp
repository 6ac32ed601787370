// Argument checks of attention_forward_fused / attention_backward_fused. They run on every
// machine: every check but the device comes first, so CPU tensors reach each of them, and
// well-formed CPU tensors get the "needs a cuda device" error (the kernels are CUDA only).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_util.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/attention.h"

using namespace ww;
using ww::testing::expect_error;

namespace {

constexpr int64_t B = 2, T = 5, H = 2, D = 32, C = H * D;

struct Args {
  Tensor qkv = Tensor::zeros({B, T, 3 * C}, DType::BF16);
  Tensor out = Tensor::zeros({B, T, C}, DType::BF16);
  Tensor lse = Tensor::zeros({B, H, T}, DType::F32);
  Tensor mask = Tensor::from_vector(std::vector<int32_t>(size_t(B * T), 1), {B, T});
  Tensor dqkv = Tensor::zeros({B, T, 3 * C}, DType::BF16);
  Tensor dout = Tensor::zeros({B, T, C}, DType::BF16);
  Tensor workspace = Tensor::zeros({B, H, T}, DType::F32);
  int64_t heads = H;
  float dropout_p = 0.1f;

  void forward() const { ops::attention_forward_fused(out, lse, qkv, mask, heads, true, dropout_p, 1, 2); }
  void backward() const {
    ops::attention_backward_fused(dqkv, workspace, dout, qkv, out, lse, mask, heads, true, dropout_p, 1, 2);
  }
};

TEST(AttentionFusedArgs, CpuTensorsNeedCuda) {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    Args a;
    a.qkv = Tensor::zeros({B, T, 3 * C}, dtype);
    a.out = Tensor::zeros({B, T, C}, dtype);
    a.dqkv = Tensor::zeros({B, T, 3 * C}, dtype);
    a.dout = Tensor::zeros({B, T, C}, dtype);
    expect_error([&] { a.forward(); }, {"attention_forward_fused", "needs a cuda device", "reference path"});
    expect_error([&] { a.backward(); }, {"attention_backward_fused", "needs a cuda device"});
  }
}

TEST(AttentionFusedArgs, UnsupportedHeadDims) {
  // C = 40 with 2 heads: D = 20 is not a multiple of 8; C = 272 with 2 heads: D = 136 > 128.
  for (int64_t channels : {40, 272}) {
    Args a;
    a.qkv = Tensor::zeros({B, T, 3 * channels}, DType::BF16);
    a.out = Tensor::zeros({B, T, channels}, DType::BF16);
    a.dqkv = Tensor::zeros({B, T, 3 * channels}, DType::BF16);
    a.dout = Tensor::zeros({B, T, channels}, DType::BF16);
    const std::string dim = "head dim " + std::to_string(channels / 2);
    expect_error([&] { a.forward(); }, {"attention_forward_fused", dim, "multiple of 8 up to 128"});
    expect_error([&] { a.backward(); }, {"attention_backward_fused", dim});
  }
}

TEST(AttentionFusedArgs, ShapeAndTypeErrorsNameTheArgument) {
  {
    Args a;
    a.lse = Tensor::zeros({B, H, T + 1}, DType::F32);
    expect_error([&] { a.forward(); }, {"'lse'", std::to_string(B * H * T) + " elements"});
  }
  {
    Args a;
    a.lse = Tensor::zeros({B, H, T}, DType::F16);
    expect_error([&] { a.forward(); }, {"'lse' must be f32"});
  }
  {
    Args a;
    a.out = Tensor::zeros({B, T, C}, DType::F32);  // qkv is bf16
    expect_error([&] { a.forward(); }, {"'out' must be bf16"});
  }
  {
    Args a;
    a.qkv = Tensor::zeros({B, T, 3 * C}, DType::I32);
    expect_error([&] { a.forward(); }, {"qkv must be f32, f16 or bf16"});
  }
  {
    Args a;
    a.qkv = Tensor::zeros({B, T, 3 * C + 1}, DType::BF16);
    expect_error([&] { a.forward(); }, {"[B, T, 3C]"});
  }
  {
    Args a;
    a.heads = 3;
    expect_error([&] { a.forward(); }, {"num_heads 3"});
  }
  {
    Args a;
    a.dropout_p = 1.0f;
    expect_error([&] { a.forward(); }, {"dropout_p"});
  }
  {
    Args a;
    a.mask = Tensor::zeros({B, T}, DType::F32);
    expect_error([&] { a.forward(); }, {"key_mask must be i32"});
  }
  {
    Args a;
    a.out = Tensor::view(a.qkv.raw(), {B, T, C}, DType::BF16);
    expect_error([&] { a.forward(); }, {"out must not alias qkv"});
  }
  {
    Args a;
    a.workspace = Tensor::zeros({B, H, T, T}, DType::F32);
    expect_error([&] { a.backward(); }, {"'workspace'", "elements"});
  }
  {
    Args a;
    a.dout = Tensor::zeros({B, T, C}, DType::F16);
    expect_error([&] { a.backward(); }, {"'dout' must be bf16"});
  }
  {
    Args a;
    a.dqkv = a.qkv;
    expect_error([&] { a.backward(); }, {"dqkv must not alias"});
  }
  {
    Args a;
    a.workspace = a.lse;
    expect_error([&] { a.backward(); }, {"workspace must not alias lse"});
  }
  {
    Args a;
    Tensor padded = Tensor::zeros({B * T * 3 * C + 1}, DType::BF16);
    a.qkv = Tensor::view(static_cast<uint16_t*>(padded.raw()) + 1, {B, T, 3 * C}, DType::BF16);
    expect_error([&] { a.forward(); }, {"'qkv' must be 16-byte aligned"});
  }
}

}  // namespace
