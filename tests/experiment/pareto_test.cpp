// The Pareto frontier (hand-made cases with ties, duplicates and 2/3/5 objectives; randomized
// against a brute-force O(n^2) check), the frontier within the measured spread (overlapping
// intervals tie, disjoint ones dominate, objectives with and without a spread mixed), objective
// parsing, and pareto.csv round trips (ties included; a file from before the tied_with column).
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

// ---- within the measured spread ------------------------------------------------------------

std::vector<FrontierPoint> within(const std::vector<std::vector<Spread>>& v, const std::string& objectives) {
  return pareto_frontier_within_spread(v, goals(objectives), names_for(v.size()));
}

Spread spread(double value, double low, double high) { return {value, low, high}; }
Spread exact(double value) { return Spread::exact(value); }

TEST(ParetoSpread, OverlappingIntervalsTieAndBothStay) {
  // The BERT-base case: the same accuracy, 0.0229 against 0.0213 J/example, passes overlapping.
  const auto f = within({{exact(0.8096), spread(0.0229, 0.0221, 0.0236)}, {exact(0.8096), spread(0.0213, 0.0209, 0.0224)}},
                        "accuracy:max,joules:min");
  ASSERT_EQ(f.size(), 2u);
  EXPECT_TRUE(f[0].on);
  EXPECT_TRUE(f[0].tie());
  EXPECT_EQ(f[0].tied_with, std::vector<size_t>{1});
  EXPECT_TRUE(f[1].on);
  EXPECT_FALSE(f[1].tie());  // nothing beats it, not even on the exact values
  // Touching intervals overlap too.
  const auto touching = within({{exact(1), spread(2.0, 1.5, 2.5)}, {exact(1), spread(1.0, 0.5, 1.5)}}, "a:max,e:min");
  EXPECT_TRUE(touching[0].on && touching[0].tie());
}

TEST(ParetoSpread, DisjointIntervalsDominate) {
  const auto f = within({{exact(0.8096), spread(0.0259, 0.0255, 0.0263)}, {exact(0.8096), spread(0.0213, 0.0209, 0.0224)}},
                        "accuracy:max,joules:min");
  EXPECT_FALSE(f[0].on);
  EXPECT_TRUE(f[0].tied_with.empty());  // dominated, not a tie
  EXPECT_TRUE(f[1].on);
  // A maximised objective with a spread (accuracy over seeds): [0.80, 0.84] against [0.85, 0.88]
  // is beaten; against [0.83, 0.87] it ties.
  auto seeds = within({{spread(0.82, 0.80, 0.84), exact(5)}, {spread(0.86, 0.85, 0.88), exact(5)}}, "accuracy:max,kwh:min");
  EXPECT_FALSE(seeds[0].on);
  seeds = within({{spread(0.82, 0.80, 0.84), exact(5)}, {spread(0.85, 0.83, 0.87), exact(5)}}, "accuracy:max,kwh:min");
  EXPECT_TRUE(seeds[0].tie());
  EXPECT_EQ(seeds[0].tied_with, std::vector<size_t>{1});
}

