// Overhead guards (experiment/overhead_guard.h): the rule that switches an optimisation off, and on
// a GPU the whole start-up measurement of fused attention and CUDA graphs in a real training run,
// which must leave the run training exactly as the same run with the chosen settings fixed.
// (The CPU's guard, gradient buckets over Gloo ranks, is tests/cli/train_overhead_guard.sh.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cuda_test_util.h"
#include "experiment/overhead_guard.h"
#include "test_util.h"
#include "wattwise/core/error.h"
#include "wattwise/experiment/train_run.h"
#include "wattwise/io/file.h"

using namespace ww;
using experiment::judge_overhead;
namespace fs = std::filesystem;

TEST(OverheadGuard, KeepsAnOptimisationThatIsNotSlowerBeyondTheTolerance) {
  EXPECT_TRUE(judge_overhead({1.0, 1.0, 1.0}, {1.0, 1.0, 1.0}, 0.03).keep);  // equal: kept
  EXPECT_TRUE(judge_overhead({0.5, 0.6, 0.55}, {1.0, 1.1, 0.9}, 0.03).keep);
  EXPECT_TRUE(judge_overhead({1.02, 1.03, 1.01}, {1.0, 1.0, 1.0}, 0.03).keep);  // within 3%
  const experiment::GuardVerdict slower = judge_overhead({1.2, 1.25, 1.3}, {1.0, 1.05, 1.1}, 0.03);
  EXPECT_FALSE(slower.keep);
  EXPECT_DOUBLE_EQ(slower.with_s, 1.25);  // medians
  EXPECT_DOUBLE_EQ(slower.without_s, 1.05);
}

TEST(OverheadGuard, SwitchesOffOnlyWhatIsSlowerInEveryRoundSoOneDisturbedRoundDoesNotDecide) {
  // One round with the optimisation hit by something else (a page fault, another process).
  EXPECT_TRUE(judge_overhead({1.0, 9.0, 1.0}, {1.0, 1.0, 1.0}, 0.03).keep);
  // Slower by the medians, but one round (a pair of neighbouring measurements) says otherwise:
  // the evidence is not consistent, and the optimisation stays on.
  EXPECT_TRUE(judge_overhead({1.5, 1.5, 1.5}, {1.0, 1.6, 1.0}, 0.03).keep);
  EXPECT_TRUE(judge_overhead({1.2, 0.9, 1.3, 1.2, 1.25}, {1.0, 1.0, 1.0, 1.0, 1.0}, 0.03).keep);
  EXPECT_FALSE(judge_overhead({1.2, 1.1, 1.3, 1.2, 1.25}, {1.0, 1.0, 1.05, 1.0, 1.0}, 0.03).keep);
  // Slower in every round but within the tolerance: kept.
  EXPECT_TRUE(judge_overhead({1.01, 1.02, 1.01}, {1.0, 1.0, 1.0}, 0.03).keep);
  EXPECT_DOUBLE_EQ(judge_overhead({1.0, 2.0}, {1.0, 1.0}, 0.0).with_s, 1.5);  // even count: the middle two
  ww::testing::expect_error([] { judge_overhead({}, {1.0}, 0.03); }, {"no timings"});
}

namespace {

// A GPT-2 run on the GPU over generated text: tiny model, bf16, 12 steps of one micro-batch (so a
// step can be recorded), dropout on.
experiment::TrainConfig gpu_run(const fs::path& dir, const std::string& name) {
  experiment::TrainConfig cfg;
  const std::string where = "test";
  cfg.set("model.arch", "gpt2", where);
  cfg.set("model.preset", "tiny", where);
  cfg.set("model.tokenizer", std::string(WW_SOURCE_DIR) + "/tests/fixtures/bpe/tiny", where);
  cfg.set("data.path", (dir / "text.txt").string(), where);
  cfg.set("data.block_size", "32", where);
  cfg.set("data.cache_dir", (dir / "cache").string(), where);
  cfg.set("train.batch_size", "8", where);
  cfg.set("train.max_steps", "12", where);
  cfg.set("train.log_every", "1", where);
  cfg.set("train.precision", "bf16", where);
  cfg.set("run.device", "cuda", where);
  cfg.set("run.progress", "none", where);
  cfg.set("run.output_dir", (dir / "runs").string(), where);
  cfg.set("run.name", name, where);
  return cfg;
}

std::string losses_of(const fs::path& run_dir) {
  std::ifstream in(run_dir / "train_log.csv");
  std::string line, out;
  while (std::getline(in, line)) {
    // step, epoch, loss, lr, grad_norm: the columns that are the training itself (not its speed)
    size_t cut = 0;
    for (int comma = 0; comma < 5 && cut != std::string::npos; ++comma) cut = line.find(',', cut + 1);
    out += line.substr(0, cut) + "\n";
  }
  return out;
}

}  // namespace

TEST(OverheadGuard, OnAGpuMeasuresFusedAttentionAndGraphsAndLeavesTheRunAsIfFixed) {
  WW_REQUIRE_CUDA();
  const fs::path dir = fs::temp_directory_path() / ("ww_overhead_guard_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string text;
  for (int i = 0; i < 400; ++i) text += "the quick brown fox " + std::to_string(i * 7 % 13) + " jumps over the lazy dog.\n";
  io::write_file_atomic(dir / "text.txt", text);

  experiment::TrainConfig guarded = gpu_run(dir, "guarded");
  guarded.set("model.attention", "fastest", "test");
  guarded.set("run.cuda_graphs", "auto", "test");
  const experiment::TrainRunResult a = experiment::run_training(guarded);
  const nlohmann::json& guards = a.metrics.at("execution").at("overhead_guards");
  ASSERT_EQ(guards.at("guards").size(), 2u) << guards.dump(1);
  std::string attention, graphs;
  for (const nlohmann::json& g : guards.at("guards")) {
    EXPECT_TRUE(g.at("measured").get<bool>()) << g.dump(1);
    EXPECT_GT(g.at("with_s_per_micro_batch").get<double>(), 0);
    EXPECT_GT(g.at("without_s_per_micro_batch").get<double>(), 0);
    if (g.at("optimisation") == "fused_attention") attention = g.at("value").get<std::string>();
    if (g.at("optimisation") == "cuda_graphs") graphs = g.at("value").get<bool>() ? "true" : "false";
  }
  ASSERT_FALSE(attention.empty());
  ASSERT_FALSE(graphs.empty());
  EXPECT_EQ(a.metrics["execution"]["attention"], attention);  // what the run trained with
  EXPECT_EQ(a.metrics["execution"]["cuda_graphs"].get<bool>(), graphs == "true");
  EXPECT_GT(guards.at("steps").get<int64_t>(), 0);

  experiment::TrainConfig fixed = gpu_run(dir, "fixed");
  fixed.set("model.attention", attention, "test");
  fixed.set("run.cuda_graphs", graphs, "test");
  const experiment::TrainRunResult b = experiment::run_training(fixed);
  EXPECT_TRUE(b.metrics.at("execution").value("overhead_guards", nlohmann::json()).is_null());
  EXPECT_EQ(losses_of(a.run_dir), losses_of(b.run_dir)) << "the measurement left a trace in the training";
  fs::remove_all(dir);
}
