// Post-training quantization (ops/quantized.h and SequenceClassifier::quantize_for_inference) on
// the CPU: rounding rules, error bounds of the quantized GEMMs against f32, exact int32
// accumulation, calibration, and whole models (a tiny random one, and one trained briefly on SST-2).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <vector>

#include <cblas.h>
#include <omp.h>

#include "kernels/quantized.h"
#include "test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/experiment/evaluate.h"
#include "wattwise/experiment/execution.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/ops/linear.h"
#include "wattwise/ops/quantized.h"
#include "wattwise/text/batching.h"
#include "wattwise/text/dataset.h"
#include "wattwise/text/tokenizer.h"
#include "wattwise/train/trainer.h"

namespace ww {
namespace {

using ops::QuantMethod;
using testing::expect_error;

std::vector<float> gaussian(size_t n, float stddev, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal() * stddev;
  return v;
}

double relative_frobenius(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += double(got[i] - want[i]) * double(got[i] - want[i]);
    den += double(want[i]) * double(want[i]);
  }
  return std::sqrt(num / den);
}

Tensor workspace_for(const ops::QuantizedLinear& q, int64_t N) {
  return Tensor::empty({int64_t(ops::quantized_linear_workspace_bytes(q, N, DType::F32, Device::cpu()))}, DType::U8);
}

std::vector<float> quantized_forward(const ops::QuantizedLinear& q, const Tensor& x, const Tensor& bias) {
  const int64_t N = x.size(0);
  Tensor out = Tensor::empty({N, q.out_features()}, DType::F32);
  ops::quantized_linear_forward(out, x, q, bias, workspace_for(q, N));
  return out.to_float_vector();
}

// Every finite E4M3 value, by brute force from the format's definition (bias 7, 3 mantissa bits).
std::vector<float> e4m3_grid() {
  std::vector<float> grid;
  for (int e = 0; e < 16; ++e)
    for (int m = 0; m < 8; ++m) {
      if (e == 15 && m == 7) continue;  // NaN
      grid.push_back(e == 0 ? std::ldexp(float(m) / 8.0f, -6) : std::ldexp(1.0f + float(m) / 8.0f, e - 7));
    }
  return grid;
}

TEST(Fp8, EncodesKnownValuesAndRoundsToNearestEven) {
  EXPECT_EQ(ops::float_to_fp8_e4m3(0.0f), 0x00);
  EXPECT_EQ(ops::float_to_fp8_e4m3(1.0f), 0x38);
  EXPECT_EQ(ops::float_to_fp8_e4m3(-2.0f), 0xC0);
  EXPECT_EQ(ops::float_to_fp8_e4m3(448.0f), 0x7E);
  EXPECT_EQ(ops::float_to_fp8_e4m3(1e6f), 0x7E);  // saturates
  EXPECT_EQ(ops::float_to_fp8_e4m3(-1e6f), 0xFE);
  EXPECT_EQ(ops::float_to_fp8_e4m3(std::ldexp(1.0f, -9)), 0x01);  // smallest subnormal
  EXPECT_EQ(ops::float_to_fp8_e4m3(std::ldexp(1.0f, -10)), 0x00);  // tie → even (0)
  EXPECT_EQ(ops::float_to_fp8_e4m3(std::ldexp(3.0f, -10)), 0x02);  // tie → even (2 · 2^-9)
  EXPECT_EQ(ops::float_to_fp8_e4m3(1.0625f), 0x38);                // tie between 1 and 1.125 → 1
  EXPECT_EQ(ops::float_to_fp8_e4m3(1.1875f), 0x3A);                // tie between 1.125 and 1.25 → 1.25
  EXPECT_EQ(ops::float_to_fp8_e4m3(std::numeric_limits<float>::quiet_NaN()) & 0x7F, 0x7F);
  EXPECT_TRUE(std::isnan(ops::fp8_e4m3_to_float(0x7F)));
  // Every byte but NaN decodes to a grid value and encodes back to itself.
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7F) == 0x7F) continue;
    const float v = ops::fp8_e4m3_to_float(uint8_t(b));
    EXPECT_EQ(ops::float_to_fp8_e4m3(v), b == 0x80 ? 0x80 : b) << "byte " << b;
  }
  // Random values round to the nearest grid value (ties are measure-zero here).
  const std::vector<float> grid = e4m3_grid();
  Rng rng(3);
  for (int i = 0; i < 20000; ++i) {
    const float x = std::ldexp(rng.uniform(), int(rng.uniform() * 20) - 11) * (i % 2 ? 1 : -1);
    float best = grid[0];
    for (float g : grid)
      if (std::fabs(g - std::fabs(x)) < std::fabs(best - std::fabs(x))) best = g;
    ASSERT_EQ(std::fabs(ops::fp8_e4m3_to_float(ops::float_to_fp8_e4m3(x))), best) << "x = " << x;
  }
}

