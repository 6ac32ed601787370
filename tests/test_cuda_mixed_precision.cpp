// Every op on CUDA with f16 and bf16 activations against the CPU f32 kernels run on the same inputs
// rounded to 16-bit (so the comparison sees only the GPU's own roundings: 16-bit outputs and
// intermediates; every kernel computes in fp32). Also: ops::cast on the GPU against the CPU's
// conversions (bit for bit), the TF32 switch, residual_layernorm_forward against residual_forward +
// layernorm_forward, layernorm_backward's accumulate flag, and the dtype errors on the GPU.
//
// Tolerance: |gpu − cpu| <= rtol·(|cpu| + max|cpu|) per element (elementwise relative error with an
// absolute floor at the tensor's scale, where entries cancel); rtol = 1e-2 for 16-bit results.
// f32 gradients of parameters computed from 16-bit inputs (dweight, dbias, embedding tables) see
// no 16-bit rounding of their own: 1e-4. A failure names the op, dtype, shape, the number of bad
// elements and the worst one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "test_util.h"
#include "wattwise/core/dtype.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/activation.h"
#include "wattwise/ops/attention.h"
#include "wattwise/ops/cross_entropy.h"
#include "wattwise/ops/dropout.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/embedding.h"
#include "wattwise/ops/layernorm.h"
#include "wattwise/ops/linear.h"
#include "wattwise/ops/softmax.h"

using namespace ww;
using ww::testing::expect_error;

namespace {

constexpr double kRtol16 = 1e-2;
constexpr double kRtolParamGrad = 1e-4;
const DType kHalfTypes[] = {DType::F16, DType::BF16};

void sync_device() {
#ifdef WW_HAVE_CUDA
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
#endif
}

std::string label(const std::string& op, DType dtype, const Shape& shape) {
  return op + " (" + std::string(dtype_name(dtype)) + ", shape " + shape_str(shape) + ")";
}

Tensor random_cpu(const Shape& shape, uint64_t seed, float scale = 1.0f, float shift = 0.0f) {
  Rng rng(seed, 17);
  std::vector<float> v(size_t(shape_numel(shape)));
  for (float& x : v) x = shift + scale * rng.normal();
  return Tensor::from_vector(v, shape);
}

// An f32 CPU tensor holding `cpu`'s values rounded to `dtype` (the CPU reference's inputs).
Tensor rounded(const Tensor& cpu, DType dtype) {
  if (dtype == DType::F32) return cpu.to(Device::cpu());
  Tensor narrow = Tensor::empty(cpu.shape(), dtype);
  ops::cast(narrow, cpu);
  Tensor back = Tensor::empty(cpu.shape(), DType::F32);
  ops::cast(back, narrow);
  return back;
}

// A GPU tensor of `dtype` holding `cpu`'s values (rounded to nearest even).
Tensor gpu_as(const Tensor& cpu, DType dtype) {
  sync_device();
  Tensor wide = cpu.to(Device::cuda(0));
  sync_device();
  if (dtype == DType::F32) return wide;
  Tensor narrow = Tensor::empty(cpu.shape(), dtype, Device::cuda(0));
  ops::cast(narrow, wide);
  sync_device();
  return narrow;
}

Tensor gpu_ints(const std::vector<int32_t>& values, const Shape& shape) {
  sync_device();
  Tensor t = Tensor::from_vector(values, shape).to(Device::cuda(0));
  sync_device();
  return t;
}

// A GPU tensor whose every element is NaN (all bits set is NaN in f32, f16 and bf16).
Tensor gpu_poisoned(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype, Device::cuda(0));
#ifdef WW_HAVE_CUDA
  EXPECT_EQ(cudaMemset(t.raw(), 0xFF, t.nbytes()), cudaSuccess);
#endif
  sync_device();
  return t;
}

std::vector<float> read(const Tensor& t) {
  sync_device();
  return t.to_float_vector();
}