TEST(ParetoSpread, ObjectivesWithAndWithoutSpreadMixed) {
  // Accuracy has no spread (exact), energy and latency have one.
  const std::string obj = "accuracy:max,joules:min,latency:min";
  // Better accuracy (exact: any difference counts) and clearly less energy, equal latency: dominated.
  auto f = within({{exact(0.80), spread(2.0, 1.9, 2.1), exact(1.0)}, {exact(0.81), spread(1.0, 0.9, 1.1), exact(1.0)}}, obj);
  EXPECT_FALSE(f[0].on);
  // Better accuracy, less energy but within the spread: a tie (the energy might really be no better).
  f = within({{exact(0.80), spread(2.0, 1.5, 2.5), exact(1.0)}, {exact(0.81), spread(1.8, 1.4, 2.2), exact(1.0)}}, obj);
  EXPECT_TRUE(f[0].tie());
  EXPECT_EQ(f[0].tied_with, std::vector<size_t>{1});
  // Clearly less energy but worse accuracy: both on, no tie (nothing beats either on every objective).
  f = within({{exact(0.82), spread(2.0, 1.9, 2.1), exact(1.0)}, {exact(0.81), spread(1.0, 0.9, 1.1), exact(1.0)}}, obj);
  EXPECT_TRUE(f[0].on && !f[0].tie());
  EXPECT_TRUE(f[1].on && !f[1].tie());
  // Equal exact values count as "at least as good" whatever their spreads: energy equal, latency clearly less.
  f = within({{exact(0.8), spread(1.0, 0.5, 1.5), spread(3.0, 2.9, 3.1)}, {exact(0.8), spread(1.0, 0.8, 1.2), spread(2.0, 1.9, 2.1)}},
             obj);
  EXPECT_FALSE(f[0].on);
  EXPECT_TRUE(f[1].on);
  // A tie lists every point that beats it on the exact values within the spread; one beyond the
  // spread makes it dominated whatever the others.
  f = within({{exact(0.8), spread(3.0, 2.0, 4.0), exact(1)}, {exact(0.8), spread(2.8, 2.0, 3.5), exact(1)},
              {exact(0.8), spread(2.9, 2.0, 3.5), exact(1)}},
             obj);
  EXPECT_EQ(f[0].tied_with, (std::vector<size_t>{1, 2}));
  EXPECT_EQ(f[2].tied_with, std::vector<size_t>{1});
  EXPECT_TRUE(f[1].on && !f[1].tie());
  f = within({{exact(0.8), spread(3.0, 2.0, 4.0), exact(1)}, {exact(0.8), spread(2.8, 2.0, 3.5), exact(1)},
              {exact(0.8), spread(1.0, 0.9, 1.1), exact(1)}},
             obj);
  EXPECT_FALSE(f[0].on);
  EXPECT_TRUE(f[0].tied_with.empty());
}

TEST(ParetoSpread, WithoutSpreadsIsTheExactFrontierAndKeepsItsProperties) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    const size_t k = 2 + size_t(trial % 3), n = size_t(rng() % 40);
    std::vector<Objective> obj;
    for (size_t j = 0; j < k; ++j) obj.push_back({std::string("m").append(std::to_string(j)), rng() % 2 ? Goal::Maximize : Goal::Minimize});
    std::vector<std::vector<double>> v(n, std::vector<double>(k));
    std::vector<std::vector<Spread>> none(n), some(n);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < k; ++j) {
        v[i][j] = double(rng() % 6);
        none[i].push_back(Spread::exact(v[i][j]));
        // Half the objectives get a random spread around the value.
        some[i].push_back(j % 2 ? spread(v[i][j], v[i][j] - double(rng() % 3) * 0.5, v[i][j] + double(rng() % 3) * 0.5)
                                : Spread::exact(v[i][j]));
      }
    const std::vector<bool> exact_on = pareto_frontier(v, obj, names_for(n));
    const auto plain = pareto_frontier_within_spread(none, obj, names_for(n));
    const auto noisy = pareto_frontier_within_spread(some, obj, names_for(n));
    const std::vector<bool> brute = brute_force(v, obj);
    for (size_t i = 0; i < n; ++i) {
      SCOPED_TRACE("trial " + std::to_string(trial) + " point " + std::to_string(i));
      ASSERT_EQ(plain[i].on, exact_on[i]);
      ASSERT_TRUE(plain[i].tied_with.empty());
      // A spread only ever keeps points on: the exact frontier stays, without ties.
      if (exact_on[i]) {
        ASSERT_TRUE(noisy[i].on && noisy[i].tied_with.empty());
      }
      // A point the exact frontier drops is dominated or a tie with the points that beat it exactly.
      if (!exact_on[i]) {
        ASSERT_EQ(noisy[i].on, !noisy[i].tied_with.empty());
      }
      for (size_t t : noisy[i].tied_with) {
        std::vector<std::vector<double>> pair = {v[i], v[t]};
        ASSERT_EQ(brute_force(pair, obj), (std::vector<bool>{false, true})) << "tied with " << t;
      }
      ASSERT_EQ(exact_on[i], brute[i]);
    }
  }
}