TEST(Int8, PerChannelRoundTripIsWithinHalfAStep) {
  const int64_t OC = 24, IC = 40;
  std::vector<float> w = gaussian(size_t(OC * IC), 0.05f, 1);
  for (int64_t i = 0; i < IC; ++i) w[size_t(5 * IC + i)] = 0.0f;  // an all-zero channel
  for (int64_t i = 0; i < IC; ++i) w[size_t(7 * IC + i)] *= 100.0f;  // a channel 100× larger
  ops::QuantizedLinear q = ops::quantize_linear(Tensor::from_vector(w, {OC, IC}), QuantMethod::Int8Weight);
  ASSERT_EQ(q.weight.dtype(), DType::I8);
  ASSERT_EQ(q.weight_scale.numel(), OC);
  std::vector<float> back = ops::dequantized_weight(q).to_float_vector();
  const float* scales = q.weight_scale.data<float>();
  for (int64_t o = 0; o < OC; ++o) {
    float amax = 0;
    for (int64_t i = 0; i < IC; ++i) amax = std::max(amax, std::fabs(w[size_t(o * IC + i)]));
    EXPECT_FLOAT_EQ(scales[o], o == 5 ? 1.0f : amax / 127.0f) << "channel " << o;
    for (int64_t i = 0; i < IC; ++i) {
      const size_t k = size_t(o * IC + i);
      EXPECT_LE(std::fabs(back[k] - w[k]), scales[o] / 2 * (1 + 1e-6f)) << "channel " << o << " input " << i;
      EXPECT_GE(q.weight.data<int8_t>()[k], -127);
    }
  }
}

TEST(Calibration, ObserverKeepsTheLargestMagnitudeAndScalesFollow) {
  ops::AbsMaxObserver observer(Device::cpu());
  observer.observe(Tensor::from_vector(std::vector<float>{0.5f, -1.5f, 1.0f}, {3}));
  observer.observe(Tensor::from_vector(std::vector<float>{-6.35f, 2.0f}, {2}));
  observer.observe(Tensor::from_vector(std::vector<float>{3.0f}, {1}));
  EXPECT_FLOAT_EQ(observer.absmax(), 6.35f);
  EXPECT_EQ(observer.tensors_observed(), 3);
  const Tensor w = Tensor::from_vector(gaussian(64, 1.0f, 2), {8, 8});
  EXPECT_FLOAT_EQ(ops::quantize_linear(w, QuantMethod::Int8, observer.absmax()).input_scale_value, 6.35f / 127);
  EXPECT_FLOAT_EQ(ops::quantize_linear(w, QuantMethod::Fp8, observer.absmax()).input_scale_value, 6.35f / 448);
  EXPECT_FLOAT_EQ(ops::quantize_linear(w, QuantMethod::Int8, 0.0f).input_scale_value, 1.0f);  // all-zero input
  observer.observe(Tensor::from_vector(std::vector<float>{std::nanf("")}, {1}));
  EXPECT_TRUE(std::isnan(observer.absmax()));
  expect_error([&] { ops::quantize_linear(w, QuantMethod::Int8, observer.absmax()); }, {"non-finite"});
}

