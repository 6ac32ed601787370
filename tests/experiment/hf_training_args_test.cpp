// Hugging Face TrainingArguments names as wattwise keys (experiment/hf_training_args.h): each
// translation, the same names in --set and in the TOML file, a whole TrainingArguments JSON of
// transformers 5.25 (tests/fixtures/hf/training_args.json: its 114 fields, defaults and a few set),
// and the errors for what wattwise cannot honour.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "test_util.h"
#include "wattwise/experiment/hf_training_args.h"
#include "wattwise/experiment/train_config.h"

using namespace ww;
using namespace ww::experiment;
using ww::testing::expect_error;
namespace fs = std::filesystem;

namespace {

Settings translate(const std::string& name, const std::string& value, const TrainConfig& cfg = TrainConfig()) {
  std::optional<Settings> s = hf_training_argument(name, value, cfg, "test");
  EXPECT_TRUE(s.has_value()) << name;
  return s.value_or(Settings{});
}

using S = Settings;

}  // namespace

TEST(HfTrainingArgs, EachNameStandsForItsWattwiseSettings) {
  EXPECT_EQ(translate("learning_rate", "3e-5"), (S{{"train.lr", "3e-5"}}));
  EXPECT_EQ(translate("train.learning_rate", "3e-5"), (S{{"train.lr", "3e-5"}}));  // with a section
  EXPECT_EQ(translate("num_train_epochs", "2.5"), (S{{"train.epochs", "2.5"}}));
  EXPECT_EQ(translate("gradient_accumulation_steps", "4"), (S{{"train.grad_accum", "4"}}));
  EXPECT_EQ(translate("max_steps", "-1"), (S{{"train.max_steps", "0"}}));  // HF's "by epochs"
  EXPECT_EQ(translate("max_steps", "100"), (S{{"train.max_steps", "100"}}));
  EXPECT_EQ(translate("warmup_steps", "50"), (S{{"train.warmup_steps", "50"}}));
  EXPECT_EQ(translate("warmup_steps", "0.1"), (S{{"train.warmup_steps", "0"}, {"train.warmup_ratio", "0.1"}}));
  EXPECT_EQ(translate("warmup_steps", "0"), (S{{"train.warmup_steps", "0"}, {"train.warmup_ratio", "0"}}));
  EXPECT_EQ(translate("lr_scheduler_type", "constant_with_warmup"), (S{{"train.schedule", "constant"}}));
  EXPECT_EQ(translate("lr_scheduler_type", "Cosine"), (S{{"train.schedule", "cosine"}}));
  EXPECT_EQ(translate("optim", "adamw_torch_fused"), (S{{"train.optimizer", "adamw"}}));
  EXPECT_EQ(translate("optim", "sgd"), (S{{"train.optimizer", "sgd"}}));
  EXPECT_EQ(translate("metric_for_best_model", "eval_f1"), (S{{"train.metric", "f1"}}));
  EXPECT_EQ(translate("gradient_checkpointing", "true"), (S{{"train.checkpointing", "every"}}));
  EXPECT_EQ(translate("eval_strategy", "epoch"), (S{{"train.eval_every", "0"}}));
  EXPECT_EQ(translate("eval_strategy", "steps"), S{});
  EXPECT_EQ(translate("save_strategy", "no"), (S{{"train.checkpoint_every", "0"}}));
  EXPECT_EQ(translate("train_sampling_strategy", "group_by_length"), (S{{"data.length_bucketing", "true"}}));
  EXPECT_EQ(translate("ddp_bucket_cap_mb", "50"), (S{{"train.bucket_mb", "50"}}));
  EXPECT_FALSE(hf_training_argument("lr", "1", TrainConfig(), "test").has_value());  // not an HF name
}

TEST(HfTrainingArgs, PrecisionSwitchesUndoOnlyTheirOwnPrecision) {
  TrainConfig cfg;
  EXPECT_EQ(translate("bf16", "true", cfg), (S{{"train.precision", "bf16"}}));
  EXPECT_EQ(translate("fp16", "false", cfg), S{});  // fp32 stays fp32
  cfg.set("train.precision", "bf16", "test");
  EXPECT_EQ(translate("fp16", "false", cfg), S{});              // bf16 stays
  EXPECT_EQ(translate("bf16", "false", cfg), (S{{"train.precision", "fp32"}}));
  EXPECT_EQ(translate("tf32", "true", cfg), S{});               // TF32 matmuls do not apply to bf16
  EXPECT_EQ(translate("tf32", "true"), (S{{"train.precision", "tf32"}}));
}

