// `wattwise ablate`'s pieces without training: the spec (parsing, resolution, every error naming the
// file, line and key), the statistics with hand-computed numbers (Student-t quantiles, mean and 95%
// interval, differences paired by seed), the summary of hand-made runs, the frontier and the
// ranking rule, and the per-run numbers read from a metrics.json.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "test_util.h"
#include "wattwise/experiment/ablate.h"

namespace ww::experiment {
namespace {

namespace fs = std::filesystem;
using ww::testing::expect_error;

// ---- statistics

TEST(AblateStats, StudentTQuantiles) {
  // The table, and the expansion beyond it against published values (R: qt(0.975, df)).
  EXPECT_NEAR(student_t_975(1), 12.706205, 1e-6);
  EXPECT_NEAR(student_t_975(2), 4.302653, 1e-6);
  EXPECT_NEAR(student_t_975(4), 2.776445, 1e-6);
  EXPECT_NEAR(student_t_975(30), 2.042272, 1e-6);
  EXPECT_NEAR(student_t_975(31), 2.039513, 1e-5);
  EXPECT_NEAR(student_t_975(60), 2.000298, 1e-5);
  EXPECT_NEAR(student_t_975(120), 1.979930, 1e-5);
  EXPECT_NEAR(student_t_975(100000), 1.959985, 1e-5);
  for (int64_t df = 1; df < 200; ++df) EXPECT_GT(student_t_975(df), student_t_975(df + 1)) << df;
}

TEST(AblateStats, MeanRangeAndInterval) {
  // 1, 2, 3, 4: mean 2.5, sd sqrt(5/3), se sd/2, t(3) = 3.182446.
  const SampleStats s = sample_stats({1, 2, 3, 4});
  EXPECT_EQ(s.n, 4);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 4);
  const double half = 3.182446305 * std::sqrt(5.0 / 3.0) / 2.0;
  EXPECT_NEAR(s.ci_low, 2.5 - half, 1e-8);
  EXPECT_NEAR(s.ci_high, 2.5 + half, 1e-8);
  EXPECT_NEAR(half, 2.054260, 1e-6);
  // One value: a mean, no interval; none: nothing.
  const SampleStats one = sample_stats({0.7});
  EXPECT_EQ(one.n, 1);
  EXPECT_DOUBLE_EQ(one.mean, 0.7);
  EXPECT_TRUE(std::isnan(one.ci_low) && std::isnan(one.ci_high));
  EXPECT_TRUE(std::isnan(sample_stats({}).mean));
  // Equal values: a zero-width interval.
  const SampleStats same = sample_stats({-2, -2, -2});
  EXPECT_DOUBLE_EQ(same.ci_low, -2);
  EXPECT_DOUBLE_EQ(same.ci_high, -2);
}

TEST(AblateStats, DifferencesArePairedBySeed) {
  const std::map<int64_t, double> arm = {{1, 0.80}, {2, 0.90}, {3, 0.85}, {5, std::nan("")}};
  const std::map<int64_t, double> baseline = {{1, 0.78}, {2, 0.91}, {4, 0.50}, {5, 0.7}};
  const std::vector<double> d = paired_differences(arm, baseline);
  ASSERT_EQ(d.size(), 2u);  // seeds 3 and 4 have one side only; seed 5's NaN drops it
  EXPECT_NEAR(d[0], 0.02, 1e-12);
  EXPECT_NEAR(d[1], -0.01, 1e-12);
}

// ---- summary, frontier, ranking

AblationRun run(const std::string& arm, int64_t seed, double accuracy, double energy, double time_to_target) {
  AblationRun r;
  r.arm = arm;
  r.seed = seed;
  r.status = "completed";
  r.metrics = {{"accuracy", accuracy}, {"energy_j", energy}, {"kwh", energy / 3.6e6}, {"peak_memory_bytes", 1e6},
               {"throughput_per_s", 100}, {"target_reached", std::isnan(time_to_target) ? 0.0 : 1.0}};
  if (!std::isnan(time_to_target)) r.metrics["time_to_target_s"] = time_to_target;
  return r;
}

AblationSpec spec_of(const std::vector<std::string>& arms) {
  AblationSpec spec;
  spec.seeds = {1, 2, 3};
  for (const auto& name : arms) {
    AblationArm a;
    a.name = name;
    spec.arms.push_back(a);
  }
  return spec;
}

TEST(AblateSummary, KnownNumbers) {
  const AblationSpec spec = spec_of({"baseline", "a", "b", "c"});
  const double none = std::nan("");
  const std::vector<AblationRun> runs = {
      run("baseline", 1, 0.80, 100, 10), run("baseline", 2, 0.82, 110, 12), run("baseline", 3, 0.84, 120, 14),
      // a: the same accuracy on average, 40% less energy, the target missed with seed 3
      run("a", 1, 0.81, 60, 8), run("a", 2, 0.82, 66, 9), run("a", 3, 0.83, 72, none),
      // b: 2 points worse, much cheaper
      run("b", 1, 0.78, 30, 5), run("b", 2, 0.80, 33, 5), run("b", 3, 0.82, 36, 5),
      // c: the same accuracy, 10% less energy
      run("c", 1, 0.80, 90, 10), run("c", 2, 0.82, 99, 12), run("c", 3, 0.84, 108, 14)};
  const AblationSummary s = summarize_ablation(spec, runs);
  ASSERT_EQ(s.arms.size(), 4u);
  const auto& base = s.arms[0].columns;
  const auto& a = s.arms[1].columns;
  EXPECT_TRUE(s.arms[0].baseline);
  EXPECT_EQ(s.arms[1].seeds, 3);
  EXPECT_NEAR(base.at("accuracy_mean"), 0.82, 1e-12);
  EXPECT_NEAR(base.at("accuracy_min"), 0.80, 1e-12);
  EXPECT_NEAR(base.at("accuracy_max"), 0.84, 1e-12);
  EXPECT_EQ(base.count("delta_accuracy_pts_mean"), 0u);  // the baseline has no differences
  // a - baseline per seed: +1, 0, -1 points: mean 0, sd 1, interval +-t(2)/sqrt(3).
  EXPECT_NEAR(a.at("delta_accuracy_pts_mean"), 0, 1e-9);
  EXPECT_NEAR(a.at("delta_accuracy_pts_ci_high"), 4.302652730 / std::sqrt(3.0), 1e-6);
  EXPECT_NEAR(a.at("delta_accuracy_pts_ci_low"), -4.302652730 / std::sqrt(3.0), 1e-6);
  EXPECT_NEAR(a.at("delta_accuracy_pts_min"), -1, 1e-9);
  EXPECT_NEAR(a.at("delta_accuracy_pts_max"), 1, 1e-9);
  // Energy: -40, -44, -48 J; relative to the baseline's 110 J: -40%.
  EXPECT_NEAR(a.at("delta_energy_j_mean"), -44, 1e-9);
  EXPECT_NEAR(a.at("delta_energy_j_rel"), -0.4, 1e-12);
  EXPECT_NEAR(a.at("energy_saved_pct"), 40, 1e-9);
  // Time to target over the two seeds both reached: (-2, -3) against the baseline's 10 and 12.
  EXPECT_EQ(a.at("delta_time_to_target_s_n"), 2);
  EXPECT_NEAR(a.at("delta_time_to_target_s_mean"), -2.5, 1e-12);
  EXPECT_NEAR(a.at("delta_time_to_target_s_rel"), -2.5 / 11.0, 1e-12);
  EXPECT_EQ(a.at("target_reached"), 2);
  EXPECT_EQ(base.at("target_reached"), 3);
  // b: -2 points each seed (a zero-width interval) and 70% less energy.
  EXPECT_NEAR(s.arms[2].columns.at("delta_accuracy_pts_mean"), -2, 1e-9);
  EXPECT_NEAR(s.arms[2].columns.at("delta_accuracy_pts_ci_low"), -2, 1e-9);
  EXPECT_NEAR(s.arms[2].columns.at("energy_saved_pct"), 70, 1e-9);
  // Frontier (accuracy max, energy min): a and b; the baseline and c cost more for the same accuracy,
  // beyond the spread of their seeds' energies.
  EXPECT_FALSE(s.arms[0].on_frontier);
  EXPECT_TRUE(s.arms[1].on_frontier);
  EXPECT_TRUE(s.arms[2].on_frontier);
  EXPECT_FALSE(s.arms[3].on_frontier);
  // Ranked: a (40%) then c (10%); b loses 2 points, more than the 0.5 allowed.
  ASSERT_EQ(s.ranked.size(), 2u);
  EXPECT_EQ(s.arms[s.ranked[0]].name, "a");
  EXPECT_EQ(s.arms[s.ranked[1]].name, "c");
  EXPECT_EQ(s.arms[1].rank, 1);
  EXPECT_EQ(s.arms[3].rank, 2);
  EXPECT_EQ(s.arms[2].rank, 0);
  // The plot: one point per arm at its means, the frontier flagged.
  const ScatterPlot plot = ablation_plot(spec, s);
  ASSERT_EQ(plot.points.size(), 4u);
  EXPECT_TRUE(plot.points[0].baseline);
  EXPECT_NEAR(plot.points[1].x, 66, 1e-9);
  EXPECT_NEAR(plot.points[1].y, 0.82, 1e-12);
}

TEST(AblateSummary, TiesWithinTheSpreadOverSeeds) {
  // d uses less energy than the baseline on average (105 J against 110 J), but the seeds' ranges
  // overlap (95..115 J against 100..120 J): the baseline stays on the frontier as a tie with d.
  const AblationSpec spec = spec_of({"baseline", "d"});
  const std::vector<AblationRun> runs = {run("baseline", 1, 0.80, 100, 10), run("baseline", 2, 0.82, 110, 12),
                                         run("baseline", 3, 0.84, 120, 14), run("d", 1, 0.80, 95, 10),
                                         run("d", 2, 0.82, 105, 12),        run("d", 3, 0.84, 115, 14)};
  const AblationSummary s = summarize_ablation(spec, runs);
  EXPECT_EQ(s.arms[0].frontier(), "tie");
  EXPECT_EQ(s.arms[0].tied_with, (std::vector<std::string>{"d"}));
  EXPECT_EQ(s.arms[1].frontier(), "yes");
  const ScatterPlot plot = ablation_plot(spec, s);
  EXPECT_TRUE(plot.points[0].tie && plot.points[0].on_frontier);
  EXPECT_FALSE(plot.points[1].tie);
}

ArmSummary arm(const std::string& name, double delta_pts, double saved, int64_t paired = 3) {
  ArmSummary a;
  a.name = name;
  a.seeds = 3;
  a.columns = {{"delta_accuracy_pts_mean", delta_pts}, {"energy_saved_pct", saved}, {"delta_energy_j_n", double(paired)}};
  return a;
}

TEST(AblateSummary, RankingRule) {
  std::vector<ArmSummary> arms = {arm("baseline", 0, 0), arm("exactly_half", -0.5, 10), arm("too_lossy", -0.51, 90),
                                  arm("better", 1.0, 5), arm("costlier", 0, -20), arm("tie_b", 0, 30),
                                  arm("tie_a", 0, 30), arm("one_seed_short", 0, 80, 2)};
  arms[0].baseline = true;
  std::vector<std::string> names;
  for (size_t i : rank_energy_saved(arms, "accuracy", 0.5)) names.push_back(arms[i].name);
  EXPECT_EQ(names, (std::vector<std::string>{"tie_a", "tie_b", "exactly_half", "better", "costlier"}));
  // A lower-is-better metric: the loss may rise by the tolerance, not more.
  std::vector<ArmSummary> loss = {arm("up_half", 0.5, 10), arm("up_more", 0.6, 50), arm("down", -3, 1)};
  for (auto& a : loss) a.columns = {{"delta_loss_pts_mean", a.columns["delta_accuracy_pts_mean"]},
                                    {"energy_saved_pct", a.columns["energy_saved_pct"]}, {"delta_energy_j_n", 3}};
  names.clear();
  for (size_t i : rank_energy_saved(loss, "loss", 0.5)) names.push_back(loss[i].name);
  EXPECT_EQ(names, (std::vector<std::string>{"up_half", "down"}));
  EXPECT_DOUBLE_EQ(metric_point("accuracy"), 0.01);
  EXPECT_DOUBLE_EQ(metric_point("perplexity"), 1);
}

TEST(AblateSummary, NumbersOfARunsMetricsJson) {
  const nlohmann::json m = nlohmann::json::parse(R"({
    "run": {"status": "completed"},
    "train": {"seconds": 12.5, "samples_per_s": 80, "mfu": null, "achieved_tflops": 0.01, "steps": 12, "final_loss": 0.6},
    "eval": {"accuracy": 0.75, "f1": 0.7},
    "target": {"condition": "accuracy>=0.7", "reached": true, "seconds": 3.5, "energy_j": 40, "step": 3},
    "execution": {"peak_memory_bytes": 1048576},
    "energy": {"total": {"energy_j": 150, "kwh": 4.1667e-5, "gco2e": 0.02}}})");
  const auto r = ablation_run_metrics(m, "accuracy");
  EXPECT_EQ(r.at("accuracy"), 0.75);
  EXPECT_EQ(r.at("seconds"), 12.5);
  EXPECT_EQ(r.at("energy_j"), 150);
  EXPECT_EQ(r.at("target_reached"), 1);
  EXPECT_EQ(r.at("time_to_target_s"), 3.5);
  EXPECT_EQ(r.at("energy_to_target_j"), 40);
  EXPECT_EQ(r.at("steps_to_target"), 3);
  EXPECT_EQ(r.at("peak_memory_bytes"), 1048576);
  EXPECT_EQ(r.at("throughput_per_s"), 80);
  EXPECT_EQ(r.count("mfu"), 0u);  // null: no peak known
  // Language modelling: throughput in tokens/s; a target not reached has no figures.
  nlohmann::json lm = m;
  lm["train"]["tokens_per_s"] = 5000;
  lm["target"] = {{"condition", "perplexity<=30"}, {"reached", false}};
  const auto l = ablation_run_metrics(lm, "perplexity");
  EXPECT_EQ(l.at("throughput_per_s"), 5000);
  EXPECT_EQ(l.at("target_reached"), 0);
  EXPECT_EQ(l.count("time_to_target_s"), 0u);
  EXPECT_EQ(l.count("perplexity"), 0u);
}

