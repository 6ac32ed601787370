// The Pareto frontier (hand-made cases with ties, duplicates and 2/3/5 objectives; randomized
// against a brute-force O(n^2) check), objective parsing, and pareto.csv round trips.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <unistd.h>

#include "test_util.h"
#include "wattwise/experiment/pareto.h"
#include "wattwise/io/file.h"

namespace ww::experiment {
namespace {

std::vector<Objective> goals(const std::string& text) { return parse_objectives(text); }

std::vector<std::string> names_for(size_t n) {
  std::vector<std::string> names;
  for (size_t i = 0; i < n; ++i) names.push_back(std::string("p").append(std::to_string(i)));
  return names;
}

std::vector<bool> frontier(const std::vector<std::vector<double>>& v, const std::string& objectives) {
  return pareto_frontier(v, goals(objectives), names_for(v.size()));
}

// The definition, literally: i is on the frontier when no j is >= on all and > on one.
std::vector<bool> brute_force(const std::vector<std::vector<double>>& v, const std::vector<Objective>& obj) {
  std::vector<bool> on(v.size(), true);
  for (size_t i = 0; i < v.size(); ++i)
    for (size_t j = 0; j < v.size(); ++j) {
      if (i == j) continue;
      bool all_at_least = true, one_better = false;
      for (size_t k = 0; k < obj.size(); ++k) {
        const double a = v[j][k], b = v[i][k];
        const bool better = obj[k].goal == Goal::Maximize ? a > b : a < b;
        const bool worse = obj[k].goal == Goal::Maximize ? a < b : a > b;
        if (worse) all_at_least = false;
        if (better) one_better = true;
      }
      if (all_at_least && one_better) on[i] = false;
    }
  return on;
}

TEST(Pareto, TwoObjectivesAccuracyAgainstEnergy) {
  // accuracy (max), joules (min)
  std::vector<std::vector<double>> v = {{0.90, 10}, {0.85, 5}, {0.80, 6}, {0.92, 20}, {0.70, 1}};
  EXPECT_EQ(frontier(v, "accuracy:max,joules:min"), (std::vector<bool>{true, true, false, true, true}));
}

TEST(Pareto, TiesOnOneObjectiveBreakOnTheOther) {
  // Same accuracy, less energy wins; same energy, more accuracy wins.
  std::vector<std::vector<double>> v = {{0.9, 10}, {0.9, 8}, {0.8, 8}, {0.95, 12}};
  EXPECT_EQ(frontier(v, "a:max,e:min"), (std::vector<bool>{false, true, false, true}));
}

TEST(Pareto, ExactDuplicatesBothStayOn) {
  std::vector<std::vector<double>> v = {{0.9, 5}, {0.9, 5}, {0.8, 6}, {0.8, 6}};
  EXPECT_EQ(frontier(v, "a:max,e:min"), (std::vector<bool>{true, true, false, false}));
}

TEST(Pareto, ThreeObjectives) {
  // accuracy max, joules min, latency min: c is worse than a on energy but better on latency.
  std::vector<std::vector<double>> v = {{0.9, 5, 10}, {0.9, 6, 11}, {0.9, 7, 3}, {0.5, 7, 3}};
  EXPECT_EQ(frontier(v, "a:max,e:min,l:min"), (std::vector<bool>{true, false, true, false}));
}

TEST(Pareto, FiveObjectivesEachPointBestAtOne) {
  std::vector<std::vector<double>> v;
  for (int i = 0; i < 5; ++i) {
    std::vector<double> p(5, 1.0);
    p[size_t(i)] = 0.0;  // best (min) on objective i, worse on the rest
    v.push_back(p);
  }
  v.push_back({1, 1, 1, 1, 1});  // dominated by every point above
  EXPECT_EQ(frontier(v, "a:min,b:min,c:min,d:min,e:min"), (std::vector<bool>{true, true, true, true, true, false}));
}

TEST(Pareto, SingleAndEmpty) {
  EXPECT_EQ(frontier({{1, 2}}, "a:max,b:min"), std::vector<bool>{true});
  EXPECT_TRUE(frontier({}, "a:max,b:min").empty());
}

TEST(Pareto, NaNNamesTheConfigAndMetric) {
  testing::expect_error([] { pareto_frontier({{0.9, 1}, {std::nan(""), 2}}, goals("accuracy:max,joules:min"), {"c000", "c001"}); },
                        {"c001", "accuracy"});
}

TEST(Pareto, MatchesBruteForceOnRandomPoints) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const size_t k = 2 + size_t(trial % 4), n = size_t(rng() % 60);
    std::vector<Objective> obj;
    for (size_t j = 0; j < k; ++j) obj.push_back({std::string("m").append(std::to_string(j)), rng() % 2 ? Goal::Maximize : Goal::Minimize});
    // Few distinct values so ties and duplicates are common.
    std::vector<std::vector<double>> v(n, std::vector<double>(k));
    for (auto& p : v)
      for (auto& x : p) x = double(rng() % 5);
    ASSERT_EQ(pareto_frontier(v, obj, names_for(n)), brute_force(v, obj)) << "trial " << trial;
  }
}

TEST(Pareto, ParseObjectives) {
  auto o = parse_objectives("accuracy:max,joules_per_example:min");
  ASSERT_EQ(o.size(), 2u);
  EXPECT_EQ(o[0].metric, "accuracy");
  EXPECT_EQ(o[0].goal, Goal::Maximize);
  EXPECT_EQ(o[1].str(), "joules_per_example:min");
  testing::expect_error([] { parse_objectives("accuracy:max"); }, {"two or more"});
  testing::expect_error([] { parse_objectives("accuracy:up,e:min"); }, {"accuracy:up", "min or max"});
  testing::expect_error([] { parse_objectives("accuracy,e:min"); }, {"'accuracy'"});
  testing::expect_error([] { parse_objectives("a:max,a:min"); }, {"twice"});
}

