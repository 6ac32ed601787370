// Batch rows for data-parallel training: slice_rows gives views of a row range, loss_terms counts
// what a mean loss averages, and a model's loss over a batch is the loss_terms-weighted mean of
// its row slices' losses (what summing the ranks' weighted gradients relies on).
#include <gtest/gtest.h>

#include <random>

#include "wattwise/models/gpt2.h"
#include "wattwise/models/sequence_classifier.h"

using namespace ww;
using namespace ww::models;

namespace {

Batch random_classification_batch(int64_t rows, int64_t length, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(rows * length), mask(rows * length), labels(rows);
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t real = 2 + int64_t(rng() % (length - 1));  // padding after `real` tokens
    for (int64_t t = 0; t < length; ++t) {
      ids[b * length + t] = t < real ? int32_t(rng() % vocab) : 0;
      mask[b * length + t] = t < real;
    }
    labels[b] = int32_t(rng() % 2);
  }
  return {Tensor::from_vector(ids, {rows, length}), Tensor::from_vector(mask, {rows, length}), Tensor(),
          Tensor::from_vector(labels, {rows})};
}

TEST(Batch, SliceRowsViewsEveryTensorsRows) {
  const Batch b = random_classification_batch(5, 7, 30, 1);
  const Batch part = slice_rows(b, 2, 4);
  ASSERT_EQ(part.input_ids.shape(), (Shape{2, 7}));
  ASSERT_EQ(part.attention_mask.shape(), (Shape{2, 7}));
  ASSERT_EQ(part.labels.shape(), (Shape{2}));
  EXPECT_FALSE(part.token_type_ids.defined());
  EXPECT_EQ(part.input_ids.data<int32_t>(), b.input_ids.data<int32_t>() + 14);
  EXPECT_EQ(part.labels.data<int32_t>()[1], b.labels.data<int32_t>()[3]);
  EXPECT_EQ(slice_rows(b, 5, 5).input_ids.shape(), (Shape{0, 7}));
  EXPECT_THROW(slice_rows(b, 3, 6), Error);
}

TEST(Batch, LossTermsCountExamplesOrScoredPositions) {
  EXPECT_EQ(loss_terms(random_classification_batch(5, 7, 30, 1)), 5);
  // Language modelling: position 0 is never a target; -100 is not scored.
  std::vector<int32_t> labels = {1, 2, 3, -100, 5, 6, -100, -100};
  Batch lm{Tensor::from_vector(std::vector<int32_t>(8, 1), {2, 4}), Tensor(), Tensor(), Tensor::from_vector(labels, {2, 4})};
  EXPECT_EQ(loss_terms(lm), 2 + 1);
  EXPECT_EQ(loss_terms(Batch{}), 0);
}

TEST(Batch, AClassifiersLossIsTheMeanOfItsRowSlicesLosses) {
  ModelConfig config = preset_config(Architecture::Bert, "tiny", 50);
  config.hidden_dropout = 0, config.attention_dropout = 0, config.classifier_dropout = 0;
  SequenceClassifier model(config, Device::cpu());
  const Batch b = random_classification_batch(6, 9, 50, 7);
  model.forward(b, /*training=*/true);
  const double whole = model.loss();
  double parts = 0;
  for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, 3}, {3, 6}}) {
    const Batch part = slice_rows(b, begin, end);
    model.forward(part, /*training=*/true);
    parts += double(model.loss()) * double(loss_terms(part)) / double(loss_terms(b));
  }
  EXPECT_NEAR(parts, whole, 1e-6 * std::abs(whole));
}

}  // namespace
