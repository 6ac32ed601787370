// ops::layernorm_forward / residual_layernorm_forward / layernorm_backward: the CPU reference
// against double precision (forward against the definition, backward against central finite
// differences; 1e-5 relative with an absolute floor at 1e-5 of the tensor's scale), and every device
// × dtype against the CPU reference (tolerances: tests/ops/op_test_util.h; mean and rstd are f32
// for every dtype).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "ops/op_test_util.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/dropout.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/layernorm.h"

using namespace ww;
using namespace ww::testing;

namespace {

// ---- the CPU reference ------------------------------------------------------------------------

// out = (x − mean)/sqrt(var + eps)·w + b per row, biased variance, all in double.
std::vector<double> layernorm_ref(const std::vector<double>& x, const std::vector<double>& w,
                                  const std::vector<double>& b, int64_t N, int64_t C, double eps,
                                  std::vector<double>* mean = nullptr, std::vector<double>* rstd = nullptr) {
  std::vector<double> out(x.size());
  for (int64_t n = 0; n < N; ++n) {
    double m = 0.0, v = 0.0;
    for (int64_t c = 0; c < C; ++c) m += x[size_t(n * C + c)];
    m /= double(C);
    for (int64_t c = 0; c < C; ++c) v += (x[size_t(n * C + c)] - m) * (x[size_t(n * C + c)] - m);
    const double r = 1.0 / std::sqrt(v / double(C) + eps);
    if (mean) mean->push_back(m);
    if (rstd) rstd->push_back(r);
    for (int64_t c = 0; c < C; ++c)
      out[size_t(n * C + c)] = (x[size_t(n * C + c)] - m) * r * w[size_t(c)] + b[size_t(c)];
  }
  return out;
}

TEST(LayerNormCpu, ForwardMatchesReference) {
  for (const RowsCols& s : kShapes) {
    for (float eps : {1e-12f, 1e-5f, 0.5f}) {
      SCOPED_TRACE("N=" + std::to_string(s.rows) + " C=" + std::to_string(s.cols) + " eps=" + std::to_string(eps));
      const int64_t N = s.rows, C = s.cols;
      // An offset mean makes the variance computation matter.
      Tensor inp = random_tensor({N, C}, 1, 3.0f), weight = random_tensor({C}, 2), bias = random_tensor({C}, 3);
      for (int64_t i = 0; i < N * C; ++i) inp.data<float>()[i] += 5.0f;
      Tensor out = Tensor::empty({N, C}, DType::F32), mean = Tensor::empty({N}, DType::F32),
             rstd = Tensor::empty({N}, DType::F32);
      ops::layernorm_forward(out, mean, rstd, inp, weight, bias, eps);
      std::vector<double> want_mean, want_rstd;
      const std::vector<double> want =
          layernorm_ref(as_double(inp), as_double(weight), as_double(bias), N, C, double(eps), &want_mean, &want_rstd);
      expect_close(out, want, "layernorm out");
      expect_close(mean, want_mean, "mean");
      expect_close(rstd, want_rstd, "rstd");
    }
  }
}

TEST(LayerNormCpu, BackwardMatchesFiniteDifferences) {
  for (const RowsCols& s : std::vector<RowsCols>{{1, 3}, {5, 13}, {3, 67}}) {
    SCOPED_TRACE("N=" + std::to_string(s.rows) + " C=" + std::to_string(s.cols));
    const int64_t N = s.rows, C = s.cols;
    const double eps = 1e-5;
    Tensor inp = random_tensor({N, C}, 1, 2.0f), weight = random_tensor({C}, 2), bias = random_tensor({C}, 3);
    Tensor dout = random_tensor({N, C}, 4);
    Tensor out = Tensor::empty({N, C}, DType::F32), mean = Tensor::empty({N}, DType::F32),
           rstd = Tensor::empty({N}, DType::F32);
    ops::layernorm_forward(out, mean, rstd, inp, weight, bias, float(eps));
    // Scalar loss Σ out ⊙ dout; its gradients are what backward must return.
    const std::vector<double> x = as_double(inp), w = as_double(weight), b = as_double(bias), R = as_double(dout);
    const auto want_dinp = numeric_gradient(x, [&](const auto& v) { return dot(layernorm_ref(v, w, b, N, C, eps), R); });
    const auto want_dw = numeric_gradient(w, [&](const auto& v) { return dot(layernorm_ref(x, v, b, N, C, eps), R); });
    const auto want_db = numeric_gradient(b, [&](const auto& v) { return dot(layernorm_ref(x, w, v, N, C, eps), R); });

    // Parameter gradients accumulate onto what is there; dinp is overwritten.
    Tensor dinp = random_tensor({N, C}, 5), dweight = random_tensor({C}, 6), dbias = random_tensor({C}, 7);
    std::vector<double> expect_dw = as_double(dweight), expect_db = as_double(dbias);
    for (int64_t c = 0; c < C; ++c) {
      expect_dw[size_t(c)] += want_dw[size_t(c)];
      expect_db[size_t(c)] += want_db[size_t(c)];
    }
    ops::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd);
    expect_close(dinp, want_dinp, "layernorm dinp", 1e-4);  // finite differences of a normalisation
    expect_close(dweight, expect_dw, "layernorm dweight");
    expect_close(dbias, expect_db, "layernorm dbias");
  }
}