TEST(Pareto, MarkFrontierSkipsSkippedRowsAndNamesMissingMetrics) {
  ResultTable t;
  t.axes = {"precision"};
  t.metrics = {"accuracy", "joules_per_example"};
  ConfigRow a, b, c;
  a.config = "c000", a.knobs = {{"precision", "fp32"}}, a.metrics = {{"accuracy", 0.9}, {"joules_per_example", 2}};
  b.config = "c001", b.knobs = {{"precision", "fp16"}}, b.status = "skipped", b.reason = "needs a GPU";
  c.config = "c002", c.knobs = {{"precision", "bf16"}}, c.metrics = {{"accuracy", 0.8}, {"joules_per_example", 3}};
  t.rows = {a, b, c};
  mark_frontier(t, goals("accuracy:max,joules_per_example:min"));
  EXPECT_TRUE(t.rows[0].on_frontier);
  EXPECT_FALSE(t.rows[1].on_frontier);
  EXPECT_FALSE(t.rows[2].on_frontier);
  t.rows[2].metrics.erase("joules_per_example");
  testing::expect_error([&] { mark_frontier(t, goals("accuracy:max,joules_per_example:min")); },
                        {"c002", "precision=bf16", "joules_per_example"});
}

TEST(Pareto, CsvRoundTripKeepsQuotedReasonsAndNumbers) {
  ResultTable t;
  t.axes = {"max_length", "precision"};
  t.metrics = {"accuracy", "peak_memory_bytes"};
  ConfigRow a;
  a.run = "runs/x", a.config = "c000", a.baseline = true, a.on_frontier = true;
  a.knobs = {{"max_length", "128"}, {"precision", "fp32"}};
  a.metrics = {{"accuracy", 0.875}, {"peak_memory_bytes", 123456789012.0}};
  a.energy_provenance = "estimated: TDP, 85 W";
  ConfigRow b = a;
  b.config = "c001", b.baseline = false, b.on_frontier = false, b.status = "skipped";
  b.metrics.clear();
  b.reason = "precision fp16 needs a GPU, \"cpu\" given\nsecond line";
  t.rows = {a, b};
  const auto path = std::filesystem::temp_directory_path() / ("ww_pareto_" + std::to_string(::getpid()) + ".csv");
  write_pareto_csv(t, path);
  ResultTable r = read_pareto_csv(path);
  std::filesystem::remove(path);
  EXPECT_EQ(r.axes, t.axes);
  EXPECT_EQ(r.metrics, t.metrics);
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].knobs, a.knobs);
  EXPECT_TRUE(r.rows[0].baseline);
  EXPECT_TRUE(r.rows[0].on_frontier);
  EXPECT_DOUBLE_EQ(r.rows[0].metric("accuracy"), 0.875);
  EXPECT_DOUBLE_EQ(r.rows[0].metric("peak_memory_bytes"), 123456789012.0);
  EXPECT_EQ(r.rows[0].energy_provenance, a.energy_provenance);
  EXPECT_EQ(r.rows[1].status, "skipped");
  EXPECT_EQ(r.rows[1].reason, b.reason);
  EXPECT_TRUE(r.rows[1].metrics.empty());
}

TEST(Pareto, CsvErrorsNameFileAndLine) {
  const auto path = std::filesystem::temp_directory_path() / ("ww_pareto_bad_" + std::to_string(::getpid()) + ".csv");
  io::write_file_atomic(path, "run,config,baseline,status,on_frontier,accuracy,energy_provenance,reason\nr,c0,true,ok,true,abc,,\n");
  testing::expect_error([&] { read_pareto_csv(path); }, {path.string() + ":2", "accuracy", "'abc'"});
  io::write_file_atomic(path, "run,config,status\n");
  testing::expect_error([&] { read_pareto_csv(path); }, {":1: missing column"});
  std::filesystem::remove(path);
}

TEST(Pareto, TrainingRunsGiveAccuracyAgainstTrainingKwh) {
  const auto dir = std::filesystem::temp_directory_path() / ("ww_pareto_train_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  io::write_file_atomic(dir / "metrics.json", R"({"train": {"seconds": 12.5}, "eval": {"accuracy": 0.81, "f1": 0.8},
    "test": null, "energy": {"phases": {"training": {"kwh": 0.002, "energy_j": 7200, "gco2e": 0.9,
    "sources": [{"measured": true}]}}, "total": {"kwh": 0.003}}})");
  ResultTable t = load_run_results(dir);
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].config, "train");
  EXPECT_DOUBLE_EQ(t.rows[0].metric("accuracy"), 0.81);
  EXPECT_DOUBLE_EQ(t.rows[0].metric("training_kwh"), 0.002);
  EXPECT_DOUBLE_EQ(t.rows[0].metric("training_seconds"), 12.5);
  io::write_file_atomic(dir / "metrics.json", R"({"split": "dev", "accuracy": 0.8})");
  testing::expect_error([&] { load_run_results(dir); }, {"metrics.json", "not a training run"});
  std::filesystem::remove(dir / "metrics.json");
  testing::expect_error([&] { load_run_results(dir); }, {"neither pareto.csv", "nor metrics.json"});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ww::experiment