TEST(Int8, GemmAccumulatesExactlyInInt32) {
  // Sums up to 127·127·4096 ≈ 6.6e7 > 2^24: fp32 accumulation would round them, int32 does not.
  const int64_t N = 3, IC = 4096, OC = 5;
  std::vector<int8_t> a(static_cast<size_t>(N * IC)), b(static_cast<size_t>(OC * IC));
  Rng rng(9);
  for (auto& v : a) v = int8_t(int(rng.uniform() * 255) - 127);
  for (auto& v : b) v = int8_t(int(rng.uniform() * 255) - 127);
  for (int64_t i = 0; i < IC; ++i) a[size_t(i)] = 127, b[size_t(i)] = 127;  // one all-maximal dot product
  std::vector<int32_t> acc(static_cast<size_t>(N * OC));
  kernels::cpu::int8_gemm_int32(acc.data(), a.data(), b.data(), N, IC, OC);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      int64_t want = 0;
      for (int64_t i = 0; i < IC; ++i) want += int64_t(a[size_t(n * IC + i)]) * b[size_t(o * IC + i)];
      EXPECT_EQ(acc[size_t(n * OC + o)], want) << n << "," << o;
    }
  EXPECT_EQ(acc[0], 127 * 127 * 4096);
}

TEST(Int8, W8A8OnIntegerDataIsExact) {
  // Integer weights whose rows reach ±127 and integer inputs reaching ±127 have scale 1 exactly:
  // the layer's output is the exact integer product plus the bias.
  const int64_t N = 4, IC = 96, OC = 6;
  Rng rng(4);
  std::vector<float> w(static_cast<size_t>(OC * IC)), x(static_cast<size_t>(N * IC)), bias(static_cast<size_t>(OC));
  for (auto& v : w) v = float(int(rng.uniform() * 255) - 127);
  for (auto& v : x) v = float(int(rng.uniform() * 255) - 127);
  for (int64_t o = 0; o < OC; ++o) w[size_t(o * IC)] = 127, bias[size_t(o)] = float(o) - 2.5f;
  x[0] = -127;
  ops::QuantizedLinear q = ops::quantize_linear(Tensor::from_vector(w, {OC, IC}), QuantMethod::Int8, 127.0f);
  std::vector<float> out = quantized_forward(q, Tensor::from_vector(x, {N, IC}), Tensor::from_vector(bias, {OC}));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      int64_t sum = 0;
      for (int64_t i = 0; i < IC; ++i) sum += int64_t(x[size_t(n * IC + i)]) * int64_t(w[size_t(o * IC + i)]);
      EXPECT_EQ(out[size_t(n * OC + o)], float(sum) + bias[size_t(o)]) << n << "," << o;
    }
}

// The three methods against the f32 GEMM on Gaussian data (inputs N(0,1), weights N(0,0.05)),
// inputs calibrated by max-abs on the same data. Bounds are about 2× the measured errors
// (docs/QUANTIZATION.md lists them).
TEST(QuantizedGemm, ErrorAgainstF32IsWithinTheStatedBounds) {
  const int64_t N = 96, IC = 256, OC = 192;
  const std::vector<float> xv = gaussian(size_t(N * IC), 1.0f, 11), wv = gaussian(size_t(OC * IC), 0.05f, 12),
                           bv = gaussian(size_t(OC), 0.1f, 13);
  const Tensor x = Tensor::from_vector(xv, {N, IC}), w = Tensor::from_vector(wv, {OC, IC}),
               bias = Tensor::from_vector(bv, {OC});
  Tensor ref = Tensor::empty({N, OC}, DType::F32);
  ops::linear_forward(ref, x, w, bias);
  const std::vector<float> want = ref.to_float_vector();
  float amax = 0;
  for (float v : xv) amax = std::max(amax, std::fabs(v));
  struct Case {
    QuantMethod method;
    double bound;
  };
  for (const Case& c : {Case{QuantMethod::Int8Weight, 1e-2}, Case{QuantMethod::Int8, 3e-2}, Case{QuantMethod::Fp8, 6e-2}}) {
    ops::QuantizedLinear q = ops::quantize_linear(w, c.method, amax);
    const double error = relative_frobenius(quantized_forward(q, x, bias), want);
    std::printf("%-12s relative Frobenius error vs f32: %.3e (bound %.0e)\n", ops::quant_method_name(c.method), error,
                c.bound);
    EXPECT_LT(error, c.bound) << ops::quant_method_name(c.method);
    EXPECT_GT(error, 1e-5) << ops::quant_method_name(c.method) << ": suspiciously exact (not quantized?)";
  }
}

