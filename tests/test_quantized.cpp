// Post-training quantization of whole models on the CPU (SequenceClassifier::quantize_for_inference,
// the inference execution's precision names): a tiny random model, and one trained briefly on SST-2.
// The quantized layers themselves: tests/ops/quantized_test.cpp.
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

double relative_frobenius(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += double(got[i] - want[i]) * double(got[i] - want[i]);
    den += double(want[i]) * double(want[i]);
  }
  return std::sqrt(num / den);
}

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