// |got − want| <= rtol·(|want| + max|want|); reports the count and the worst element.
void expect_close(const Tensor& got_tensor, const Tensor& want_tensor, const std::string& what, double rtol) {
  const std::vector<float> got = read(got_tensor), want = read(want_tensor);
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0.0;
  for (float w : want) scale = std::max(scale, std::abs(double(w)));
  int64_t bad = 0, worst = 0;
  double worst_ratio = -1.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rtol * (std::abs(double(want[i])) + scale);
    const double err = std::abs(double(got[i]) - double(want[i]));
    const bool ok = err <= tol;  // false for NaN
    if (!ok) ++bad;
    const double ratio = !ok ? (tol > 0 && !std::isnan(err) ? err / tol : INFINITY) : (tol > 0 ? err / tol : 0.0);
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = int64_t(i);
    }
  }
  if (bad) {
    std::ostringstream message;
    message << what << ": " << bad << " of " << got.size() << " elements outside rtol " << rtol
            << "; worst at [" << worst << "]: gpu " << got[size_t(worst)] << ", cpu " << want[size_t(worst)]
            << " (error " << std::abs(double(got[size_t(worst)]) - double(want[size_t(worst)]))
            << ", tensor scale " << scale << ")";
    ADD_FAILURE() << message.str();
  }
}

std::vector<int32_t> ragged_mask(int64_t B, int64_t T, uint64_t seed) {
  Rng rng(seed, 5);
  std::vector<int32_t> mask(size_t(B * T), 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t length = b == 1 ? 0 : 1 + int64_t(rng.below(uint64_t(T)));
    for (int64_t t = 0; t < length; ++t) mask[size_t(b * T + t)] = 1;
  }
  return mask;
}

std::vector<int32_t> random_ids(int64_t n, int64_t limit, uint64_t seed) {
  Rng rng(seed, 3);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = int32_t(rng.below(uint64_t(limit)));
  return ids;
}

const std::vector<Shape> kElementwiseShapes = {{1}, {7}, {3, 333}, {4097}, {2, 5, 768}};

// ---------------------------------------------------------------------------------------------

TEST(CudaMixedPrecision, ActivationsMatchCpu) {
  WW_REQUIRE_CUDA();
  using Forward = void (*)(const Tensor&, const Tensor&);
  using Backward = void (*)(const Tensor&, const Tensor&, const Tensor&);
  struct Op {
    const char* name;
    Forward forward;
    Backward backward;
    bool backward_uses_output;
  };
  const Op kOps[] = {{"gelu", ops::gelu_forward, ops::gelu_backward, false},
                     {"relu", ops::relu_forward, ops::relu_backward, false},
                     {"tanh", ops::tanh_forward, ops::tanh_backward, true}};
  for (DType dtype : kHalfTypes)
    for (const Shape& shape : kElementwiseShapes)
      for (const Op& op : kOps) {
        Tensor x = rounded(random_cpu(shape, 1, 2.0f), dtype), dout = rounded(random_cpu(shape, 2), dtype);
        Tensor out = Tensor::empty(shape, DType::F32);
        op.forward(out, x);
        Tensor g_out = gpu_poisoned(shape, dtype);
        op.forward(g_out, gpu_as(x, dtype));
        expect_close(g_out, out, label(std::string(op.name) + "_forward out", dtype, shape), kRtol16);

        // Backward from the same rounded saved tensor on both sides.
        Tensor saved = op.backward_uses_output ? rounded(out, dtype) : x;
        Tensor dinp = Tensor::empty(shape, DType::F32);
        op.backward(dinp, saved, dout);
        Tensor g_dinp = gpu_poisoned(shape, dtype);
        op.backward(g_dinp, gpu_as(saved, dtype), gpu_as(dout, dtype));
        expect_close(g_dinp, dinp, label(std::string(op.name) + "_backward dinp", dtype, shape), kRtol16);
      }
}

