// train.checkpointing auto's plan: the first choice whose activations and the model state fit, the
// error when none does, and the model-state estimate.
#include <gtest/gtest.h>

#include <string>

#include "wattwise/core/error.h"
#include "wattwise/experiment/memory_plan.h"

namespace ww::experiment {
namespace {

const std::vector<std::pair<std::string, size_t>> kCandidates = {{"none", 1000}, {"sqrt", 600}, {"every", 400}};

TEST(MemoryPlan, TakesTheFirstChoiceThatFits) {
  EXPECT_EQ(plan_checkpointing(1100, "test", 100, kCandidates).chosen, "none");  // 100 + 1000 = 1100 fits exactly
  EXPECT_EQ(plan_checkpointing(1099, "test", 100, kCandidates).chosen, "sqrt");
  EXPECT_EQ(plan_checkpointing(500, "test", 100, kCandidates).chosen, "every");
  const CheckpointingPlan plan = plan_checkpointing(800, "train.memory_budget_mb", 100, kCandidates);
  EXPECT_NE(plan.reason.find("sqrt"), std::string::npos) << plan.reason;
  EXPECT_NE(plan.reason.find("none would need"), std::string::npos) << plan.reason;
  const nlohmann::json j = plan.to_json();
  EXPECT_EQ(j["chosen"], "sqrt");
  EXPECT_EQ(j["predicted_activation_bytes"]["every"], 400);
  EXPECT_EQ(j["budget_source"], "train.memory_budget_mb");
}

TEST(MemoryPlan, NothingFittingIsAnErrorWithTheSizes) {
  try {
    plan_checkpointing(450, "train.memory_budget_mb", 100, kCandidates);
    FAIL() << "a plan that does not fit was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("train.checkpointing auto"), std::string::npos) << what;
    EXPECT_NE(what.find("every"), std::string::npos) << what;
    EXPECT_NE(what.find("train.batch_size"), std::string::npos) << what;
  }
}

TEST(MemoryPlan, ModelStateCountsWeightsGradientsCopiesAndTheOptimizersPart) {
  EXPECT_EQ(estimated_model_state_bytes(1000, false, "adamw", 0, 1), 1000u * 4 * 4);      // weights, grads, 2 moments
  EXPECT_EQ(estimated_model_state_bytes(1000, true, "adamw", 0, 1), 1000u * 4 * 4 + 2000);  // + bf16 copy
  EXPECT_EQ(estimated_model_state_bytes(1000, false, "sgd", 0, 1), 1000u * 4 * 3);
  EXPECT_EQ(estimated_model_state_bytes(1000, false, "adamw", 1, 4), 1000u * 4 * 2 + 2000);  // a quarter of the moments
  EXPECT_EQ(estimated_model_state_bytes(1000, false, "adamw", 0, 4), 1000u * 4 * 4);         // ZeRO 0: all of them
}

}  // namespace
}  // namespace ww::experiment