TEST(LayerNormCpu, BackwardAtModelWidthAndThreadCounts) {
  // Larger rows against an analytic double reference; the result must not depend on thread count.
  const int64_t N = 77, C = 768;
  Tensor inp = random_tensor({N, C}, 1), weight = random_tensor({C}, 2), bias = random_tensor({C}, 3),
         dout = random_tensor({N, C}, 4);
  Tensor out = Tensor::empty({N, C}, DType::F32), mean = Tensor::empty({N}, DType::F32),
         rstd = Tensor::empty({N}, DType::F32);
  ops::layernorm_forward(out, mean, rstd, inp, weight, bias, 1e-12f);
  std::vector<double> m, r;
  layernorm_ref(as_double(inp), as_double(weight), as_double(bias), N, C, 1e-12, &m, &r);
  const std::vector<double> x = as_double(inp), w = as_double(weight), d = as_double(dout);
  std::vector<double> want_dinp(static_cast<size_t>(N * C)), want_dw(static_cast<size_t>(C), 0.0), want_db(static_cast<size_t>(C), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    double mean_g = 0.0, mean_gx = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      const double xhat = (x[size_t(n * C + c)] - m[size_t(n)]) * r[size_t(n)], g = d[size_t(n * C + c)] * w[size_t(c)];
      mean_g += g / double(C);
      mean_gx += g * xhat / double(C);
      want_dw[size_t(c)] += d[size_t(n * C + c)] * xhat;
      want_db[size_t(c)] += d[size_t(n * C + c)];
    }
    for (int64_t c = 0; c < C; ++c) {
      const double xhat = (x[size_t(n * C + c)] - m[size_t(n)]) * r[size_t(n)], g = d[size_t(n * C + c)] * w[size_t(c)];
      want_dinp[size_t(n * C + c)] = r[size_t(n)] * (g - mean_g - xhat * mean_gx);
    }
  }
  std::vector<std::vector<Tensor>> runs;
  for (int threads : {1, 2, 3}) {
    Tensor dinp = Tensor::empty({N, C}, DType::F32), dw = Tensor::zeros({C}, DType::F32),
           db = Tensor::zeros({C}, DType::F32);
    with_threads(threads, [&] { ops::layernorm_backward(dinp, dw, db, dout, inp, weight, mean, rstd); });
    runs.push_back({dinp, dw, db});
  }
  expect_close(runs[0][0], want_dinp, "dinp");
  expect_close(runs[0][1], want_dw, "dweight");
  expect_close(runs[0][2], want_db, "dbias");
  for (size_t run = 1; run < runs.size(); ++run)
    for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(same_bits(runs[0][i], runs[run][i])) << "run " << run << " tensor " << i;
  expect_error([&] { ops::layernorm_backward(dout, Tensor(), Tensor(), dout, inp, weight, mean, rstd); },
               {"layernorm_backward", "'dinp'", "'dout'"});
  expect_error([&] { ops::layernorm_forward(out, Tensor::empty({N + 1}, DType::F32), rstd, inp, weight, bias, 1e-5f); },
               {"layernorm_forward", "'mean'", "77 elements"});
  expect_error([&] { ops::layernorm_forward(out, mean, rstd, inp, weight, Tensor::empty({C - 1}, DType::F32), 1e-5f); },
               {"layernorm_forward", "'bias'"});
}

