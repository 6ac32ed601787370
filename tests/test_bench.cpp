// `wattwise bench`'s library side: the FLOP count against a hand count of every matmul, the case
// table, overrides, errors, and one tiny case measured on the CPU.
#include <gtest/gtest.h>

#include <string>

#include "wattwise/core/error.h"
#include "wattwise/experiment/bench.h"

namespace ww::experiment {
namespace {

// 2·M·N·K for one [M,K] x [K,N] product.
double matmul(double m, double n, double k) { return 2 * m * n * k; }

TEST(BenchFlops, MatchesHandCountOfEveryMatmul) {
  BenchCase c;
  c.arch = "bert";
  c.preset = "tiny";  // hidden 64, 2 layers, 2 heads, intermediate 256
  const models::ModelConfig config = bench_model_config(c, 30522);
  ASSERT_EQ(config.hidden_size, 64);
  ASSERT_EQ(config.intermediate_size, 256);
  ASSERT_EQ(config.num_layers, 2);
  const double B = 4, T = 16, H = 2, d = 32;
  double layer = matmul(B * T, 3 * 64, 64)      // packed Q, K, V projection
                 + B * H * matmul(T, T, d)       // scores Q·Kᵀ per example and head
                 + B * H * matmul(T, d, T)       // context P·V
                 + matmul(B * T, 64, 64)         // attention output projection
                 + matmul(B * T, 256, 64)        // FFN in
                 + matmul(B * T, 64, 256);       // FFN out
  double head = matmul(B, 64, 64)   // pooler on the [CLS] token
                + matmul(B, 2, 64);  // classifier, 2 labels
  const double forward = 2 * layer + head;
  EXPECT_DOUBLE_EQ(model_flops_per_step(config, 4, 16, /*training=*/false), forward);
  EXPECT_DOUBLE_EQ(model_flops_per_step(config, 4, 16, /*training=*/true), 3 * forward);
}

TEST(BenchFlops, DistilBertBaseTrainingStepIsAboutTwoTeraflops) {
  // 6 layers × (4·768² + 2·768·3072) = 42.5M matmul weights; 32×256 tokens; ×2 (multiply-add),
  // ×3 (training) ≈ 2.09 TFLOP, plus attention 3 × 4·32·256²·768·6 ≈ 0.12 TFLOP.
  const models::ModelConfig config = bench_model_config(find_bench_case("distilbert-train-bf16"), 30522);
  const double flops = model_flops_per_step(config, 32, 256, true);
  EXPECT_NEAR(flops / 1e12, 2.20, 0.01);
}

TEST(BenchCases, TableHoldsIssueSixCases) {
  const char* names[] = {"distilbert-train-bf16", "distilbert-train-fp16", "distilbert-train-fp32",
                         "bert-train-bf16", "bert-infer-fp16-b1", "bert-infer-fp16-b32",
                         "bert-infer-fp16-b256", "distilbert-infer-fp16-b32"};
  ASSERT_EQ(bench_cases().size(), std::size(names));
  for (size_t i = 0; i < std::size(names); ++i) EXPECT_EQ(bench_cases()[i].name, names[i]);

  const BenchCase& fp16 = find_bench_case("distilbert-train-fp16");
  EXPECT_EQ(fp16.arch, "distilbert");
  EXPECT_EQ(fp16.preset, "base");
  EXPECT_EQ(fp16.mode, "train");
  EXPECT_EQ(fp16.batch, 32);
  EXPECT_EQ(fp16.seq_len, 256);
  EXPECT_EQ(fp16.precision, "fp16");

  const BenchCase& b256 = find_bench_case("bert-infer-fp16-b256");
  EXPECT_EQ(b256.arch, "bert");
  EXPECT_EQ(b256.mode, "infer");
  EXPECT_EQ(b256.batch, 256);
  EXPECT_EQ(b256.seq_len, 128);
  EXPECT_EQ(b256.precision, "fp16");
  EXPECT_EQ(find_bench_case("bert-train-bf16").seq_len, 128);
  EXPECT_EQ(find_bench_case("bert-infer-fp16-b1").batch, 1);
}

TEST(BenchCases, UnknownNameListsEveryCase) {
  try {
    find_bench_case("bert-train-int8");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("bert-train-int8"), std::string::npos) << message;
    for (const auto& c : bench_cases()) EXPECT_NE(message.find(c.name), std::string::npos) << message;
  }
}

TEST(BenchCases, OverridesReplaceOnlyGivenFields) {
  BenchOverrides o;
  o.preset = "tiny";
  o.batch = 4;
  const BenchCase c = apply_overrides(find_bench_case("bert-train-bf16"), o);
  EXPECT_EQ(c.preset, "tiny");
  EXPECT_EQ(c.batch, 4);
  EXPECT_EQ(c.seq_len, 128);
  EXPECT_EQ(c.precision, "bf16");
  EXPECT_EQ(c.name, "bert-train-bf16");
}

TEST(BenchCases, BadShapesAreErrors) {
  BenchCase c;
  c.seq_len = 1024;  // beyond 512 positions
  EXPECT_THROW(bench_model_config(c, 30522), Error);
  c = BenchCase{};
  c.mode = "serve";
  EXPECT_THROW(bench_model_config(c, 30522), Error);
  c = BenchCase{};
  c.preset = "huge";
  EXPECT_THROW(bench_model_config(c, 30522), Error);
}

TEST(BenchRun, TinyCaseOnCpuCountsStepsSamplesAndFlops) {
  BenchCase c;
  c.preset = "tiny";
  c.mode = "train";
  c.batch = 2;
  c.seq_len = 8;
  c.precision = "fp32";
  BenchOptions o;
  o.device = "cpu";
  o.steps = 3;
  o.warmup = 1;
  o.peak_tflops = 1.0;
  const nlohmann::json r = run_bench_case(c, o);
  EXPECT_EQ(r["tool"], "wattwise");
  EXPECT_EQ(r["steps"], 3);
  EXPECT_EQ(r["samples"], 6);
  EXPECT_EQ(r["tokens"], 48);
  EXPECT_GT(r["samples_per_s"].get<double>(), 0);
  EXPECT_NEAR(r["samples_per_s"].get<double>() * r["elapsed_s"].get<double>(), 6, 1e-9);
  EXPECT_EQ(r["energy_source"], "cpu");
  EXPECT_GT(r["peak_memory_bytes"].get<double>(), 0);
  const models::ModelConfig config = bench_model_config(c, 30522);
  EXPECT_DOUBLE_EQ(r["model_flops_per_step"].get<double>(), model_flops_per_step(config, 2, 8, true));
  EXPECT_NEAR(r["mfu"].get<double>(), r["achieved_tflops"].get<double>(), 1e-12);
  EXPECT_TRUE(r["final_loss"].is_number());
}

TEST(BenchTable, PeerRowGetsRatios) {
  nlohmann::json ours = {{"tool", "wattwise"}, {"case", "x"}, {"samples_per_s", 300.0}, {"j_per_sample", 0.1},
                         {"peak_memory_bytes", 100.0}};
  nlohmann::json peer = {{"tool", "pytorch-eager"}, {"case", "x"}, {"samples_per_s", 100.0}, {"j_per_sample", 0.4},
                         {"peak_memory_bytes", 200.0}};
  const std::string table = bench_table({ours, peer});
  EXPECT_NE(table.find("samples/s x3.00, J/sample x0.25, peak memory x0.50"), std::string::npos) << table;
}

}  // namespace
}  // namespace ww::experiment
