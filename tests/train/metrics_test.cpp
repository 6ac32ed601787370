// Metrics against scikit-learn / scipy (tests/fixtures/metrics/reference.json, from
// scripts/make_metrics_fixtures.py) and hand-computed cases.
#include <gtest/gtest.h>

#include "test_util.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "wattwise/core/error.h"
#include "wattwise/train/metrics.h"

using namespace ww;
using nlohmann::json;

namespace {

const json& fixture() {
  static const json data = ww::testing::read_json_fixture("metrics/reference.json");
  return data;
}

void expect_metric(const json& got, const json& want, const std::string& key) {
  ASSERT_TRUE(got.contains(key)) << key;
  if (want[key].is_null()) {
    EXPECT_TRUE(got[key].is_null()) << key << " = " << got[key];
    return;
  }
  EXPECT_NEAR(got[key].get<double>(), want[key].get<double>(), 1e-12) << key;
}

}  // namespace

TEST(Metrics, ClassificationMatchesSklearn) {
  ASSERT_GE(fixture()["classification"].size(), 9u);
  for (const json& c : fixture()["classification"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    auto labels = c["labels"].get<std::vector<int32_t>>();
    auto predictions = c["predictions"].get<std::vector<int32_t>>();
    train::ClassificationMetrics m =
        train::classification_metrics(labels, predictions, c["num_classes"].get<int64_t>());
    json got = train::to_json(m);
    const json& want = c["expected"];
    EXPECT_EQ(got["num_examples"], want["num_examples"]);
    for (const char* key : {"accuracy", "precision", "recall", "f1", "precision_macro",
                            "recall_macro", "f1_macro", "matthews_correlation"})
      expect_metric(got, want, key);
    EXPECT_EQ(got["confusion_matrix"], want["confusion_matrix"]);
  }
}

TEST(Metrics, RegressionMatchesScipy) {
  ASSERT_GE(fixture()["regression"].size(), 4u);
  for (const json& c : fixture()["regression"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    std::vector<float> targets, predictions;
    for (const json& v : c["targets"]) targets.push_back(float(v.get<double>()));
    for (const json& v : c["predictions"]) predictions.push_back(float(v.get<double>()));
    json got = train::to_json(train::regression_metrics(targets, predictions));
    EXPECT_EQ(got["num_examples"], c["expected"]["num_examples"]);
    for (const char* key : {"pearson", "spearman", "mse"}) expect_metric(got, c["expected"], key);
  }
}

// Binary by hand: labels 1 1 1 0 0 0 0, predictions 1 1 0 1 0 0 0 → tp 2, fp 1, fn 1, tn 3.
TEST(Metrics, BinaryByHand) {
  std::vector<int32_t> labels = {1, 1, 1, 0, 0, 0, 0};
  std::vector<int32_t> predictions = {1, 1, 0, 1, 0, 0, 0};
  train::ClassificationMetrics m = train::classification_metrics(labels, predictions, 2);
  EXPECT_EQ(m.num_examples, 7);
  EXPECT_DOUBLE_EQ(m.accuracy, 5.0 / 7.0);
  EXPECT_DOUBLE_EQ(m.precision, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.recall, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.f1, 2.0 / 3.0);
  // Class 0: precision 3/4, recall 3/4.
  EXPECT_DOUBLE_EQ(m.precision_macro, (2.0 / 3.0 + 3.0 / 4.0) / 2.0);
  EXPECT_DOUBLE_EQ(m.f1_macro, (2.0 / 3.0 + 3.0 / 4.0) / 2.0);
  // MCC = (tp·tn − fp·fn) / √((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (6 − 1) / √(3·3·4·4) = 5/12.
  EXPECT_NEAR(m.matthews_correlation, 5.0 / 12.0, 1e-15);
  EXPECT_EQ(m.confusion_matrix, (std::vector<std::vector<int64_t>>{{3, 1}, {1, 2}}));
}

TEST(Metrics, ZeroDivisionGivesZero) {
  // Nothing predicted positive and no positive label: precision, recall, F1 0/0 → 0; MCC 0.
  std::vector<int32_t> zeros(5, 0);
  train::ClassificationMetrics m = train::classification_metrics(zeros, zeros, 2);
  EXPECT_EQ(m.accuracy, 1.0);
  EXPECT_EQ(m.precision, 0.0);
  EXPECT_EQ(m.recall, 0.0);
  EXPECT_EQ(m.f1, 0.0);
  EXPECT_EQ(m.matthews_correlation, 0.0);
  EXPECT_EQ(m.f1_macro, 1.0);  // the one present class is perfect
}

TEST(Metrics, ConfusionMatrixAccumulatesOverBatches) {
  train::ConfusionMatrix c(3);
  c.add(std::vector<int32_t>{0, 1}, std::vector<int32_t>{0, 2});
  c.add(std::vector<int32_t>{2, 2, 1}, std::vector<int32_t>{2, 2, 1});
  EXPECT_EQ(c.total(), 5);
  EXPECT_EQ(c.at(1, 2), 1);
  EXPECT_EQ(c.at(2, 2), 2);
  train::ClassificationMetrics batched = train::classification_metrics(c);
  train::ClassificationMetrics whole = train::classification_metrics(
      std::vector<int32_t>{0, 1, 2, 2, 1}, std::vector<int32_t>{0, 2, 2, 2, 1}, 3);
  EXPECT_EQ(train::to_json(batched), train::to_json(whole));
  EXPECT_DOUBLE_EQ(whole.accuracy, 0.8);
}

TEST(Metrics, BadInputIsAnError) {
  std::vector<int32_t> two = {0, 1};
  EXPECT_THROW(train::classification_metrics(two, std::vector<int32_t>{0}, 2), Error);
  EXPECT_THROW(train::classification_metrics(two, std::vector<int32_t>{0, 2}, 2), Error);
  EXPECT_THROW(train::classification_metrics(std::vector<int32_t>{0, -1}, two, 2), Error);
  EXPECT_THROW(train::classification_metrics({}, {}, 2), Error);  // no examples
  EXPECT_THROW(train::ConfusionMatrix(1), Error);
  try {
    train::ConfusionMatrix c(2);
    c.add(std::vector<int32_t>{0, 1, 5}, std::vector<int32_t>{0, 1, 1});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label[2] = 5"), std::string::npos) << e.what();
  }
  float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(train::regression_metrics(std::vector<float>{1, 2}, std::vector<float>{1, nan}), Error);
  EXPECT_THROW(train::regression_metrics(std::vector<float>{}, std::vector<float>{}), Error);
}

TEST(Metrics, SpearmanUsesAverageRanks) {
  // Ranks of x: 1, 2.5, 2.5, 4; of y: 1, 2, 3, 4. Pearson of those ranks by hand.
  std::vector<float> x = {1.0f, 2.0f, 2.0f, 3.0f}, y = {10.0f, 20.0f, 30.0f, 40.0f};
  train::RegressionMetrics m = train::regression_metrics(x, y);
  // centred ranks: x (−1.5, 0, 0, 1.5), y (−1.5, −0.5, 0.5, 1.5): sxy 4.5, sxx 4.5, syy 5.
  EXPECT_NEAR(m.spearman, 4.5 / std::sqrt(4.5 * 5.0), 1e-15);
  EXPECT_NEAR(m.mse, (81.0 + 324.0 + 784.0 + 1369.0) / 4.0, 1e-9);
}

TEST(Metrics, ArgmaxAndLossMeter) {
  std::vector<float> logits = {0.1f, 0.9f, 0.0f,  //
                               2.0f, 2.0f, 1.0f,  // tie: first maximum
                               -1.0f, -3.0f, -0.5f};
  EXPECT_EQ(train::argmax_rows(logits.data(), 3, 3), (std::vector<int32_t>{1, 0, 2}));

  train::LossMeter meter;
  EXPECT_THROW(meter.mean(), Error);
  meter.add(1.0, 3);  // batches of different sizes weigh by their examples
  meter.add(3.0, 1);
  EXPECT_DOUBLE_EQ(meter.mean(), 1.5);
  EXPECT_EQ(meter.count(), 4);
}

TEST(Metrics, JsonKeysAndDirections) {
  train::ClassificationMetrics m =
      train::classification_metrics(std::vector<int32_t>{0, 1}, std::vector<int32_t>{0, 1}, 2);
  json j = train::to_json(m);
  for (const char* key : {"num_examples", "accuracy", "precision", "recall", "f1", "precision_macro",
                          "recall_macro", "f1_macro", "matthews_correlation", "confusion_matrix"}) {
    EXPECT_TRUE(j.contains(key)) << key;
    if (std::string(key) != "num_examples" && std::string(key) != "confusion_matrix") {
      EXPECT_TRUE(train::higher_is_better(key)) << key;
    }
  }
  EXPECT_EQ(j.size(), 10u);
  EXPECT_FALSE(train::higher_is_better("loss"));
  EXPECT_FALSE(train::higher_is_better("mse"));
  EXPECT_TRUE(train::higher_is_better("spearman"));
  EXPECT_THROW(train::higher_is_better("acc"), Error);
}