TEST(CudaMixedPrecision, DropoutKeepsTheF32Mask) {
  WW_REQUIRE_CUDA();
  for (DType dtype : kHalfTypes)
    for (const Shape& shape : kElementwiseShapes) {
      const std::string what = label("dropout_forward", dtype, shape);
      // Inputs away from zero, so a zero output means "dropped".
      Tensor x = rounded(random_cpu(shape, 3, 0.1f, 1.0f), dtype);
      Tensor out = Tensor::empty(shape, DType::F32);
      ops::dropout_forward(out, x, 0.3f, 42, 7);
      Tensor g_out = gpu_poisoned(shape, dtype);
      ops::dropout_forward(g_out, gpu_as(x, dtype), 0.3f, 42, 7);
      expect_close(g_out, out, what, kRtol16);
      const std::vector<float> got = read(g_out), want = out.to_float_vector();
      int64_t mask_differences = 0;
      for (size_t i = 0; i < got.size(); ++i) mask_differences += (got[i] == 0.0f) != (want[i] == 0.0f);
      EXPECT_EQ(mask_differences, 0) << what << ": dropped positions differ from the f32 mask";

      Tensor g_back = gpu_poisoned(shape, dtype);
      ops::dropout_backward(g_back, gpu_as(x, dtype), 0.3f, 42, 7);
      Tensor back = Tensor::empty(shape, DType::F32);
      ops::dropout_backward(back, x, 0.3f, 42, 7);
      expect_close(g_back, back, label("dropout_backward", dtype, shape), kRtol16);
    }
}

TEST(CudaMixedPrecision, ResidualAddScaleMatchCpu) {
  WW_REQUIRE_CUDA();
  for (DType dtype : kHalfTypes)
    for (const Shape& shape : kElementwiseShapes) {
      Tensor a = rounded(random_cpu(shape, 4), dtype), b = rounded(random_cpu(shape, 5), dtype);
      Tensor out = Tensor::empty(shape, DType::F32);
      ops::residual_forward(out, a, b);
      Tensor g_out = gpu_poisoned(shape, dtype);
      ops::residual_forward(g_out, gpu_as(a, dtype), gpu_as(b, dtype));
      expect_close(g_out, out, label("residual_forward", dtype, shape), kRtol16);

      Tensor acc = a.to(Device::cpu()), g_acc = gpu_as(a, dtype);
      ops::add_inplace(acc, b);
      ops::add_inplace(g_acc, gpu_as(b, dtype));
      expect_close(g_acc, acc, label("add_inplace", dtype, shape), kRtol16);

      Tensor g_scaled = gpu_as(a, dtype), scaled = a.to(Device::cpu());
      ops::scale_inplace(scaled, 0.37f);
      ops::scale_inplace(g_scaled, 0.37f);
      expect_close(g_scaled, scaled, label("scale_inplace", dtype, shape), kRtol16);
    }
}

TEST(CudaMixedPrecision, PoolingMatchesCpu) {
  WW_REQUIRE_CUDA();
  for (DType dtype : kHalfTypes)
    for (const Shape& shape : std::vector<Shape>{{1, 1, 1}, {3, 17, 130}, {4, 33, 768}}) {
      const int64_t B = shape[0], T = shape[1], C = shape[2];
      Tensor inp = rounded(random_cpu(shape, 6), dtype), dout = rounded(random_cpu({B, C}, 7), dtype);
      const int64_t index = T / 2;

      Tensor out = Tensor::empty({B, C}, DType::F32), g_out = gpu_poisoned({B, C}, dtype);
      ops::select_token_forward(out, inp, index);
      ops::select_token_forward(g_out, gpu_as(inp, dtype), index);
      expect_close(g_out, out, label("select_token_forward", dtype, shape), 0.0);

      Tensor start = rounded(random_cpu(shape, 8), dtype);
      Tensor dinp = start.to(Device::cpu()), g_dinp = gpu_as(start, dtype);
      ops::select_token_backward(dinp, dout, index);
      ops::select_token_backward(g_dinp, gpu_as(dout, dtype), index);
      expect_close(g_dinp, dinp, label("select_token_backward", dtype, shape), kRtol16);

      std::vector<int32_t> mask_values = ragged_mask(B, T, 9);
      Tensor mask = Tensor::from_vector(mask_values, {B, T}), g_mask = gpu_ints(mask_values, {B, T});
      Tensor mean = Tensor::empty({B, C}, DType::F32), g_mean = gpu_poisoned({B, C}, dtype);
      ops::masked_mean_forward(mean, inp, mask);
      ops::masked_mean_forward(g_mean, gpu_as(inp, dtype), g_mask);
      expect_close(g_mean, mean, label("masked_mean_forward", dtype, shape), kRtol16);

      Tensor mean_grad = Tensor::empty(shape, DType::F32), g_mean_grad = gpu_poisoned(shape, dtype);
      ops::masked_mean_backward(mean_grad, dout, mask);
      ops::masked_mean_backward(g_mean_grad, gpu_as(dout, dtype), g_mask);
      expect_close(g_mean_grad, mean_grad, label("masked_mean_backward", dtype, shape), kRtol16);
    }
}

