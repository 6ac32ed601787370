// attention_forward / attention_backward on CUDA (cuBLAS strided-batched GEMMs + private masked
// softmax and dropout kernels) against the CPU kernels on the same inputs. Tolerances, as
// |gpu − cpu| <= rtol·|cpu| + rtol·max|cpu| per tensor: 1e-5 for probs and out, 3e-5 for dqkv
// (backward chains three GEMMs and a softmax backward whose row sums are added in a different
// order). Dropout masks must match bit for bit: checked exactly with one-hot values below.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cuda_compare.h"
#include "cuda_test_util.h"
#include "test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/ops/attention.h"

using namespace ww;
using ww::testing::cpu_tensor;
using ww::testing::expect_close;
using ww::testing::gpu_copy;
using ww::testing::gpu_poisoned;
using ww::testing::random_normals;
using ww::testing::read_back;

namespace {

struct Case {
  int64_t B, T, H, D;
  bool causal;
  bool masked;  // ragged padding, the last sequence fully padded
  float dropout_p;
};

std::string name(const Case& c) {
  return "B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) + " H=" + std::to_string(c.H) +
         " D=" + std::to_string(c.D) + (c.causal ? " causal" : "") + (c.masked ? " masked" : "") +
         " p=" + std::to_string(c.dropout_p);
}

// Sequence b has a different real length; the last one (when B > 1) has none at all, so its rows
// must come out as zeros.
std::vector<int32_t> ragged_mask(int64_t B, int64_t T) {
  std::vector<int32_t> mask(size_t(B * T), 0);
  for (int64_t b = 0; b < B; ++b) {
    int64_t length = (B > 1 && b == B - 1) ? 0 : T - (b * 3) % T;
    for (int64_t t = 0; t < length; ++t) mask[size_t(b * T + t)] = 1;
  }
  return mask;
}

const std::vector<Case> kCases = {
    {1, 1, 1, 1, false, false, 0.0f},  {2, 5, 2, 3, false, true, 0.0f},   {3, 17, 4, 8, true, true, 0.0f},
    {2, 130, 3, 16, false, true, 0.1f}, {2, 33, 2, 64, true, false, 0.1f}, {4, 64, 12, 64, false, true, 0.0f},
    {3, 9, 2, 5, true, true, 0.25f},
};

constexpr uint64_t kSeed = 1234, kOffset = 77;

TEST(CudaAttention, ForwardAndBackwardMatchCpu) {
  WW_REQUIRE_CUDA();
  for (const Case& c : kCases) {
    SCOPED_TRACE(name(c));
    const int64_t C = c.H * c.D;
    Tensor qkv = cpu_tensor(random_normals(c.B * c.T * 3 * C, 1), {c.B, c.T, 3 * C});
    Tensor dout = cpu_tensor(random_normals(c.B * c.T * C, 2), {c.B, c.T, C});
    Tensor mask = c.masked ? Tensor::from_vector(ragged_mask(c.B, c.T), {c.B, c.T}) : Tensor();
    const Shape probs_shape = {c.B, c.H, c.T, c.T};

    Tensor out = Tensor::empty({c.B, c.T, C}, DType::F32), probs = Tensor::empty(probs_shape, DType::F32);
    ops::attention_forward(out, probs, qkv, mask, c.H, c.causal, c.dropout_p, kSeed, kOffset);
    Tensor dqkv = Tensor::empty(qkv.shape(), DType::F32), scratch = Tensor::empty(probs_shape, DType::F32);
    ops::attention_backward(dqkv, scratch, dout, qkv, probs, mask, c.H, c.causal, c.dropout_p, kSeed, kOffset);

    Tensor g_qkv = gpu_copy(qkv), g_dout = gpu_copy(dout);
    Tensor g_mask = c.masked ? gpu_copy(mask) : Tensor();
    Tensor g_out = gpu_poisoned({c.B, c.T, C}), g_probs = gpu_poisoned(probs_shape);
    ops::attention_forward(g_out, g_probs, g_qkv, g_mask, c.H, c.causal, c.dropout_p, kSeed, kOffset);
    expect_close(read_back(g_probs), probs.to_float_vector(), "probs", 1e-5);
    expect_close(read_back(g_out), out.to_float_vector(), "out", 1e-5);

    Tensor g_dqkv = gpu_poisoned(qkv.shape()), g_scratch = gpu_poisoned(probs_shape);
    ops::attention_backward(g_dqkv, g_scratch, g_dout, g_qkv, g_probs, g_mask, c.H, c.causal, c.dropout_p,
                            kSeed, kOffset);
    expect_close(read_back(g_dqkv), dqkv.to_float_vector(), "dqkv", 3e-5);
  }
}

TEST(CudaAttention, FullyPaddedSequenceOutputsZeros) {
  WW_REQUIRE_CUDA();
  const int64_t B = 2, T = 6, H = 2, D = 4, C = H * D;
  Tensor qkv = cpu_tensor(random_normals(B * T * 3 * C, 3), {B, T, 3 * C});
  std::vector<int32_t> mask_values(size_t(B * T), 1);
  for (int64_t t = 0; t < T; ++t) mask_values[size_t(T + t)] = 0;  // sequence 1: all padding
  Tensor g_out = gpu_poisoned({B, T, C}), g_probs = gpu_poisoned({B, H, T, T});
  ops::attention_forward(g_out, g_probs, gpu_copy(qkv), gpu_copy(Tensor::from_vector(mask_values, {B, T})), H,
                         false, 0.0f, 0, 0);
  std::vector<float> out = read_back(g_out), probs = read_back(g_probs);
  for (int64_t i = T * C; i < 2 * T * C; ++i) ASSERT_EQ(out[size_t(i)], 0.0f) << "out element " << i;
  for (int64_t i = H * T * T; i < 2 * H * T * T; ++i) ASSERT_EQ(probs[size_t(i)], 0.0f) << "probs element " << i;
}

// With V one-hot (value row t of every head is e_t), out[b, i, h·D + j] = dropout(P)[b, h, i, j]
// exactly (one product by 1, the rest by 0), so the GPU's dropout mask is read off directly and
// compared bit for bit with the attention rule (test_util.h's attention_keeps for row (b·H+h)·T+i,
// key j), which is the CPU's; the CPU kernel is checked the same way so the two agree too.
TEST(CudaAttention, DropoutMaskMatchesCpuBitForBit) {
  WW_REQUIRE_CUDA();
  const int64_t B = 2, T = 7, H = 3, D = 8, C = H * D;
  const float p = 0.5f, keep_scale = float(ww::testing::attention_keep_scale(p));
  std::vector<float> values = random_normals(B * T * 3 * C, 4);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t col = 0; col < C; ++col)
        values[size_t((b * T + t) * 3 * C + 2 * C + col)] = (col % D == t) ? 1.0f : 0.0f;
  Tensor qkv = cpu_tensor(values, {B, T, 3 * C});