TEST(ParetoSpread, ErrorsNameTheConfigAndMetric) {
  testing::expect_error([] { within({{exact(1), spread(2, 2.5, 3)}, {exact(1), exact(2)}}, "accuracy:max,joules:min"); },
                        {"p0", "joules", "outside its spread"});
  testing::expect_error([] { within({{exact(std::nan("")), exact(1)}}, "accuracy:max,joules:min"); }, {"p0", "accuracy", "NaN"});
}

TEST(ParetoSpread, RowSpreadComesFromMinAndMaxColumns) {
  ConfigRow r;
  r.config = "c001";
  r.metrics = {{"joules_per_example", 0.0229}, {"joules_per_example_min", 0.0221}, {"joules_per_example_max", 0.0236},
               {"latency_p50_ms", 0.04}, {"latency_p50_ms_min", 0.041}, {"latency_p50_ms_max", 0.05},
               {"accuracy", 0.81}, {"accuracy_min", 0.80}};
  const Spread e = r.spread("joules_per_example");
  EXPECT_DOUBLE_EQ(e.low, 0.0221);
  EXPECT_DOUBLE_EQ(e.high, 0.0236);
  // The value lies below every pass's p50: the spread is widened to hold it.
  const Spread l = r.spread("latency_p50_ms");
  EXPECT_DOUBLE_EQ(l.low, 0.04);
  EXPECT_DOUBLE_EQ(l.high, 0.05);
  // Only one of the two columns: no spread.
  const Spread a = r.spread("accuracy");
  EXPECT_EQ(a.low, a.high);
  testing::expect_error([&] { r.spread("throughput_per_s"); }, {"c001", "no metric throughput_per_s"});
}

