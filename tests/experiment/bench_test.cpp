// `wattwise bench`'s library side: the FLOP counts against a hand count of every matmul, the case
// table, overrides, errors, and tiny cases (a classifier, GPT-2) measured on the CPU.
#include <gtest/gtest.h>

#include <string>

#include "wattwise/core/error.h"
#include "wattwise/experiment/bench.h"
#include "wattwise/models/gpt2.h"

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

TEST(BenchFlops, Gpt2TrainingMatchesHandCountOfEveryMatmul) {
  BenchCase c;
  c.arch = "gpt2";
  c.preset = "tiny";  // 64 hidden, 2 layers, 4 heads, 64 positions, vocabulary 50,257
  c.batch = 2;
  c.seq_len = 16;
  const models::Gpt2Config config = bench_gpt2_config(c);
  const double V = 50257, C = 64, L = 2, B = 2, T = 16, H = 4, d = 16;
  // Matmul weights and the biases added with them, per token: Q/K/V, attention output, MLP in and out.
  const double layer_weights = (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C);
  const double layer_norms = 2 * (2 * C);
  const double head = V * C;  // the LM head, tied to the token embedding: counted once
  const double P = L * (layer_weights + layer_norms) + 2 * C + head;
  EXPECT_DOUBLE_EQ(gpt2_matmul_params(config), P);
  const double attention = L * B * H * (matmul(T, T, d) + matmul(T, d, T));  // Q·Kᵀ and P·V, full T×T
  const double forward = 2 * P * B * T + attention;
  EXPECT_DOUBLE_EQ(gpt2_train_flops_per_step(config, 2, 16), 3 * forward);

  // The model's parameters are these plus the position embeddings (a lookup: no FLOPs counted).
  models::Gpt2LMHeadModel model(config, Device::cpu());
  EXPECT_EQ(double(model.parameters().numel()), P + double(config.n_positions) * C);
}

TEST(BenchFlops, Gpt2SmallStepIsFourteenTeraflops) {
  // 6 · 123.65M · 16,384 ≈ 12.16 TFLOP + 12 · 12 · 768 · 1024 · 16,384 ≈ 1.86 TFLOP.
  const models::Gpt2Config config = bench_gpt2_config(find_bench_case("gpt2-train-bf16"));
  EXPECT_DOUBLE_EQ(gpt2_matmul_params(config), 123653376.0);
  EXPECT_NEAR(gpt2_train_flops_per_step(config, 16, 1024) / 1e12, 14.01, 0.01);
}