TEST(QuantizedGemm, Fp8EqualsTheF32GemmOfRoundedOperands) {
  const int64_t N = 10, IC = 48, OC = 32;
  const std::vector<float> xv = gaussian(size_t(N * IC), 2.0f, 21), wv = gaussian(size_t(OC * IC), 0.1f, 22);
  const Tensor x = Tensor::from_vector(xv, {N, IC}), w = Tensor::from_vector(wv, {OC, IC});
  const float input_absmax = 5.0f;  // below the data's max: larger inputs saturate at 448 · scale
  ops::QuantizedLinear q = ops::quantize_linear(w, QuantMethod::Fp8, input_absmax);
  Tensor x_rounded = Tensor::empty({N, IC}, DType::F32);
  ops::fp8_round(x_rounded, x, q.input_scale_value);
  for (float v : x_rounded.to_float_vector()) EXPECT_LE(std::fabs(v), input_absmax * (1 + 1e-6f));
  Tensor ref = Tensor::empty({N, OC}, DType::F32);
  ops::linear_forward(ref, x_rounded, ops::dequantized_weight(q), Tensor());
  const std::vector<float> got = quantized_forward(q, x, Tensor()), want = ref.to_float_vector();
  EXPECT_LT(relative_frobenius(got, want), 1e-6);
}

TEST(QuantizedGemm, BadArgumentsAreClearErrors) {
  const Tensor w = Tensor::from_vector(gaussian(64, 1.0f, 2), {8, 8});
  ops::QuantizedLinear q = ops::quantize_linear(w, QuantMethod::Int8, 1.0f);
  const Tensor x = Tensor::from_vector(gaussian(16, 1.0f, 3), {2, 8});
  Tensor out = Tensor::empty({2, 8}, DType::F32);
  expect_error([&] { ops::quantized_linear_forward(out, x, q, Tensor(), Tensor::empty({4}, DType::U8)); },
               {"quantized_linear_forward", "workspace"});
  expect_error([&] { ops::quantized_linear_forward(Tensor::empty({2, 7}, DType::F32), x, q, Tensor(), workspace_for(q, 2)); },
               {"quantized_linear_forward", "'out'"});
  ops::QuantizedLinear no_scale = q;
  no_scale.input_scale = Tensor();
  expect_error([&] { ops::quantized_linear_forward(out, x, no_scale, Tensor(), workspace_for(q, 2)); },
               {"calibrated input scale"});
  expect_error([&] { ops::check_quantization_supported(QuantMethod::Fp8, Device::cpu()); },
               {"fp8 needs compute capability 8.9+"});
}

// ---- Whole models -------------------------------------------------------------------------------

models::Batch random_batch(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> ids(size_t(B * T)), mask(size_t(B * T), 1);
  for (auto& id : ids) id = 1 + int32_t(rng.uniform() * float(vocab - 1));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = T - b; t < T; ++t) mask[size_t(b * T + t)] = 0, ids[size_t(b * T + t)] = 0;
  models::Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {B, T});
  batch.attention_mask = Tensor::from_vector(mask, {B, T});
  return batch;
}

TEST(QuantizedModel, TinyRandomModelLogitsStayCloseToF32) {
  for (auto arch : {models::Architecture::Bert, models::Architecture::DistilBert}) {
    models::ModelConfig config = models::preset_config(arch, "tiny", 200);
    config.max_position_embeddings = 32;
    config.num_labels = 3;
    config.initializer_range = 0.1f;  // larger than HF's 0.02 so the logits are not all ~0
    models::SequenceClassifier model(config, Device::cpu());
    model.init_weights(5);
    const models::Batch batch = random_batch(6, 16, 200, 8);
    const std::vector<float> f32 = model.forward(batch, false).to_float_vector();
    const std::vector<float> masters = model.parameters().flat_values().to_float_vector();
    double logit_range = 0;
    for (float v : f32) logit_range = std::max(logit_range, double(std::fabs(v)));
    ASSERT_GT(logit_range, 0.05);  // not all ~0: differences mean something

    struct Case {
      QuantMethod method;
      double bound;  // relative Frobenius error of the logits
    };
    for (const Case& c : {Case{QuantMethod::Int8Weight, 0.05}, Case{QuantMethod::Int8, 0.08}, Case{QuantMethod::Fp8, 0.0}}) {
      models::QuantizationOptions options;
      options.method = c.method;
      options.calibration = {random_batch(4, 16, 200, 20), random_batch(4, 12, 200, 21)};
      if (c.method == QuantMethod::Fp8) {
        // The model refuses fp8 on the CPU; the emulated GEMM is checked layer by layer above.
        expect_error([&] { model.quantize_for_inference(options); }, {"fp8 needs compute capability 8.9+"});
        continue;
      }
      model.quantize_for_inference(options);
      const std::vector<float> quantized = model.forward(batch, false).to_float_vector();
      const double d = relative_frobenius(quantized, f32);
      std::printf("%s %-12s logits' relative Frobenius error vs f32 = %.3e (bound %.2f)\n",
                  models::architecture_name(arch), ops::quant_method_name(c.method), d, c.bound);
      EXPECT_LT(d, c.bound) << ops::quant_method_name(c.method);
      EXPECT_GT(d, 0.0) << "quantization changed nothing";
      EXPECT_EQ(model.parameters().flat_values().to_float_vector(), masters) << "the f32 masters changed";
      model.clear_quantization();
      EXPECT_EQ(model.forward(batch, false).to_float_vector(), f32);
    }
  }
}