TEST(CudaMixedPrecision, SoftmaxMatchesCpu) {
  WW_REQUIRE_CUDA();
  for (DType dtype : kHalfTypes)
    for (const Shape& shape : std::vector<Shape>{{1, 1}, {5, 7}, {33, 300}, {2, 3, 1025}}) {
      Tensor x = rounded(random_cpu(shape, 10, 3.0f), dtype);
      Tensor out = Tensor::empty(shape, DType::F32), g_out = gpu_poisoned(shape, dtype);
      ops::softmax_forward(out, x);
      ops::softmax_forward(g_out, gpu_as(x, dtype));
      expect_close(g_out, out, label("softmax_forward", dtype, shape), kRtol16);

      Tensor y = rounded(out, dtype), dout = rounded(random_cpu(shape, 11), dtype);
      Tensor dinp = Tensor::empty(shape, DType::F32), g_dinp = gpu_poisoned(shape, dtype);
      ops::softmax_backward(dinp, y, dout);
      ops::softmax_backward(g_dinp, gpu_as(y, dtype), gpu_as(dout, dtype));
      expect_close(g_dinp, dinp, label("softmax_backward", dtype, shape), kRtol16);
    }
}

// 1,100 rows: past the residual LayerNorm's parameter-prefetch limit (1,024), the many-row kernel.
const std::vector<std::pair<int64_t, int64_t>> kLayerNormShapes = {{1, 1},    {3, 7},      {5, 768},
                                                                   {70, 300}, {33, 1025}, {1100, 768}};

TEST(CudaMixedPrecision, LayerNormMatchesCpu) {
  WW_REQUIRE_CUDA();
  for (DType dtype : kHalfTypes)
    for (const auto& [N, C] : kLayerNormShapes) {
      const Shape shape = {N, C};
      Tensor x = rounded(random_cpu(shape, 12, 2.0f, 0.5f), dtype), dout = rounded(random_cpu(shape, 13), dtype);
      Tensor weight = random_cpu({C}, 14, 0.2f, 1.0f), bias = random_cpu({C}, 15, 0.1f);
      Tensor out = Tensor::empty(shape, DType::F32), mean = Tensor::empty({N}, DType::F32),
             rstd = Tensor::empty({N}, DType::F32);
      ops::layernorm_forward(out, mean, rstd, x, weight, bias, 1e-5f);
      Tensor g_out = gpu_poisoned(shape, dtype), g_mean = gpu_poisoned({N}, DType::F32),
             g_rstd = gpu_poisoned({N}, DType::F32);
      Tensor g_weight = gpu_as(weight, DType::F32), g_bias = gpu_as(bias, DType::F32), g_x = gpu_as(x, dtype);
      ops::layernorm_forward(g_out, g_mean, g_rstd, g_x, g_weight, g_bias, 1e-5f);
      expect_close(g_out, out, label("layernorm_forward out", dtype, shape), kRtol16);
      expect_close(g_mean, mean, label("layernorm_forward mean", dtype, shape), 1e-5);
      expect_close(g_rstd, rstd, label("layernorm_forward rstd", dtype, shape), 1e-5);

      Tensor dinp = Tensor::empty(shape, DType::F32), g_dinp = gpu_poisoned(shape, dtype);
      Tensor dweight = random_cpu({C}, 16), dbias = random_cpu({C}, 17);
      Tensor g_dweight = gpu_as(dweight, DType::F32), g_dbias = gpu_as(dbias, DType::F32);
      ops::layernorm_backward(dinp, dweight, dbias, dout, x, weight, mean, rstd);
      ops::layernorm_backward(g_dinp, g_dweight, g_dbias, gpu_as(dout, dtype), g_x, g_weight, g_mean, g_rstd);
      expect_close(g_dinp, dinp, label("layernorm_backward dinp", dtype, shape), kRtol16);
      expect_close(g_dweight, dweight, label("layernorm_backward dweight", dtype, shape), kRtolParamGrad);
      expect_close(g_dbias, dbias, label("layernorm_backward dbias", dtype, shape), kRtolParamGrad);
    }
}

