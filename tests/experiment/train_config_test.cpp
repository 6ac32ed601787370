#include <gtest/gtest.h>

#include "wattwise/core/error.h"
#include "wattwise/experiment/train_config.h"

using namespace ww;
using namespace ww::experiment;

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(TrainConfig, TomlThenSetOverrides) {
  TrainConfig c;
  c.merge_toml_text(R"(
[run]
name = "sst2"
seed = 7
[data]
path = "data/SST-2"
max_length = 64
[train]
lr = 3e-5
epochs = 2
nesterov = true
[model]
tokenizer = "tok"
)", "run.toml");
  c.set("train.lr=1e-4");
  c.set("train.batch_size", "16", "--train.batch_size");
  EXPECT_EQ(c.get_string("run.name"), "sst2");
  EXPECT_EQ(c.get_int("run.seed"), 7);
  EXPECT_EQ(c.get_int("data.max_length"), 64);
  EXPECT_DOUBLE_EQ(c.get_float("train.lr"), 1e-4);
  EXPECT_EQ(c.get_int("train.batch_size"), 16);
  EXPECT_TRUE(c.get_bool("train.nesterov"));
  EXPECT_TRUE(c.is_set("train.epochs"));
  EXPECT_FALSE(c.is_set("train.optimizer"));
  EXPECT_NO_THROW(c.validate());

  // The resolved TOML reads back to the same values.
  TrainConfig again;
  again.merge_toml_text(c.to_toml(), "resolved.toml");
  for (const auto& k : train_config_schema()) EXPECT_EQ(again.get_string(k.key), c.get_string(k.key)) << k.key;
}

TEST(TrainConfig, UnknownKeysSuggestTheNearest) {
  TrainConfig c;
  std::string e = error_of([&] { c.set("train.learning_rat=3"); });
  EXPECT_NE(e.find("unknown key 'train.learning_rat'"), std::string::npos) << e;
  e = error_of([&] { c.set("train.lr_=3"); });
  EXPECT_NE(e.find("did you mean 'train.lr'"), std::string::npos) << e;
  e = error_of([&] { c.merge_toml_text("[train]\nbatchsize = 3\n", "run.toml"); });
  EXPECT_NE(e.find("run.toml:2: unknown key 'train.batchsize' (did you mean 'train.batch_size'?)"), std::string::npos) << e;
  e = error_of([&] { c.merge_toml_text("[nope]\nx = 1\n", "run.toml"); });
  EXPECT_NE(e.find("unknown key 'nope.x'"), std::string::npos) << e;
}

TEST(TrainConfig, InvalidValuesNameTheKey) {
  TrainConfig c;
  std::string e = error_of([&] { c.set("train.batch_size=many"); });
  EXPECT_NE(e.find("invalid value 'many' for train.batch_size"), std::string::npos) << e;
  e = error_of([&] { c.set("train.optimizer=lamb"); });
  EXPECT_NE(e.find("expected one of adamw, adam, sgd"), std::string::npos) << e;
  e = error_of([&] { c.set("train.lr=nan"); });
  EXPECT_NE(e.find("train.lr"), std::string::npos) << e;
  e = error_of([&] { c.merge_toml_text("[train]\nlr = \"fast\"\n", "run.toml"); });
  EXPECT_NE(e.find("run.toml:2: invalid value 'fast' for train.lr"), std::string::npos) << e;
  e = error_of([&] { c.merge_toml_text("[train\nlr = 1\n", "bad.toml"); });
  EXPECT_NE(e.find("bad.toml:1"), std::string::npos) << e;
  e = error_of([&] { c.set("noequals"); });
  EXPECT_NE(e.find("expected key=value"), std::string::npos) << e;
}

TEST(TrainConfig, CrossChecks) {
  TrainConfig c;
  c.set("data.path=x");
  c.set("model.tokenizer=t");
  EXPECT_NO_THROW(c.validate());
  TrainConfig both = c;
  both.set("train.warmup_ratio=0.1");
  both.set("train.warmup_steps=10");
  EXPECT_NE(error_of([&] { both.validate(); }).find("not both"), std::string::npos);
  TrainConfig none = c;
  none.set("train.epochs=0");
  EXPECT_NE(error_of([&] { none.validate(); }).find("train.max_steps"), std::string::npos);
  TrainConfig dropout = c;
  dropout.set("train.hidden_dropout=1.5");
  EXPECT_NE(error_of([&] { dropout.validate(); }).find("train.hidden_dropout"), std::string::npos);
  TrainConfig no_data;
  EXPECT_NE(error_of([&] { no_data.validate(); }).find("data.path"), std::string::npos);
}