TEST(LayerNormCpu, ResidualLayerNormChecksItsArguments) {
  Tensor x = random_cpu({2, 3}, 1), w = random_cpu({3}, 2), m = Tensor::empty({2}, DType::F32);
  expect_error([&] { ops::residual_layernorm_forward(x, x, m, m, random_cpu({2, 3}, 3), random_cpu({2, 3}, 4), w, w, 1e-5f); },
               {"residual_layernorm_forward: argument 'out' must not share memory with 'sum'"});
  expect_error([&] { ops::residual_layernorm_forward(x, random_cpu({2, 3}, 5), m, m, x, Tensor::zeros({2, 3}, DType::F16), w, w, 1e-5f); },
               {"residual_layernorm_forward: argument 'b' is f16"});
}

// ---- every device and dtype against the CPU reference ---------------------------------------

class LayerNormTest : public DeviceDtypeTest {};

// 1,100 rows: past the residual LayerNorm's parameter-prefetch limit (1,024), the many-row kernel;
// C = 1,025: one element past the rows a warp keeps in registers, and not a multiple of any vector.
const std::vector<std::pair<int64_t, int64_t>> kLayerNormShapes = {{1, 1},    {3, 7},      {5, 768},
                                                                   {70, 300}, {33, 1025}, {1100, 768}};

// Forward (also in place), backward onto random parameter gradients (they accumulate), each from the
// parameter's own mean and rstd. f32 rows have a mean far from 0 (the statistics' two passes matter
// there). Parameter gradients alone give the same bits as with dinp (fixed order of additions).
TEST_P(LayerNormTest, MatchesTheCpuReference) {
  for (const auto& [N, C] : kLayerNormShapes) {
    const Shape shape = {N, C};
    SCOPED_TRACE(what("layernorm", shape));
    const uint64_t seed = uint64_t(N * 7 + C);
    Tensor inp = reference_input(random_cpu(shape, seed, 2.0f, is_16bit() ? 0.5f : 3.0f));
    Tensor weight = random_cpu({C}, seed + 1, 0.2f, 1.0f), bias = random_cpu({C}, seed + 2, 0.1f);
    Tensor out = poisoned_cpu(shape), mean = poisoned_cpu({N}), rstd = poisoned_cpu({N});
    ops::layernorm_forward(out, mean, rstd, inp, weight, bias, 1e-5f);
    const Tensor inp_p = put(inp), weight_p = put_f32(weight), bias_p = put_f32(bias);
    Tensor got = nan_tensor(shape), got_mean = nan_f32({N}), got_rstd = nan_f32({N});
    ops::layernorm_forward(got, got_mean, got_rstd, inp_p, weight_p, bias_p, 1e-5f);
    expect_matches(got, out, "layernorm out", rtol());
    expect_matches(got_mean, mean, "layernorm mean", f32_rtol());
    expect_matches(got_rstd, rstd, "layernorm rstd", f32_rtol());

    // In place (out aliases inp).
    Tensor in_place = put(inp), mean2 = nan_f32({N}), rstd2 = nan_f32({N});
    ops::layernorm_forward(in_place, mean2, rstd2, in_place, weight_p, bias_p, 1e-5f);
    expect_matches(in_place, out, "layernorm in place", rtol());

    Tensor dout = reference_input(random_cpu(shape, seed + 3));
    Tensor dweight = random_cpu({C}, seed + 4), dbias = random_cpu({C}, seed + 5);
    Tensor got_dweight = put_f32(dweight), got_dbias = put_f32(dbias);
    Tensor dweight_alone = put_f32(dweight), dbias_alone = put_f32(dbias);
    Tensor dinp = poisoned_cpu(shape), got_dinp = nan_tensor(shape);
    ops::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd);
    const Tensor dout_p = put(dout);
    ops::layernorm_backward(got_dinp, got_dweight, got_dbias, dout_p, inp_p, weight_p, got_mean, got_rstd);
    expect_matches(got_dinp, dinp, "layernorm dinp", rtol());
    expect_matches(got_dweight, dweight, "layernorm dweight", param_grad_rtol());
    expect_matches(got_dbias, dbias, "layernorm dbias", param_grad_rtol());

    if (is_16bit()) continue;
    ops::layernorm_backward(Tensor{}, dweight_alone, Tensor{}, dout_p, inp_p, weight_p, got_mean, got_rstd);
    ops::layernorm_backward(Tensor{}, Tensor{}, dbias_alone, dout_p, inp_p, weight_p, got_mean, got_rstd);
    EXPECT_EQ(read(dweight_alone), read(got_dweight));
    EXPECT_EQ(read(dbias_alone), read(got_dbias));
  }
}