TEST(CudaMixedPrecision, ResidualLayerNormMatchesTheTwoKernels) {
  WW_REQUIRE_CUDA();
  for (DType dtype : {DType::F32, DType::F16, DType::BF16})
    for (const auto& [N, C] : kLayerNormShapes) {
      const Shape shape = {N, C};
      const double rtol = dtype == DType::F32 ? 1e-6 : kRtol16;
      Tensor a = gpu_as(random_cpu(shape, 18, 1.0f, 0.5f), dtype), b = gpu_as(random_cpu(shape, 19), dtype);
      Tensor weight = gpu_as(random_cpu({C}, 20, 0.2f, 1.0f), DType::F32), bias = gpu_as(random_cpu({C}, 21), DType::F32);

      Tensor sum_ref = gpu_poisoned(shape, dtype), out_ref = gpu_poisoned(shape, dtype);
      Tensor mean_ref = gpu_poisoned({N}, DType::F32), rstd_ref = gpu_poisoned({N}, DType::F32);
      ops::residual_forward(sum_ref, a, b);
      ops::layernorm_forward(out_ref, mean_ref, rstd_ref, sum_ref, weight, bias, 1e-5f);

      Tensor sum = gpu_poisoned(shape, dtype), out = gpu_poisoned(shape, dtype);
      Tensor mean = gpu_poisoned({N}, DType::F32), rstd = gpu_poisoned({N}, DType::F32);
      ops::residual_layernorm_forward(out, sum, mean, rstd, a, b, weight, bias, 1e-5f);
      expect_close(sum, sum_ref, label("residual_layernorm_forward sum", dtype, shape), rtol);
      expect_close(out, out_ref, label("residual_layernorm_forward out", dtype, shape), rtol);
      expect_close(mean, mean_ref, label("residual_layernorm_forward mean", dtype, shape), 1e-6);
      expect_close(rstd, rstd_ref, label("residual_layernorm_forward rstd", dtype, shape), 1e-6);

      // And the CPU's f32 reference on the rounded inputs.
      Tensor a_cpu = Tensor::from_vector(read(a), shape), b_cpu = Tensor::from_vector(read(b), shape);
      Tensor w_cpu = Tensor::from_vector(read(weight), {C}), bias_cpu = Tensor::from_vector(read(bias), {C});
      Tensor sum_cpu = Tensor::empty(shape, DType::F32), out_cpu = Tensor::empty(shape, DType::F32);
      Tensor mean_cpu = Tensor::empty({N}, DType::F32), rstd_cpu = Tensor::empty({N}, DType::F32);
      ops::residual_layernorm_forward(out_cpu, sum_cpu, mean_cpu, rstd_cpu, a_cpu, b_cpu, w_cpu, bias_cpu, 1e-5f);
      expect_close(out, out_cpu, label("residual_layernorm_forward out vs cpu", dtype, shape),
                   dtype == DType::F32 ? 1e-5 : kRtol16);
    }
}