TEST(QuantizedModel, TrainingAndStaleWeightsAreErrors) {
  models::ModelConfig config = models::preset_config(models::Architecture::Bert, "tiny", 100);
  config.max_position_embeddings = 32;
  models::SequenceClassifier model(config, Device::cpu());
  model.init_weights(1);
  models::QuantizationOptions options;
  options.method = QuantMethod::Int8;
  expect_error([&] { model.quantize_for_inference(options); }, {"int8", "calibration"});
  options.calibration = {random_batch(2, 8, 100, 1)};
  model.quantize_for_inference(options);
  models::Batch batch = random_batch(2, 8, 100, 2);
  batch.labels = Tensor::from_vector(std::vector<int32_t>{0, 1}, {2});
  expect_error([&] { model.forward(batch, true); }, {"quantized for inference", "int8", "training"});
  model.forward(batch, false);
  model.parameters().mark_updated();  // as an optimizer step would
  expect_error([&] { model.forward(batch, false); }, {"weights changed after quantization"});
}

TEST(QuantizedExecution, PrecisionNamesAndDevices) {
  EXPECT_EQ(experiment::quantization_of("int8-weight"), QuantMethod::Int8Weight);
  EXPECT_EQ(experiment::quantization_of("int8"), QuantMethod::Int8);
  EXPECT_EQ(experiment::quantization_of("fp8"), QuantMethod::Fp8);
  EXPECT_FALSE(experiment::quantization_of("fp16").has_value());
  models::ModelConfig config = models::preset_config(models::Architecture::Bert, "tiny", 100);
  models::SequenceClassifier model(config, Device::cpu());
  // Training (apply_execution) refuses them; inference runs int8 on the CPU in f32, not fp8.
  expect_error([&] { experiment::apply_execution(model, {"int8", "auto", "none"}); },
               {"'int8'", "inference precision"});
  expect_error([&] { experiment::apply_inference_execution(model, {"fp8", "auto", "none"}); },
               {"precision fp8 on cpu", "fp8 needs compute capability 8.9+"});
  experiment::apply_inference_execution(model, {"int8", "auto", "none"});
  EXPECT_EQ(model.execution().compute_dtype, DType::F32);
  experiment::apply_inference_execution(model, {"fp32", "auto", "none"});
  expect_error([&] { experiment::apply_inference_execution(model, {"int4", "auto", "none"}); }, {"'int4'"});
}

