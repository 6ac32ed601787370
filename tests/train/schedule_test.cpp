// train::LrSchedule (constant, linear, cosine with warmup) against transformers' schedule curves
// (tests/fixtures/optimizer/reference.json), hand-computed values, and the errors for bad options.
#include <gtest/gtest.h>

#include "test_util.h"

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/core/error.h"
#include "wattwise/train/schedule.h"

using namespace ww;
using nlohmann::json;

namespace {

const json& fixture() {
  static const json data = ww::testing::read_json_fixture("optimizer/reference.json");
  return data;
}

}  // namespace

TEST(Schedule, MatchesTransformersCurves) {
  for (const json& curve : fixture()["schedules"]) {
    SCOPED_TRACE(curve["kind"].get<std::string>());
    train::ScheduleOptions s;
    s.kind = train::parse_schedule_kind(curve["kind"].get<std::string>());
    s.learning_rate = curve["learning_rate"].get<double>();
    s.total_steps = curve["total_steps"].get<int64_t>();
    s.warmup_steps = curve["warmup_steps"].get<int64_t>();
    train::LrSchedule schedule(s);
    const json& lrs = curve["lrs"];
    for (size_t step = 0; step < lrs.size(); ++step)
      EXPECT_NEAR(schedule.lr(int64_t(step)), lrs[step].get<double>(), 1e-18) << "step " << step;
  }
}

TEST(Schedule, HandComputedValues) {
  train::ScheduleOptions s;
  s.kind = train::ScheduleKind::Linear;
  s.learning_rate = 1.0;
  s.total_steps = 10;
  s.warmup_steps = 2;
  train::LrSchedule linear(s);
  EXPECT_DOUBLE_EQ(linear.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(linear.lr(1), 0.5);
  EXPECT_DOUBLE_EQ(linear.lr(2), 1.0);
  EXPECT_DOUBLE_EQ(linear.lr(6), 0.5);
  EXPECT_DOUBLE_EQ(linear.lr(10), 0.0);
  EXPECT_DOUBLE_EQ(linear.lr(12), 0.0);

  s.kind = train::ScheduleKind::Cosine;
  train::LrSchedule cosine(s);
  EXPECT_DOUBLE_EQ(cosine.lr(2), 1.0);
  EXPECT_NEAR(cosine.lr(6), 0.5, 1e-15);  // halfway down the half cosine
  EXPECT_NEAR(cosine.lr(10), 0.0, 1e-15);

  s.kind = train::ScheduleKind::Constant;
  s.warmup_steps.reset();
  s.total_steps = 0;  // constant needs no length
  train::LrSchedule constant(s);
  EXPECT_DOUBLE_EQ(constant.lr(0), 1.0);
  EXPECT_DOUBLE_EQ(constant.lr(1000000), 1.0);

  // Warmup ratio rounds up, as transformers: ceil(0.06 · 1001) = 61.
  s.kind = train::ScheduleKind::Linear;
  s.total_steps = 1001;
  s.warmup_ratio = 0.06;
  EXPECT_EQ(train::LrSchedule(s).warmup_steps(), 61);
  s.total_steps = 1000;
  EXPECT_EQ(train::LrSchedule(s).warmup_steps(), 60);
}

TEST(Schedule, BadValuesNameTheOption) {
  auto error_of = [](const train::ScheduleOptions& s) {
    try {
      train::LrSchedule schedule(s);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  train::ScheduleOptions s;
  s.total_steps = 100;
  train::ScheduleOptions bad = s;
  bad.warmup_ratio = 1.5;
  EXPECT_NE(error_of(bad).find("warmup_ratio"), std::string::npos) << error_of(bad);
  bad = s;
  bad.warmup_steps = -1;
  EXPECT_NE(error_of(bad).find("warmup_steps"), std::string::npos) << error_of(bad);
  bad = s;
  bad.warmup_steps = 101;
  EXPECT_NE(error_of(bad).find("exceeds total_steps"), std::string::npos) << error_of(bad);
  bad = s;
  bad.warmup_steps = 5;
  bad.warmup_ratio = 0.1;
  EXPECT_NE(error_of(bad).find("both"), std::string::npos) << error_of(bad);
  bad = s;
  bad.learning_rate = -1e-3;
  EXPECT_NE(error_of(bad).find("learning_rate"), std::string::npos) << error_of(bad);
  bad = s;
  bad.learning_rate = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(error_of(bad).find("learning_rate"), std::string::npos) << error_of(bad);
  bad = s;
  bad.kind = train::ScheduleKind::Cosine;
  bad.total_steps = 0;
  EXPECT_NE(error_of(bad).find("total_steps"), std::string::npos) << error_of(bad);
  try {
    train::parse_schedule_kind("exponential");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lr_schedule"), std::string::npos) << e.what();
  }
  EXPECT_EQ(train::parse_schedule_kind("Cosine"), train::ScheduleKind::Cosine);
  EXPECT_THROW(train::LrSchedule(s).lr(-1), Error);
}