// The fused residual LayerNorm against residual_forward then layernorm_forward on the same device:
// the CPU runs exactly those two kernels (the same bits); the GPU's one kernel sums in float as
// residual_forward does and normalises as layernorm_forward does (f32: within 1e-6; 16-bit: the sum
// is rounded to 16 bits in both, then the output once more). Also against the CPU reference, and
// with the sum written over a itself (the residual stream updated in place).
TEST_P(LayerNormTest, ResidualLayerNormEqualsTheTwoKernels) {
  auto shapes = kLayerNormShapes;
  shapes.push_back({17, 768});
  const double fused_rtol = is_16bit() ? kRtol16 : 1e-6, stats_rtol = 1e-6;
  for (const auto& [N, C] : shapes) {
    const Shape shape = {N, C};
    SCOPED_TRACE(what("residual_layernorm_forward", shape));
    const Tensor a_cpu = reference_input(random_cpu(shape, 18, 1.0f, 0.5f)), b_cpu = reference_input(random_cpu(shape, 19));
    const Tensor w_cpu = random_cpu({C}, 20, 0.2f, 1.0f), bias_cpu = random_cpu({C}, 21, 0.1f);
    const Tensor a = put(a_cpu), b = put(b_cpu), weight = put_f32(w_cpu), bias = put_f32(bias_cpu);

    Tensor sum_ref = nan_tensor(shape), out_ref = nan_tensor(shape), mean_ref = nan_f32({N}), rstd_ref = nan_f32({N});
    ops::residual_forward(sum_ref, a, b);
    ops::layernorm_forward(out_ref, mean_ref, rstd_ref, sum_ref, weight, bias, 1e-5f);

    Tensor sum = nan_tensor(shape), out = nan_tensor(shape), mean = nan_f32({N}), rstd = nan_f32({N});
    ops::residual_layernorm_forward(out, sum, mean, rstd, a, b, weight, bias, 1e-5f);
    expect_matches(sum, sum_ref, "sum", fused_rtol);
    expect_matches(out, out_ref, "out", fused_rtol);
    expect_matches(mean, mean_ref, "mean", stats_rtol);
    expect_matches(rstd, rstd_ref, "rstd", stats_rtol);

    // sum may be a itself.
    Tensor a_copy = put(a_cpu);
    ops::residual_layernorm_forward(out, a_copy, mean, rstd, a_copy, b, weight, bias, 1e-5f);
    expect_matches(a_copy, sum_ref, "sum (in place)", fused_rtol);
    expect_matches(out, out_ref, "out (sum in place)", fused_rtol);

    // And the CPU reference on the rounded inputs.
    Tensor sum_cpu = Tensor::empty(shape, DType::F32), out_cpu = Tensor::empty(shape, DType::F32);
    Tensor mean_cpu = Tensor::empty({N}, DType::F32), rstd_cpu = Tensor::empty({N}, DType::F32);
    ops::residual_layernorm_forward(out_cpu, sum_cpu, mean_cpu, rstd_cpu, a_cpu, b_cpu, w_cpu, bias_cpu, 1e-5f);
    expect_matches(out, out_cpu, "out vs the CPU reference", rtol());
  }
}