TEST(CudaMixedPrecision, LayerNormBackwardAccumulateAdds) {
  WW_REQUIRE_CUDA();
  for (DType dtype : {DType::F32, DType::F16, DType::BF16})
    for (const auto& [N, C] : kLayerNormShapes) {
      const Shape shape = {N, C};
      Tensor x = gpu_as(random_cpu(shape, 22, 2.0f), dtype), dout = gpu_as(random_cpu(shape, 23), dtype);
      Tensor weight = gpu_as(random_cpu({C}, 24, 0.2f, 1.0f), DType::F32), bias = gpu_as(random_cpu({C}, 25), DType::F32);
      Tensor out = gpu_poisoned(shape, dtype), mean = gpu_poisoned({N}, DType::F32), rstd = gpu_poisoned({N}, DType::F32);
      ops::layernorm_forward(out, mean, rstd, x, weight, bias, 1e-5f);

      Tensor plain = gpu_poisoned(shape, dtype);
      ops::layernorm_backward(plain, Tensor(), Tensor(), dout, x, weight, mean, rstd);
      Tensor start_cpu = rounded(random_cpu(shape, 26), dtype);
      Tensor acc = gpu_as(start_cpu, dtype);
      ops::layernorm_backward(acc, Tensor(), Tensor(), dout, x, weight, mean, rstd, /*accumulate=*/true);

      std::vector<float> want = start_cpu.to_float_vector();
      const std::vector<float> p = read(plain);
      for (size_t i = 0; i < want.size(); ++i) want[i] += p[i];
      expect_close(acc, Tensor::from_vector(want, shape), label("layernorm_backward accumulate", dtype, shape),
                   dtype == DType::F32 ? 0.0 : kRtol16);
    }
}

TEST(CudaMixedPrecision, EmbeddingsMatchCpu) {
  WW_REQUIRE_CUDA();
  const int64_t B = 3, T = 17, C = 130, V = 11, P = 20, TT = 2;
  for (DType dtype : kHalfTypes) {
    const Shape shape = {B, T, C};
    std::vector<int32_t> id_values = random_ids(B * T, V, 27), type_values = random_ids(B * T, TT, 28);
    Tensor ids = Tensor::from_vector(id_values, {B, T}), types = Tensor::from_vector(type_values, {B, T});
    Tensor g_ids = gpu_ints(id_values, {B, T}), g_types = gpu_ints(type_values, {B, T});
    Tensor word = random_cpu({V, C}, 29), position = random_cpu({P, C}, 30), token_type = random_cpu({TT, C}, 31);
    Tensor out = Tensor::empty(shape, DType::F32), g_out = gpu_poisoned(shape, dtype);
    ops::embeddings_forward(out, ids, types, word, position, token_type, 2);
    ops::embeddings_forward(g_out, g_ids, g_types, gpu_as(word, DType::F32), gpu_as(position, DType::F32),
                            gpu_as(token_type, DType::F32), 2);
    expect_close(g_out, out, label("embeddings_forward out", dtype, shape), kRtol16);

    Tensor dout = rounded(random_cpu(shape, 32), dtype);
    Tensor dword = random_cpu({V, C}, 33), dposition = random_cpu({P, C}, 34), dtoken = random_cpu({TT, C}, 35);
    Tensor g_dword = gpu_as(dword, DType::F32), g_dposition = gpu_as(dposition, DType::F32),
           g_dtoken = gpu_as(dtoken, DType::F32);
    ops::embeddings_backward(dword, dposition, dtoken, dout, ids, types, 2);
    ops::embeddings_backward(g_dword, g_dposition, g_dtoken, gpu_as(dout, dtype), g_ids, g_types, 2);
    expect_close(g_dword, dword, label("embeddings_backward dword", dtype, shape), kRtolParamGrad);
    expect_close(g_dposition, dposition, label("embeddings_backward dposition", dtype, shape), kRtolParamGrad);
    expect_close(g_dtoken, dtoken, label("embeddings_backward dtoken_type", dtype, shape), kRtolParamGrad);
  }
}