TEST(HfTrainingArgs, PerDeviceBatchSizeIsMultipliedByTheRanks) {
  // wattwise's train.batch_size is the job's micro-batch, DDP's per_device_train_batch_size each rank's.
  EXPECT_EQ(translate("per_device_train_batch_size", "16"), (S{{"train.batch_size", "16"}}));
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "0", 1);
  const Settings four = translate("per_device_train_batch_size", "16");
  ::unsetenv("WORLD_SIZE");
  ::unsetenv("RANK");
  EXPECT_EQ(four, (S{{"train.batch_size", "64"}}));
}

TEST(HfTrainingArgs, TheNamesWorkInSetAndInTheTomlFile) {
  TrainConfig cfg;
  cfg.set("learning_rate=2e-4", "--set");
  cfg.set("fp16", "true", "--fp16");
  EXPECT_EQ(cfg.get_float("train.lr"), 2e-4);
  EXPECT_EQ(cfg.get_string("train.precision"), "fp16");
  cfg.merge_toml_text("num_train_epochs = 4\nbf16 = true\n[train]\ngradient_accumulation_steps = 3\n", "cfg.toml");
  EXPECT_EQ(cfg.get_float("train.epochs"), 4);
  EXPECT_EQ(cfg.get_string("train.precision"), "bf16");
  EXPECT_EQ(cfg.get_int("train.grad_accum"), 3);
  // A value the wattwise key refuses names where it came from.
  expect_error([&] { cfg.merge_toml_text("learning_rate = -1\n", "cfg.toml"); }, {"cfg.toml:1", "train.lr"});
  // A misspelt name gets the nearest HF name when no wattwise key is near.
  expect_error([&] { cfg.merge_toml_text("[train]\nlearnin_rate = 3\n", "cfg.toml"); },
               {"cfg.toml:2", "unknown key", "learning_rate"});
}

TEST(HfTrainingArgs, AWholeTrainingArgumentsJsonOfTransformers5) {
  TrainConfig cfg;
  const std::vector<std::string> skipped =
      merge_hf_args_file(cfg, fs::path(WW_SOURCE_DIR) / "tests/fixtures/hf/training_args.json");
  EXPECT_EQ(cfg.get_float("train.lr"), 2e-5);
  EXPECT_EQ(cfg.get_int("train.batch_size"), 16);
  EXPECT_EQ(cfg.get_float("train.epochs"), 1);
  EXPECT_EQ(cfg.get_int("train.max_steps"), 3);
  EXPECT_EQ(cfg.get_float("train.warmup_ratio"), 0.1);
  EXPECT_EQ(cfg.get_int("run.seed"), 7);
  EXPECT_EQ(cfg.get_string("train.schedule"), "cosine");
  EXPECT_EQ(cfg.get_string("train.optimizer"), "adamw");
  EXPECT_EQ(cfg.get_string("train.metric"), "accuracy");
  EXPECT_EQ(cfg.get_int("train.checkpoint_every"), 0);  // save_strategy no
  EXPECT_EQ(cfg.get_float("train.weight_decay"), 0);
  EXPECT_EQ(cfg.get_float("train.max_grad_norm"), 1);
  EXPECT_EQ(cfg.get_string("train.precision"), "fp32");
  const std::set<std::string> skipped_set(skipped.begin(), skipped.end());
  for (const char* field : {"report_to", "do_train", "deepspeed", "tf32", "gradient_checkpointing", "push_to_hub"})
    EXPECT_TRUE(skipped_set.count(field)) << field;
  EXPECT_FALSE(skipped_set.count("learning_rate"));
}

TEST(HfTrainingArgs, WhatWattwiseCannotHonourIsAnErrorNamingTheFileAndField) {
  const fs::path dir = fs::temp_directory_path() / ("ww_hf_args_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto merge = [&](const std::string& json) {
    std::ofstream(dir / "args.json") << json;
    TrainConfig cfg;
    merge_hf_args_file(cfg, dir / "args.json");
  };
  expect_error([&] { merge(R"({"learning_rat": 1e-4})"); }, {"args.json: learning_rat", "did you mean 'learning_rate'"});
  expect_error([&] { merge(R"({"deepspeed": "ds.json"})"); }, {"args.json: deepspeed", "train.zero"});
  expect_error([&] { merge(R"({"lr_scheduler_type": "polynomial"})"); }, {"lr_scheduler_type 'polynomial'", "cosine"});
  expect_error([&] { merge(R"({"train_sampling_strategy": "sequential"})"); }, {"sequential", "run.seed"});
  expect_error([&] { merge(R"({"fp16": "maybe"})"); }, {"args.json: fp16", "true or false"});
  expect_error([&] { merge(R"([1, 2])"); }, {"args.json", "JSON object"});
  expect_error([&] { merge(R"({"learning_rate": )"); }, {"args.json", "not a TrainingArguments JSON"});
  expect_error([&] { merge(R"({"typo_field": null})"); }, {"args.json: typo_field", "does not take"});
  fs::remove_all(dir);
}
