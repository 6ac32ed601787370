// train/target.h: the condition of train.target, parsed and checked against evaluation metrics.
#include <gtest/gtest.h>

#include "test_util.h"
#include "wattwise/train/target.h"

namespace ww::train {
namespace {

TEST(TrainingTarget, ParsesEachComparisonAndMeetsItAtTheBoundary) {
  const nlohmann::json metrics = {{"accuracy", 0.88}, {"loss", 0.5}, {"matthews_correlation", 0.3}};
  EXPECT_FALSE(parse_training_target("", "t").has_value());
  EXPECT_FALSE(parse_training_target("  ", "t").has_value());
  const auto at_least = parse_training_target(" accuracy >= 0.88 ", "t");
  ASSERT_TRUE(at_least.has_value());
  EXPECT_EQ(at_least->text(), "accuracy>=0.88");
  EXPECT_TRUE(at_least->met_by(metrics));
  EXPECT_FALSE(parse_training_target("accuracy>0.88", "t")->met_by(metrics));
  EXPECT_TRUE(parse_training_target("loss<=0.5", "t")->met_by(metrics));
  EXPECT_FALSE(parse_training_target("loss<0.5", "t")->met_by(metrics));
  EXPECT_TRUE(parse_training_target("mcc>=0.25", "t")->met_by(metrics));  // mcc is matthews_correlation
  EXPECT_TRUE(parse_training_target("loss<=1e3", "t")->met_by(metrics));
}

TEST(TrainingTarget, BadConditionsNameTheOrigin) {
  ww::testing::expect_error([] { parse_training_target("accuracy=0.9", "train.target"); },
                            {"train.target 'accuracy=0.9': no comparison"});
  ww::testing::expect_error([] { parse_training_target("speed>=3", "train.target"); }, {"unknown metric 'speed'"});
  ww::testing::expect_error([] { parse_training_target("loss<=", "train.target"); }, {"'' is not a finite number"});
  ww::testing::expect_error([] { parse_training_target("loss<=inf", "train.target"); }, {"'inf' is not a finite number"});
  ww::testing::expect_error([] { parse_training_target("accuracy>=0.9x", "train.target"); }, {"'0.9x' is not a finite"});
  // A metric the evaluation lacks: named when it is checked.
  const auto f1 = parse_training_target("f1>=0.5", "t");
  ww::testing::expect_error([&] { f1->met_by({{"loss", 1.0}}); }, {"metric 'f1'"});
}

}  // namespace
}  // namespace ww::train