  Tensor out = Tensor::empty({B, T, C}, DType::F32), probs = Tensor::empty({B, H, T, T}, DType::F32);
  ops::attention_forward(out, probs, qkv, Tensor(), H, false, p, kSeed, kOffset);
  Tensor g_out = gpu_poisoned({B, T, C}), g_probs = gpu_poisoned({B, H, T, T});
  ops::attention_forward(g_out, g_probs, gpu_copy(qkv), Tensor(), H, false, p, kSeed, kOffset);

  const std::vector<float> gpu_out = read_back(g_out), gpu_probs = read_back(g_probs);
  const std::vector<float> cpu_out = out.to_float_vector(), cpu_probs = probs.to_float_vector();
  int64_t kept = 0, dropped = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j) {
          const uint64_t index = uint64_t(((b * H + h) * T + i) * T + j);
          const bool keep = ww::testing::attention_keeps(kSeed, kOffset, uint64_t((b * H + h) * T + i), T, j, p);
          const size_t o = size_t((b * T + i) * C + h * D + j);
          const float want_gpu = keep ? gpu_probs[index] * keep_scale : 0.0f;
          const float want_cpu = keep ? cpu_probs[index] * keep_scale : 0.0f;
          ASSERT_EQ(gpu_out[o], want_gpu) << "GPU, element (b,h,i,j) = " << b << "," << h << "," << i << "," << j;
          ASSERT_EQ(cpu_out[o], want_cpu) << "CPU, element (b,h,i,j) = " << b << "," << h << "," << i << "," << j;
          (keep ? kept : dropped)++;
        }
  EXPECT_GT(kept, 0);
  EXPECT_GT(dropped, 0);
}

TEST(CudaAttention, ResultsAreDeterministic) {
  WW_REQUIRE_CUDA();
  const int64_t B = 2, T = 40, H = 4, D = 16, C = H * D;
  Tensor g_qkv = gpu_copy(cpu_tensor(random_normals(B * T * 3 * C, 5), {B, T, 3 * C}));
  Tensor g_dout = gpu_copy(cpu_tensor(random_normals(B * T * C, 6), {B, T, C}));
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    Tensor g_out = gpu_poisoned({B, T, C}), g_probs = gpu_poisoned({B, H, T, T});
    ops::attention_forward(g_out, g_probs, g_qkv, Tensor(), H, true, 0.1f, 9, 1);
    Tensor g_dqkv = gpu_poisoned({B, T, 3 * C}), g_scratch = gpu_poisoned({B, H, T, T});
    ops::attention_backward(g_dqkv, g_scratch, g_dout, g_qkv, g_probs, Tensor(), H, true, 0.1f, 9, 1);
    std::vector<float> got = read_back(g_dqkv);
    if (run == 0) first = got;
    else EXPECT_EQ(got, first) << "dqkv differs bitwise between runs";
  }
}

}  // namespace