// layernorm_backward(..., accumulate = true) adds dinp to what is there (the GPU: the same float sum,
// rounded once for 16-bit); the parameter gradients do not depend on the flag. Without parameter
// gradients the GPU takes its input-only kernel, with them the fused one: both are checked.
TEST_P(LayerNormTest, BackwardAccumulateAddsToDinp) {
  auto shapes = kLayerNormShapes;
  shapes.push_back({9, 130});
  for (const auto& [N, C] : shapes) {
    for (bool params : {false, true}) {
      const Shape shape = {N, C};
      SCOPED_TRACE(what("layernorm_backward accumulate", shape) + (params ? " with dweight, dbias" : ""));
      const Tensor x = put(random_cpu(shape, 22, 2.0f, 1.0f)), dout = put(random_cpu(shape, 23));
      const Tensor weight = put_f32(random_cpu({C}, 24, 0.2f, 1.0f)), bias = put_f32(random_cpu({C}, 25));
      Tensor out = nan_tensor(shape), mean = nan_f32({N}), rstd = nan_f32({N});
      ops::layernorm_forward(out, mean, rstd, x, weight, bias, 1e-5f);

      Tensor plain = nan_tensor(shape);
      Tensor dweight_plain = params ? put_f32(random_cpu({C}, 26)) : Tensor();
      Tensor dbias_plain = params ? put_f32(random_cpu({C}, 27)) : Tensor();
      ops::layernorm_backward(plain, dweight_plain, dbias_plain, dout, x, weight, mean, rstd);
      const Tensor start = reference_input(random_cpu(shape, 28));
      Tensor acc = put(start);
      Tensor dweight_acc = params ? put_f32(random_cpu({C}, 26)) : Tensor();
      Tensor dbias_acc = params ? put_f32(random_cpu({C}, 27)) : Tensor();
      ops::layernorm_backward(acc, dweight_acc, dbias_acc, dout, x, weight, mean, rstd, /*accumulate=*/true);

      std::vector<float> want = start.to_float_vector();
      const std::vector<float> p = read(plain);
      for (size_t i = 0; i < want.size(); ++i) want[i] += p[i];
      expect_matches(acc, Tensor::from_vector(want, shape), "dinp (accumulate)", is_16bit() ? kRtol16 : 0.0);
      if (!params) continue;
      expect_same_bits(dweight_acc, dweight_plain, "dweight");
      expect_same_bits(dbias_acc, dbias_plain, "dbias");
    }
  }
}

WW_INSTANTIATE_DEVICE_DTYPE_TEST(LayerNormTest, all_devices_and_dtypes());

// ---- CUDA ---------------------------------------------------------------------------------------

// LayerNorm at model scale (N = 4096 rows: 128 chunks of dweight/dbias partials) with C = 768 (the
// row in registers), 1024 (exactly the register capacity) and 2048 (half of it re-read), f32 and
// bf16 (16-byte vectors), and the one-element path (rows one element off 16-byte alignment).
TEST(LayerNormCuda, AtModelScaleMatchesCpu) {
  WW_REQUIRE_CUDA();
  const int64_t N = 4096;
  for (const int64_t C : {int64_t(768), int64_t(1024), int64_t(2048)}) {
    for (DType dtype : {DType::F32, DType::BF16}) {
      for (bool shifted : {false, true}) {
        SCOPED_TRACE("C=" + std::to_string(C) + " " + std::string(dtype_name(dtype)) + (shifted ? " shifted" : ""));
        const double rtol = dtype == DType::F32 ? kRtol : 1e-2, param_rtol = dtype == DType::F32 ? kRtol : 1e-4;
        Tensor inp = rounded_cpu(random_cpu({N, C}, uint64_t(C), 2.0f, 3.0f), dtype);
        Tensor dout = rounded_cpu(random_cpu({N, C}, uint64_t(C) + 1), dtype);
        Tensor weight = random_cpu({C}, uint64_t(C) + 2, 0.2f, 1.0f), bias = random_cpu({C}, uint64_t(C) + 3);
        Tensor out = poisoned_cpu({N, C}), mean = poisoned_cpu({N}), rstd = poisoned_cpu({N});
        ops::layernorm_forward(out, mean, rstd, inp, weight, bias, 1e-5f);
        Tensor dinp = poisoned_cpu({N, C});
        Tensor dweight = random_cpu({C}, uint64_t(C) + 4), dbias = random_cpu({C}, uint64_t(C) + 5);
        Tensor dweight_gpu = to_gpu(dweight), dbias_gpu = to_gpu(dbias);
        ops::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd);

        // GPU activations; shifted: views one element into larger buffers (not 16-byte aligned).
        std::vector<Tensor> keep;
        auto place = [&](const Tensor& cpu) {
          Tensor source = gpu_as(cpu, dtype);
          if (!shifted) return source;
          Tensor buffer = Tensor::empty({N * C + 1}, dtype, Device::cuda(0));
          Tensor view = Tensor::view(static_cast<char*>(buffer.raw()) + dtype_size(dtype), {N, C}, dtype,
                                     Device::cuda(0));
          sync_device();
          view.copy_from(source);
          sync_device();
          keep.push_back(buffer);
          return view;
        };
        Tensor inp_gpu = place(inp), dout_gpu = place(dout), out_gpu = place(poisoned_cpu({N, C}));
        Tensor dinp_gpu = place(poisoned_cpu({N, C}));
        Tensor weight_gpu = to_gpu(weight), bias_gpu = to_gpu(bias);
        Tensor mean_gpu = poisoned_gpu({N}), rstd_gpu = poisoned_gpu({N});
        ops::layernorm_forward(out_gpu, mean_gpu, rstd_gpu, inp_gpu, weight_gpu, bias_gpu, 1e-5f);
        expect_close(out_gpu, out, "layernorm out", rtol);
        expect_close(mean_gpu, mean, "layernorm mean");
        expect_close(rstd_gpu, rstd, "layernorm rstd");
        ops::layernorm_backward(dinp_gpu, dweight_gpu, dbias_gpu, dout_gpu, inp_gpu, weight_gpu, mean_gpu, rstd_gpu);
        expect_close(dinp_gpu, dinp, "layernorm dinp", rtol);
        expect_close(dweight_gpu, dweight, "layernorm dweight", param_rtol);
        expect_close(dbias_gpu, dbias, "layernorm dbias", param_rtol);
      }
    }
  }
}