TEST(CudaMixedPrecision, LossesMatchCpu) {
  WW_REQUIRE_CUDA();
  for (DType dtype : kHalfTypes)
    for (const auto& [N, K] : std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {9, 3}, {64, 1000}}) {
      const Shape shape = {N, K};
      Tensor logits = rounded(random_cpu(shape, 36, 3.0f), dtype);
      std::vector<int32_t> label_values = random_ids(N, K, 37);
      if (N > 1) label_values[1] = -100;
      Tensor labels = Tensor::from_vector(label_values, {N}), g_labels = gpu_ints(label_values, {N});
      for (float smoothing : {0.0f, 0.1f}) {
        Tensor losses = Tensor::empty({N}, DType::F32), g_losses = gpu_poisoned({N}, DType::F32);
        ops::cross_entropy_forward(losses, logits, labels, smoothing);
        ops::cross_entropy_forward(g_losses, gpu_as(logits, dtype), g_labels, smoothing);
        expect_close(g_losses, losses, label("cross_entropy_forward losses", dtype, shape), 1e-5);

        Tensor dlogits = Tensor::empty(shape, DType::F32), g_dlogits = gpu_poisoned(shape, dtype);
        ops::cross_entropy_backward(dlogits, logits, labels, smoothing, 0.5f);
        ops::cross_entropy_backward(g_dlogits, gpu_as(logits, dtype), g_labels, smoothing, 0.5f);
        expect_close(g_dlogits, dlogits, label("cross_entropy_backward dlogits", dtype, shape), kRtol16);
      }
      Tensor pred = rounded(random_cpu({N}, 38), dtype), target = random_cpu({N}, 39);
      Tensor losses = Tensor::empty({N}, DType::F32), g_losses = gpu_poisoned({N}, DType::F32);
      ops::mse_forward(losses, pred, target);
      ops::mse_forward(g_losses, gpu_as(pred, dtype), gpu_as(target, DType::F32));
      expect_close(g_losses, losses, label("mse_forward losses", dtype, {N}), 1e-5);
      Tensor dpred = Tensor::empty({N}, DType::F32), g_dpred = gpu_poisoned({N}, dtype);
      ops::mse_backward(dpred, pred, target, 0.25f);
      ops::mse_backward(g_dpred, gpu_as(pred, dtype), gpu_as(target, DType::F32), 0.25f);
      expect_close(g_dpred, dpred, label("mse_backward dpred", dtype, {N}), kRtol16);
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

TEST(CudaMixedPrecision, LinearMatchesCpu) {
  WW_REQUIRE_CUDA();
  for (DType dtype : kHalfTypes)
    for (const LinearCase& c : kLinearCases) {
      Tensor inp = rounded(random_cpu({c.N, c.IC}, 40), dtype);
      Tensor weight = rounded(random_cpu({c.OC, c.IC}, 41, 0.1f), dtype);
      Tensor bias = c.bias ? rounded(random_cpu({c.OC}, 42), dtype) : Tensor();
      Tensor g_inp = gpu_as(inp, dtype), g_weight = gpu_as(weight, dtype);
      Tensor g_bias = c.bias ? gpu_as(bias, dtype) : Tensor();

      Tensor out = Tensor::empty({c.N, c.OC}, DType::F32), g_out = gpu_poisoned({c.N, c.OC}, dtype);
      ops::linear_forward(out, inp, weight, bias);
      ops::linear_forward(g_out, g_inp, g_weight, g_bias);
      expect_close(g_out, out, linear_label("linear_forward out", dtype, c), kRtol16);

      Tensor dout = rounded(random_cpu({c.N, c.OC}, 43), dtype);
      Tensor dinp = Tensor::empty({c.N, c.IC}, DType::F32), g_dinp = gpu_poisoned({c.N, c.IC}, dtype);
      Tensor dweight = random_cpu({c.OC, c.IC}, 44), dbias = random_cpu({c.OC}, 45);
      Tensor g_dweight = gpu_as(dweight, DType::F32), g_dbias = gpu_as(dbias, DType::F32);
      ops::linear_backward(dinp, dweight, dbias, dout, inp, weight);
      ops::linear_backward(g_dinp, g_dweight, g_dbias, gpu_as(dout, dtype), g_inp, g_weight);
      expect_close(g_dinp, dinp, linear_label("linear_backward dinp", dtype, c), kRtol16);
      expect_close(g_dweight, dweight, linear_label("linear_backward dweight (f32)", dtype, c), kRtolParamGrad);
      expect_close(g_dbias, dbias, linear_label("linear_backward dbias (f32)", dtype, c), kRtolParamGrad);
    }
}

TEST(CudaMixedPrecision, Tf32LinearAndAttentionStayNearF32) {
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

struct AttentionCase {
  int64_t B, T, H, D;
  bool causal, masked;
  float dropout_p;
};

TEST(CudaMixedPrecision, AttentionMatchesCpu) {
  WW_REQUIRE_CUDA();
  const std::vector<AttentionCase> cases = {{1, 1, 1, 1, false, false, 0.0f}, {2, 5, 2, 3, false, true, 0.0f},
                                            {3, 17, 4, 8, true, true, 0.0f},  {2, 130, 3, 16, false, true, 0.1f},
                                            {2, 33, 2, 64, true, false, 0.1f}, {4, 64, 12, 64, false, true, 0.0f}};
  for (DType dtype : kHalfTypes)
    for (const AttentionCase& c : cases) {
      const int64_t C = c.H * c.D;
      const Shape probs_shape = {c.B, c.H, c.T, c.T};
      const std::string suffix = " H=" + std::to_string(c.H) + (c.causal ? " causal" : "") +
                                 (c.masked ? " masked" : "") + " p=" + std::to_string(c.dropout_p);
      Tensor qkv = rounded(random_cpu({c.B, c.T, 3 * C}, 51, 0.5f), dtype);
      Tensor dout = rounded(random_cpu({c.B, c.T, C}, 52), dtype);
      std::vector<int32_t> mask_values = ragged_mask(c.B, c.T, 53);
      Tensor mask = c.masked ? Tensor::from_vector(mask_values, {c.B, c.T}) : Tensor();
      Tensor g_mask = c.masked ? gpu_ints(mask_values, {c.B, c.T}) : Tensor();

      Tensor out = Tensor::empty({c.B, c.T, C}, DType::F32), probs = Tensor::empty(probs_shape, DType::F32);
      ops::attention_forward(out, probs, qkv, mask, c.H, c.causal, c.dropout_p, 5, 6);
      Tensor dqkv = Tensor::empty(qkv.shape(), DType::F32), scratch = Tensor::empty(probs_shape, DType::F32);
      ops::attention_backward(dqkv, scratch, dout, qkv, probs, mask, c.H, c.causal, c.dropout_p, 5, 6);

      Tensor g_qkv = gpu_as(qkv, dtype);
      Tensor g_out = gpu_poisoned({c.B, c.T, C}, dtype), g_probs = gpu_poisoned(probs_shape, dtype);
      ops::attention_forward(g_out, g_probs, g_qkv, g_mask, c.H, c.causal, c.dropout_p, 5, 6);
      expect_close(g_probs, probs, label("attention_forward probs", dtype, qkv.shape()) + suffix, kRtol16);
      expect_close(g_out, out, label("attention_forward out", dtype, qkv.shape()) + suffix, kRtol16);

      Tensor g_dqkv = gpu_poisoned(qkv.shape(), dtype), g_scratch = gpu_poisoned(probs_shape, dtype);
      ops::attention_backward(g_dqkv, g_scratch, gpu_as(dout, dtype), g_qkv, g_probs, g_mask, c.H, c.causal,
                              c.dropout_p, 5, 6);
      expect_close(g_dqkv, dqkv, label("attention_backward dqkv", dtype, qkv.shape()) + suffix, kRtol16);
    }
}

TEST(CudaMixedPrecision, CastMatchesTheCpuConversionsBitForBit) {
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

TEST(CudaMixedPrecision, CastRoundTripsRepresentableValuesExactly) {
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

TEST(CudaMixedPrecision, DtypeErrorsOnTheGpu) {
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