// A tiny BERT trained for a few hundred steps on SST-2 (CPU, seconds), then evaluated on the dev
// set in fp32 and quantized: the predictions must agree on at least 95% of the sentences.
TEST(QuantizedModel, Sst2PredictionsAgreeWithF32) {
  const std::filesystem::path data = std::filesystem::path(WW_SHARED_DATA) / "glue" / "SST-2";
  const std::filesystem::path vocab = std::filesystem::path(WW_SHARED_DATA) / "tokenizers" / "bert-base-uncased";
  if (!std::filesystem::exists(data / "dev.tsv") || !std::filesystem::exists(vocab / "vocab.txt"))
    GTEST_SKIP() << "needs " << data << " and " << vocab << " (WW_SHARED_DATA)";
  // One thread: on a loaded 2-core machine, idle-spinning OpenMP/OpenBLAS threads made this test
  // over 10× slower (4 minutes instead of 20 s); the results do not depend on the thread count.
  omp_set_num_threads(1);
  openblas_set_num_threads(1);
  auto tokenizer = text::load_tokenizer(vocab);
  text::Dataset sst2 = text::load_dataset(data);
  const int max_length = 48;
  auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  const std::vector<text::Example>& all_train = sst2.split("train");
  const std::vector<text::Example> train_part(all_train.begin(), all_train.begin() + std::min<size_t>(all_train.size(), 6400));
  auto train_set = std::make_shared<const text::EncodedExamples>(
      text::encode_examples(*tokenizer, train_part, max_length));
  auto dev_set = std::make_shared<const text::EncodedExamples>(
      text::encode_examples(*tokenizer, sst2.split(sst2.resolve_split("dev")), max_length));

  models::ModelConfig config = models::preset_config(models::Architecture::Bert, "tiny", tokenizer->vocab_size());
  config.max_position_embeddings = 64;
  models::SequenceClassifier model(config, Device::cpu());
  model.init_weights(42);
  train::TrainerOptions o;
  o.optimizer.kind = train::OptimizerKind::AdamW;
  o.schedule.kind = train::ScheduleKind::Constant;
  o.schedule.learning_rate = 2e-3;
  const int64_t steps = 200;
  o.schedule.total_steps = steps;
  train::Trainer trainer(model, o);
  text::BatchOptions train_batches;
  train_batches.batch_size = 32;
  train_batches.max_length = max_length;
  text::BatchLoader loader(train_set, train_batches, /*epoch=*/0);
  for (int64_t s = 0; s < steps; ++s) {
    auto b = loader.next();
    ASSERT_TRUE(b.has_value());
    trainer.train_micro_batch(experiment::to_model_batch(*b, true, false));
  }

  std::printf("trained at %.1f s\n", seconds());
  auto predictions = [&] {
    text::BatchOptions eval_batches;
    eval_batches.batch_size = 64;
    eval_batches.max_length = max_length;
    eval_batches.shuffle = false;
    text::BatchLoader dev(dev_set, eval_batches, 0);
    std::vector<int> out(dev_set->items.size());
    while (auto b = dev.next()) {
      std::vector<float> logits = model.forward(experiment::to_model_batch(*b, true, false), false).to_float_vector();
      for (int64_t i = 0; i < b->batch; ++i)
        out[b->example_indices[size_t(i)]] = logits[size_t(2 * i + 1)] > logits[size_t(2 * i)] ? 1 : 0;
    }
    return out;
  };
  const std::vector<int> f32 = predictions();
  std::printf("evaluated at %.1f s\n", seconds());
  int correct = 0, positive = 0;
  for (size_t i = 0; i < f32.size(); ++i) correct += f32[i] == dev_set->items[i].label, positive += f32[i];
  const double accuracy = double(correct) / double(f32.size());
  std::printf("fp32: dev accuracy %.3f after %lld steps\n", accuracy, (long long)steps);
  ASSERT_GT(accuracy, 0.6) << "the model did not learn: agreement would say little";
  ASSERT_GT(positive, int(f32.size() / 10));
  ASSERT_LT(positive, int(f32.size() * 9 / 10));

  for (QuantMethod method : {QuantMethod::Int8Weight, QuantMethod::Int8}) {
    models::QuantizationOptions options;
    options.method = method;
    // Calibration: the first 128 training sentences (held out from the dev set being compared).
    text::BatchOptions calibration_batches;
    calibration_batches.batch_size = 32;
    calibration_batches.max_length = max_length;
    calibration_batches.shuffle = false;
    text::BatchLoader calibration(train_set, calibration_batches, 0);
    for (int i = 0; i < 4; ++i) options.calibration.push_back(experiment::to_model_batch(*calibration.next(), true, false));
    model.quantize_for_inference(options);
    const std::vector<int> quantized = predictions();
    int agree = 0, quantized_correct = 0;
    for (size_t i = 0; i < f32.size(); ++i)
      agree += quantized[i] == f32[i], quantized_correct += quantized[i] == dev_set->items[i].label;
    const double agreement = double(agree) / double(f32.size());
    std::printf("%-12s agreement with fp32 %.4f, dev accuracy %.3f\n", ops::quant_method_name(method), agreement,
                double(quantized_correct) / double(f32.size()));
    EXPECT_GE(agreement, 0.95) << ops::quant_method_name(method);
    model.clear_quantization();
  }
}

}  // namespace
}  // namespace ww