// Inference's residual LayerNorm keeps no sum (sum undefined): the same out, mean and rstd bits as
// with the sum stored, with and without dropout, on the vector path (33 rows: parameters
// prefetched; 1,100: not), the scalar one (C = 100) and
// rows longer than a lane's register cache (C = 1,536 on the vector path, 2,001 on the scalar
// one), which recompute a + b where the kept-sum kernel re-reads it.
TEST(LayerNormCuda, ResidualLayerNormWithoutTheSumMatchesTheKeptSum) {
  WW_REQUIRE_CUDA();
  Tensor step = Tensor::empty({1}, DType::I64);
  step.data<int64_t>()[0] = int64_t(3) << 16;
  const Tensor step_gpu = step.to(Device::cuda(0));
  for (const auto& [N, C] :
       std::vector<std::pair<int64_t, int64_t>>{{33, 768}, {1100, 768}, {5, 100}, {6, 1536}, {3, 2001}}) {
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      for (float p : {0.0f, 0.1f}) {
        SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C) + " " + std::string(dtype_name(dtype)) +
                     " p=" + std::to_string(p));
        const Tensor a = gpu_as(random_cpu({N, C}, 31), dtype), b = gpu_as(random_cpu({N, C}, 32), dtype);
        const Tensor weight = to_gpu(random_cpu({C}, 33)), bias = to_gpu(random_cpu({C}, 34));
        const ops::ElementDropout drop{p, 99, 7, step_gpu};
        auto f32 = [&](const Shape& shape) { return Tensor::empty(shape, DType::F32, Device::cuda(0)); };
        Tensor out_want = Tensor::empty({N, C}, dtype, Device::cuda(0)), sum = Tensor::empty({N, C}, dtype, Device::cuda(0));
        Tensor mean_want = f32({N}), rstd_want = f32({N});
        ops::residual_layernorm_forward(out_want, sum, mean_want, rstd_want, a, b, weight, bias, 1e-5f, drop);
        Tensor out = Tensor::empty({N, C}, dtype, Device::cuda(0)), mean = f32({N}), rstd = f32({N});
        ops::residual_layernorm_forward(out, Tensor(), mean, rstd, a, b, weight, bias, 1e-5f, drop);
        expect_same_bits(out, Tensor::from_vector(from_gpu(out_want), {N, C}), "out without the sum");
        expect_same_bits(mean, Tensor::from_vector(from_gpu(mean_want), {N}), "mean without the sum");
        expect_same_bits(rstd, Tensor::from_vector(from_gpu(rstd_want), {N}), "rstd without the sum");
      }
    }
  }
}

}  // namespace
