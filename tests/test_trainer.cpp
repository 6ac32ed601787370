// Gradient accumulation: one optimizer step over a batch of 8 equals one step over the same 8
// examples fed as two micro-batches of 4 with grad_accum 2 (dropout off, fp32), because each
// micro-batch's gradient is of its mean loss and the trainer scales the sum by 1/grad_accum. The
// parameters after the step must agree within 1e-6 relative (per parameter tensor); a step on only
// the first half must not, so the comparison can tell the two apart.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "wattwise/models/sequence_classifier.h"
#include "wattwise/train/trainer.h"

using namespace ww;

namespace {

constexpr int64_t kVocab = 50, kSeq = 12, kBatch = 8;

struct Examples {
  std::vector<int32_t> ids, mask, types, labels;
};

// Eight examples of different lengths (padded with 0 to kSeq), two classes, both segments used.
Examples make_examples() {
  Examples e;
  uint32_t state = 12345;
  auto next = [&] { return state = state * 1664525u + 1013904223u; };
  for (int64_t b = 0; b < kBatch; ++b) {
    int64_t length = 4 + b % 7;
    for (int64_t t = 0; t < kSeq; ++t) {
      bool real = t < length;
      e.ids.push_back(real ? int32_t(5 + next() % (kVocab - 5)) : 0);
      e.mask.push_back(real ? 1 : 0);
      e.types.push_back(real && t >= length / 2 ? 1 : 0);
    }
    e.labels.push_back(int32_t(next() >> 16) % 2);
  }
  return e;
}

// Rows [begin, end) of the examples as a model batch.
models::Batch rows(const Examples& e, int64_t begin, int64_t end) {
  auto cut = [&](const std::vector<int32_t>& v, int64_t width) {
    return std::vector<int32_t>(v.begin() + begin * width, v.begin() + end * width);
  };
  const int64_t n = end - begin;
  models::Batch batch;
  batch.input_ids = Tensor::from_vector(cut(e.ids, kSeq), {n, kSeq});
  batch.attention_mask = Tensor::from_vector(cut(e.mask, kSeq), {n, kSeq});
  batch.token_type_ids = Tensor::from_vector(cut(e.types, kSeq), {n, kSeq});
  batch.labels = Tensor::from_vector(cut(e.labels, 1), {n});
  return batch;
}

// A fresh tiny BERT (same seed every time, dropout off) after one optimizer step over `micro_batches`.
models::SequenceClassifier step_with(const std::vector<models::Batch>& micro_batches, int64_t grad_accum,
                                     train::OptimizerKind kind) {
  models::ModelConfig config = models::preset_config(models::Architecture::Bert, "tiny", kVocab);
  config.max_position_embeddings = 32;
  models::SequenceClassifier model(config, Device::cpu());
  model.init_weights(7);
  model.set_dropout(0, 0, 0);
  train::TrainerOptions o;
  o.optimizer.kind = kind;
  o.optimizer.weight_decay = 0.01;
  o.optimizer.max_grad_norm = 0.5;  // clipping sees the accumulated gradient's norm
  if (kind == train::OptimizerKind::SGD) o.optimizer.momentum = 0.9;
  o.schedule.kind = train::ScheduleKind::Constant;
  o.schedule.learning_rate = kind == train::OptimizerKind::SGD ? 0.5 : 1e-3;
  o.schedule.total_steps = 1;
  o.grad_accum = grad_accum;
  o.label_smoothing = 0.1f;
  train::Trainer trainer(model, o);
  for (size_t i = 0; i < micro_batches.size(); ++i) {
    std::optional<train::StepResult> r = trainer.train_micro_batch(micro_batches[i]);
    EXPECT_EQ(r.has_value(), i + 1 == micro_batches.size()) << "micro-batch " << i;
  }
  EXPECT_EQ(trainer.steps(), 1);
  return model;
}

double relative_difference(const Tensor& a, const Tensor& b) {
  std::vector<float> x = a.to_float_vector(), y = b.to_float_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) num += double(x[i] - y[i]) * (x[i] - y[i]), den += double(y[i]) * y[i];
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

// Largest per-tensor relative difference. Adam turns a gradient that is 0 in exact arithmetic (the
// attention key bias: softmax ignores a shift shared by all keys) into a full-size step of the sign
// of its rounding noise, so for Adam those tensors carry no signal and are skipped.
double worst_difference(const models::SequenceClassifier& a, const models::SequenceClassifier& b,
                        bool skip_key_bias, std::string* worst_name) {
  double worst = 0;
  for (size_t i = 0; i < a.parameters().all().size(); ++i) {
    const models::Parameter& p = a.parameters().all()[i];
    if (skip_key_bias && p.name.find("attention.self.key.bias") != std::string::npos) continue;
    double d = relative_difference(p.value, b.parameters().all()[i].value);
    if (d > worst) worst = d, *worst_name = p.name;
  }
  return worst;
}

class GradientAccumulation : public ::testing::TestWithParam<train::OptimizerKind> {};

}  // namespace

TEST_P(GradientAccumulation, TwoHalvesEqualOneBatch) {
  const train::OptimizerKind kind = GetParam();
  const bool adam = kind != train::OptimizerKind::SGD;
  Examples e = make_examples();
  models::SequenceClassifier whole = step_with({rows(e, 0, 8)}, 1, kind);
  models::SequenceClassifier halves = step_with({rows(e, 0, 4), rows(e, 4, 8)}, 2, kind);
  models::SequenceClassifier first_half_only = step_with({rows(e, 0, 4)}, 1, kind);

  std::string name;
  double accumulated = worst_difference(halves, whole, adam, &name);
  std::printf("batch 8 x 1 vs batch 4 x 2: worst relative parameter difference %.3g (%s)\n", accumulated, name.c_str());
  EXPECT_LE(accumulated, 1e-6) << name;

  double control = worst_difference(first_half_only, whole, adam, &name);
  std::printf("batch 8 x 1 vs batch 4 x 1 (first half): %.3g (%s)\n", control, name.c_str());
  EXPECT_GT(control, 1e-4) << "a step on half the batch should differ clearly; the comparison is blind";
}

INSTANTIATE_TEST_SUITE_P(Optimizers, GradientAccumulation,
                         ::testing::Values(train::OptimizerKind::SGD, train::OptimizerKind::AdamW),
                         [](const auto& info) { return info.param == train::OptimizerKind::SGD ? "SGD" : "AdamW"; });