TEST(ParetoSpread, MarkFrontierNamesTiesPerRunAndAcrossRuns) {
  ResultTable t;
  t.axes = {"max_length"};
  t.metrics = {"accuracy", "joules_per_example", "joules_per_example_min", "joules_per_example_max"};
  auto row = [](const std::string& run, const std::string& id, const std::string& length, double j, double lo, double hi) {
    ConfigRow r;
    r.run = run, r.config = id, r.knobs = {{"max_length", length}};
    r.metrics = {{"accuracy", 0.8096}, {"joules_per_example", j}, {"joules_per_example_min", lo}, {"joules_per_example_max", hi}};
    return r;
  };
  t.rows = {row("runs/a", "c000", "128", 0.0213, 0.0209, 0.0224), row("runs/a", "c001", "64", 0.0229, 0.0221, 0.0236),
            row("runs/a", "c002", "32", 0.0300, 0.0290, 0.0310)};
  mark_frontier(t, goals("accuracy:max,joules_per_example:min"));
  EXPECT_EQ(t.rows[0].frontier(), "yes");
  EXPECT_EQ(t.rows[1].frontier(), "tie");
  EXPECT_EQ(t.rows[1].tied_with, std::vector<std::string>{"c000"});
  EXPECT_TRUE(t.rows[1].on_frontier);
  EXPECT_EQ(t.rows[2].frontier(), "no");
  // Without the spread columns, the exact comparison of before: c001 dominated.
  ResultTable plain = t;
  for (ConfigRow& r : plain.rows) r.metrics.erase("joules_per_example_min");
  mark_frontier(plain, goals("accuracy:max,joules_per_example:min"));
  EXPECT_EQ(plain.rows[1].frontier(), "no");
  // Rows of two runs: ties are named with their run folder.
  t.rows[0].run = "runs/b";
  mark_frontier(t, goals("accuracy:max,joules_per_example:min"));
  EXPECT_EQ(t.rows[1].tied_with, std::vector<std::string>{"b/c000"});
  // The terminal table gains a frontier column when a row shown is a tie.
  const std::string text = format_table(t, {&t.rows[0], &t.rows[1]}, {"accuracy", "joules_per_example"});
  EXPECT_NE(text.find("frontier"), std::string::npos) << text;
  EXPECT_NE(text.find("tie with b/c000"), std::string::npos) << text;
  EXPECT_EQ(format_table(t, {&t.rows[0]}, {"accuracy"}).find("frontier"), std::string::npos);
  EXPECT_EQ(tie_note(0), "");
  EXPECT_EQ(tie_note(2), ", 2 of them ties within the measured spread");
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
  ConfigRow tie = a;
  tie.config = "c002", tie.baseline = false, tie.tied_with = {"c000", "c003"};
  ConfigRow b = a;
  b.config = "c001", b.baseline = false, b.on_frontier = false, b.status = "skipped";
  b.metrics.clear();
  b.reason = "precision fp16 needs a GPU, \"cpu\" given\nsecond line";
  t.rows = {a, b, tie};
  const auto path = std::filesystem::temp_directory_path() / ("ww_pareto_" + std::to_string(::getpid()) + ".csv");
  write_pareto_csv(t, path);
  const std::string text = io::read_file(path);
  EXPECT_EQ(text.substr(0, text.find('\n')),
            "run,config,max_length,precision,baseline,status,on_frontier,tied_with,accuracy,peak_memory_bytes,"
            "energy_provenance,reason");
  EXPECT_NE(text.find(",true,c000 c003,"), std::string::npos) << text;
  ResultTable r = read_pareto_csv(path);
  std::filesystem::remove(path);
  EXPECT_EQ(r.axes, t.axes);
  EXPECT_EQ(r.metrics, t.metrics);
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_TRUE(r.rows[0].tied_with.empty());
  EXPECT_EQ(r.rows[2].tied_with, tie.tied_with);
  EXPECT_EQ(r.rows[2].frontier(), "tie");
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

// A pareto.csv written before the tied_with column: the same axes and metrics, no ties.
TEST(Pareto, CsvWithoutTiedWithColumnReads) {
  const auto path = std::filesystem::temp_directory_path() / ("ww_pareto_old_" + std::to_string(::getpid()) + ".csv");
  io::write_file_atomic(path,
                        "run,config,max_length,baseline,status,on_frontier,accuracy,joules_per_example,"
                        "joules_per_example_min,joules_per_example_max,energy_provenance,reason\n"
                        "runs/x,c000,128,true,ok,true,0.8096,0.0213,0.0209,0.0224,estimated: TDP,\n"
                        "runs/x,c001,64,false,ok,false,0.8096,0.0229,0.0221,0.0236,estimated: TDP,\n");
  ResultTable r = read_pareto_csv(path);
  std::filesystem::remove(path);
  EXPECT_EQ(r.axes, std::vector<std::string>{"max_length"});
  EXPECT_EQ(r.metrics, (std::vector<std::string>{"accuracy", "joules_per_example", "joules_per_example_min",
                                                 "joules_per_example_max"}));
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].frontier(), "yes");
  EXPECT_EQ(r.rows[1].frontier(), "no");  // as that file's exact frontier said
  EXPECT_DOUBLE_EQ(r.rows[1].metric("accuracy"), 0.8096);
  // Marked again, within the spread it carries: c001 ties with c000.
  mark_frontier(r, goals("accuracy:max,joules_per_example:min"));
  EXPECT_EQ(r.rows[1].frontier(), "tie");
  EXPECT_EQ(r.rows[1].tied_with, std::vector<std::string>{"c000"});
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