TEST(BenchCases, TableHoldsIssueSixAndEightCases) {
  const char* names[] = {"distilbert-train-bf16", "distilbert-train-fp16", "distilbert-train-fp32",
                         "bert-train-bf16", "bert-infer-fp16-b1", "bert-infer-fp16-b32",
                         "bert-infer-fp16-b256", "distilbert-infer-fp16-b32", "minilm-train-bf16",
                         "gpt2-train-bf16"};
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
  // The IMDB fine-tuning step: all-MiniLM-L6-v2's shape.
  const BenchCase& minilm = find_bench_case("minilm-train-bf16");
  EXPECT_EQ(minilm.preset, "minilm");
  EXPECT_EQ(minilm.batch, 32);
  EXPECT_EQ(minilm.seq_len, 256);
  const models::ModelConfig minilm_config = bench_model_config(minilm, 30522);
  EXPECT_EQ(minilm_config.hidden_size, 384);
  EXPECT_EQ(minilm_config.num_layers, 6);
  EXPECT_EQ(minilm_config.num_heads, 12);
  EXPECT_EQ(minilm_config.intermediate_size, 1536);

  const BenchCase& gpt2 = find_bench_case("gpt2-train-bf16");
  EXPECT_EQ(gpt2.arch, "gpt2");
  EXPECT_EQ(gpt2.preset, "small");
  EXPECT_EQ(gpt2.mode, "train");
  EXPECT_EQ(gpt2.batch, 16);
  EXPECT_EQ(gpt2.seq_len, 1024);
  EXPECT_EQ(gpt2.precision, "bf16");
  const models::Gpt2Config config = bench_gpt2_config(gpt2);
  EXPECT_EQ(config.n_layer, 12);
  EXPECT_EQ(config.n_embd, 768);
  EXPECT_EQ(config.n_head, 12);
  EXPECT_EQ(config.vocab_size, 50257);
  EXPECT_EQ(config.n_positions, 1024);
  EXPECT_EQ(bench_model_config_json(gpt2, 30522)["model_type"], "gpt2");
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

  BenchCase g = find_bench_case("gpt2-train-bf16");
  g.mode = "infer";  // not implemented for GPT-2
  EXPECT_THROW(bench_gpt2_config(g), Error);
  g = find_bench_case("gpt2-train-bf16");
  g.preset = "base";  // not a GPT-2 preset
  EXPECT_THROW(bench_gpt2_config(g), Error);
  g = find_bench_case("gpt2-train-bf16");
  g.preset = "tiny";  // 64 positions < 1024
  EXPECT_THROW(bench_gpt2_config(g), Error);
  EXPECT_THROW(bench_model_config(find_bench_case("gpt2-train-bf16"), 30522), Error);
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

TEST(BenchRun, TinyGpt2TrainingOnCpuCountsTokensAndFlops) {
  BenchCase c = find_bench_case("gpt2-train-bf16");
  c.preset = "tiny";
  c.batch = 2;
  c.seq_len = 8;
  c.precision = "fp32";
  BenchOptions o;
  o.device = "cpu";
  o.steps = 2;
  o.warmup = 1;
  const nlohmann::json r = run_bench_case(c, o);
  EXPECT_EQ(r["case"], "gpt2-train-bf16");
  EXPECT_EQ(r["arch"], "gpt2");
  EXPECT_EQ(r["steps"], 2);
  EXPECT_EQ(r["samples"], 4);
  EXPECT_EQ(r["tokens"], 32);
  EXPECT_NEAR(r["tokens_per_s"].get<double>() * r["elapsed_s"].get<double>(), 32, 1e-9);
  EXPECT_DOUBLE_EQ(r["model_flops_per_step"].get<double>(), gpt2_train_flops_per_step(bench_gpt2_config(c), 2, 8));
  EXPECT_EQ(r["model_config"]["model_type"], "gpt2");
  EXPECT_EQ(r["skipped_steps"], 0);
  EXPECT_TRUE(r["mfu"].is_null());
  // A random-init LM starts near ln(vocabulary) = 10.8.
  EXPECT_GT(r["final_loss"].get<double>(), 9.0);
  EXPECT_LT(r["final_loss"].get<double>(), 12.0);
}

TEST(BenchTable, LanguageModelPeerRowIsPerToken) {
  nlohmann::json ours = {{"tool", "wattwise"}, {"case", "g"}, {"arch", "gpt2"}, {"tokens_per_s", 2000.0},
                         {"samples_per_s", 2.0}, {"j_per_sample", 0.5}, {"energy_j", 10.0}, {"tokens", 1000},
                         {"peak_memory_bytes", 100.0}};
  nlohmann::json peer = {{"tool", "pytorch-eager"}, {"case", "g"}, {"arch", "gpt2"}, {"tokens_per_s", 1000.0},
                         {"samples_per_s", 1.0}, {"j_per_sample", 1.0}, {"energy_j", 20.0}, {"tokens", 1000},
                         {"peak_memory_bytes", 200.0}};
  const std::string table = bench_table({ours, peer});
  EXPECT_NE(table.find("tokens/s x2.00, J/token x0.50, peak memory x0.50"), std::string::npos) << table;
  EXPECT_NE(table.find("10.0000"), std::string::npos) << table;  // mJ/token of ours: 10 J / 1000 tokens
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