// ---- the spec

class AblateSpec : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ww_ablate_spec_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tok");
    fs::create_directories(dir_ / "recipes");
    write("tok/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\ngood\nbad\n");
    write("train.tsv", "text\tlabel\ngood\t1\nbad\t0\n");
    write("base.toml", "[run]\nname = \"mine\"\nseed = 7\ndevice = \"cpu\"\n[model]\ntokenizer = \"" +
                           (dir_ / "tok").string() + "\"\n[data]\npath = \"" + (dir_ / "train.tsv").string() +
                           "\"\n[train]\nmax_steps = 4\n");
    write("recipes/green.toml", "[data]\nmax_length = 32\n[train]\nlabel_smoothing = 0.1\n");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  // A spec file with `body` after a valid head; options as the command line gives them.
  AblationSpec load(const std::string& body, AblateOptions o = {}) {
    write("spec.toml", body);
    o.spec = dir_ / "spec.toml";
    return load_ablation_spec(o);
  }
  std::string spec_path() const { return (dir_ / "spec.toml").string(); }
  fs::path dir_;
};

const char* kHead = "seeds = [1, 2]\n[baseline]\nconfig = \"base.toml\"\n";  // 3 lines

TEST_F(AblateSpec, ResolvesEveryArm) {
  const AblationSpec spec = load(std::string("name = \"study\"\ntarget = \"accuracy >= 0.8\"\n") + kHead +
                                 "[baseline.set]\ntrain.lr = 1e-3\n\"data.max_length\" = 16\n"
                                 "[[change]]\nname = \"sgd\"\nset = { \"train.optimizer\" = \"sgd\", train.momentum = 0.8 }\n"
                                 "[[change]]\nname = \"green\"\nrecipe = \"recipes/green.toml\"\nset = { \"train.lr\" = 2e-3 }\n");
  EXPECT_EQ(spec.name, "study");
  EXPECT_EQ(spec.seeds, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(spec.target, "accuracy >= 0.8");
  ASSERT_EQ(spec.arms.size(), 3u);
  const AblationArm& base = spec.arms[0];
  EXPECT_EQ(base.name, "baseline");
  EXPECT_EQ(base.config.get_string("train.lr"), "0.001");
  EXPECT_EQ(base.config.get_string("data.max_length"), "16");
  EXPECT_EQ(base.config.get_string("train.target"), "accuracy >= 0.8");
  EXPECT_EQ(base.config.get_string("train.stop_at_target"), "false");
  EXPECT_EQ(base.config.get_string("run.progress"), "none");
  EXPECT_TRUE(base.config.get_path("data.path").is_absolute());
  const AblationArm& sgd = spec.arms[1];
  EXPECT_EQ(sgd.config.get_string("train.optimizer"), "sgd");
  EXPECT_EQ(sgd.config.get_string("train.momentum"), "0.8");
  EXPECT_EQ(sgd.config.get_string("train.lr"), "0.001");  // the baseline's
  EXPECT_EQ(sgd.describe(), "train.momentum=0.8; train.optimizer=sgd");  // toml++ orders keys
  const AblationArm& green = spec.arms[2];
  EXPECT_EQ(green.config.get_string("data.max_length"), "32");
  EXPECT_EQ(green.config.get_string("train.label_smoothing"), "0.1");
  EXPECT_EQ(green.config.get_string("train.lr"), "0.002");  // set wins over the recipe and the baseline
  EXPECT_EQ(green.describe(), "recipe recipes/green.toml; data.max_length=32; train.label_smoothing=0.1; train.lr=0.002");
  EXPECT_EQ(green.where, spec_path() + ":12");
}

TEST_F(AblateSpec, SeedsNameAndCommandLine) {
  AblateOptions o;
  o.sets = {"train.max_steps=2"};
  AblationSpec spec = load("seeds = 3\n[baseline]\nconfig = \"base.toml\"\n[[change]]\nname = \"x\"\nset = { \"train.lr\" = 1e-4 }\n", o);
  EXPECT_EQ(spec.seeds, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(spec.name, "spec");  // the file's stem
  EXPECT_EQ(spec.arms[1].config.get_string("train.max_steps"), "2");  // --set reaches every arm
  o.seeds = 2;
  o.name = "other";
  spec = load("seeds = 3\n[baseline]\nconfig = \"base.toml\"\n[[change]]\nname = \"x\"\nset = { \"train.lr\" = 1e-4 }\n", o);
  EXPECT_EQ(spec.seeds, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(spec.name, "other");
  // The baseline config's own target is kept when the spec names none.
  write("base.toml", "[run]\ndevice = \"cpu\"\n[model]\ntokenizer = \"" + (dir_ / "tok").string() + "\"\n[data]\npath = \"" +
                         (dir_ / "train.tsv").string() + "\"\n[train]\ntarget = \"f1>=0.5\"\nstop_at_target = true\n");
  spec = load(std::string(kHead) + "[[change]]\nname = \"x\"\nset = { \"train.lr\" = 1e-4 }\n");
  EXPECT_EQ(spec.target, "f1>=0.5");
  EXPECT_EQ(spec.arms[1].config.get_string("train.stop_at_target"), "false");
}

TEST_F(AblateSpec, ErrorsNameFileLineAndKey) {
  const std::string change = "[[change]]\nname = \"x\"\nset = { \"train.lr\" = 1e-4 }\n";
  auto spec_error = [&](const std::string& body, const std::vector<std::string>& pieces) {
    expect_error([&] { load(body); }, pieces);
  };
  spec_error("seed = [1]\n[baseline]\nconfig = \"base.toml\"\n" + change,
             {spec_path() + ":1: unknown key 'seed' in the ablation spec (did you mean 'seeds'?)"});
  spec_error(kHead + std::string("[[change]]\nname = \"x\"\nset = { \"train.precison\" = \"bf16\" }\n"),
             {spec_path() + ":6: unknown key 'train.precison' (did you mean 'train.precision'?)"});
  spec_error(kHead + std::string("[[change]]\nname = \"x\"\n[change.set]\ntrain.lr = -1\n"),
             {spec_path() + ":7: train.lr must be positive, got -1"});
  spec_error(kHead + std::string("[[change]]\nname = \"x\"\nset = { \"train.optimizer\" = \"lion\" }\n"),
             {spec_path() + ":6: invalid value 'lion' for train.optimizer (expected one of adamw, adam, sgd)"});
  spec_error(kHead + std::string("[[change]]\nname = \"x\"\nset = { \"data.max_length\" = 16.5 }\n"),
             {spec_path() + ":6", "data.max_length", "expected an integer"});
  spec_error(kHead + change + change, {spec_path() + ":8: change name 'x' is already used (" + spec_path() + ":5)"});
  spec_error(kHead + std::string("[[change]]\nname = \"baseline\"\nset = { \"train.lr\" = 1e-4 }\n"),
             {spec_path() + ":5: change name 'baseline' is the baseline's"});
  spec_error(kHead + std::string("[[change]]\nname = \"a/b\"\nset = { \"train.lr\" = 1e-4 }\n"),
             {spec_path() + ":5: change name 'a/b' must be"});
  spec_error(kHead + std::string("[[change]]\nname = \"x\"\n"), {spec_path() + ":4: change 'x' has neither set nor recipe"});
  spec_error(kHead + std::string("[[change]]\nname = \"x\"\nrecipe = \"recipes/missing.toml\"\n"),
             {spec_path() + ":6: recipe ", "missing.toml: no such file"});
  spec_error(kHead + std::string("[[change]]\nname = \"x\"\nset = { \"run.seed\" = 3 }\n"),
             {spec_path() + ":6: run.seed cannot be set here"});
  spec_error(kHead + std::string("[[change]]\nname = \"x\"\nset = { \"train.lr\" = 1e-4 }\nrepeats = 2\n"),
             {spec_path() + ":7: unknown key 'repeats' in [[change]]"});
  spec_error(std::string("seeds = [1, 1]\n[baseline]\nconfig = \"base.toml\"\n") + change,
             {spec_path() + ":1: seed 1 is listed twice"});
  spec_error(std::string("seeds = [1]\n[baseline]\nconfig = \"nothere.toml\"\n") + change,
             {spec_path() + ":3: baseline.config ", "nothere.toml: no such file"});
  spec_error(std::string("seeds = [1]\ntarget = \"accuracy=0.9\"\n[baseline]\nconfig = \"base.toml\"\n") + change,
             {spec_path() + ":2: target", "accuracy=0.9"});
  spec_error(std::string("seeds = [1]\nmetric = \"acuracy\"\n[baseline]\nconfig = \"base.toml\"\n") + change,
             {spec_path() + ":2: metric 'acuracy' is not one an evaluation reports (did you mean 'accuracy'?)"});
  spec_error(std::string("[baseline]\nconfig = \"base.toml\"\n") + change, {spec_path() + ": no seeds"});
  spec_error(kHead, {spec_path() + ": no [[change]]"});
  spec_error("seeds = [1\n", {spec_path() + ":1:"});
  // Checks across keys and of the device, naming the arm.
  spec_error(kHead + std::string("[[change]]\nname = \"half\"\nset = { \"train.precision\" = \"bf16\" }\n"),
             {spec_path() + ":4: half: train.precision bf16 needs a GPU"});
  spec_error(kHead + std::string("[[change]]\nname = \"both\"\nset = { \"train.tokens_per_step\" = 64, \"train.grad_accum\" = 2 }\n"),
             {spec_path() + ":4: both: config: give train.tokens_per_step or train.grad_accum, not both"});
  spec_error(kHead + std::string("[[change]]\nname = \"gone\"\nset = { \"data.path\" = \"no/such/data.tsv\" }\n"),
             {spec_path() + ":4: gone: data.path no/such/data.tsv: no such file or folder"});
  // A recipe's own errors name the recipe file and line.
  write("recipes/bad.toml", "[train]\nlr = 1e-3\nlabel_smooting = 0.1\n");
  spec_error(kHead + std::string("[[change]]\nname = \"x\"\nrecipe = \"recipes/bad.toml\"\n"),
             {(dir_ / "recipes/bad.toml").string() + ":3: unknown key 'train.label_smooting' (did you mean 'train.label_smoothing'?)"});
  expect_error([&] {
    AblateOptions o;
    o.sets = {"run.seed=4"};
    load(kHead + change, o);
  }, {"--set run.seed: cannot be set here"});
}

}  // namespace
}  // namespace ww::experiment
