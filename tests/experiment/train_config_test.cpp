#include <gtest/gtest.h>

#include <cmath>
#include <map>

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
  EXPECT_NE(error_of([&] { dropout.set("train.hidden_dropout=1.5"); }).find("train.hidden_dropout"), std::string::npos);
  TrainConfig no_data;
  EXPECT_NE(error_of([&] { no_data.validate(); }).find("data.path"), std::string::npos);
}

// Every number is checked against its key's range as it is set, from a flag, --set or the file; the
// error names the origin, the key, the value and the range, and the value is not taken.
TEST(TrainConfig, EveryNumericKeyHasARange) {
  int ints = 0, floats = 0;
  for (const auto& k : train_config_schema()) {
    if (k.type == "int") {
      ++ints;
      EXPECT_GT(k.int_range.max, k.int_range.min) << k.key;
      EXPECT_GT(k.int_range.min, INT64_MIN) << k.key << ": no documented limit";
      const std::string above = k.int_range.max == INT64_MAX ? "9223372036854775808" : std::to_string(k.int_range.max + 1);
      for (const std::string& bad : {std::to_string(k.int_range.min - 1), above}) {
        TrainConfig c;
        const std::string before = c.get_string(k.key);
        const std::string e = error_of([&] { c.set(k.key, bad, "--" + k.key); });
        EXPECT_NE(e.find("--" + k.key + ": " + k.key + " " + bad + " is out of range (" +
                         std::to_string(k.int_range.min) + ".." + std::to_string(k.int_range.max) + ")"),
                  std::string::npos)
            << e;
        EXPECT_EQ(c.get_string(k.key), before) << k.key;
      }
      TrainConfig c;
      EXPECT_NO_THROW(c.set(k.key, std::to_string(k.int_range.min), "--set")) << k.key;
      EXPECT_NO_THROW(c.set(k.key, std::to_string(k.int_range.max), "--set")) << k.key;
    } else if (k.type == "float") {
      ++floats;
      const FloatRange& r = k.float_range;
      std::vector<double> bad;
      if (std::isfinite(r.min)) bad.push_back(r.min_open ? r.min : r.min - 0.5);
      if (std::isfinite(r.max)) bad.push_back(r.max_open ? r.max : r.max + 0.5);
      EXPECT_FALSE(bad.empty()) << k.key << " has no range";
      for (double v : bad) {
        if (r.unset && v == *r.unset) continue;
        TrainConfig c;
        const std::string e = error_of([&] { c.set(k.key, std::to_string(v), "--" + k.key); });
        EXPECT_NE(e.find("--" + k.key + ": " + k.key + " must "), std::string::npos) << k.key << " " << v << ": " << e;
      }
    }
  }
  EXPECT_GE(ints, 16);
  EXPECT_GE(floats, 17);
}

TEST(TrainConfig, OutOfRangeIntegersNameTheKeyAndRange) {
  TrainConfig c;
  std::string e = error_of([&] { c.set("train.batch_size", "9223372036854775807", "--train.batch_size"); });
  EXPECT_NE(e.find("train.batch_size 9223372036854775807 is out of range (1..1048576)"), std::string::npos) << e;
  // Beyond int64: still "out of range", not "not an integer".
  e = error_of([&] { c.set("train.batch_size", "99999999999999999999", "--train.batch_size"); });
  EXPECT_NE(e.find("train.batch_size 99999999999999999999 is out of range (1..1048576)"), std::string::npos) << e;
  e = error_of([&] { c.set("train.batch_size", "12x", "--train.batch_size"); });
  EXPECT_NE(e.find("invalid value '12x' for train.batch_size (expected an integer)"), std::string::npos) << e;
  e = error_of([&] { c.merge_toml_text("[train]\neval_every = -1\n", "run.toml"); });
  EXPECT_NE(e.find("run.toml:2: train.eval_every -1 is out of range (0..1000000000)"), std::string::npos) << e;
  e = error_of([&] { c.merge_toml_text("[data]\nmax_train_examples = -1\n", "run.toml"); });
  EXPECT_NE(e.find("run.toml:2: data.max_train_examples -1 is out of range"), std::string::npos) << e;
  e = error_of([&] { c.merge_toml_text("[train]\nmomentum = -1\n", "run.toml"); });
  EXPECT_NE(e.find("run.toml:2: train.momentum must be in [0, 1), got -1"), std::string::npos) << e;
  e = error_of([&] { c.set("train.warmup_ratio=1.5"); });
  EXPECT_NE(e.find("--set: train.warmup_ratio must be in [0, 1), got 1.5"), std::string::npos) << e;
  // -1 keeps the model's dropout; other negatives do not.
  EXPECT_NO_THROW(c.set("train.hidden_dropout=-1"));
  e = error_of([&] { c.set("train.hidden_dropout=-0.5"); });
  EXPECT_NE(e.find("train.hidden_dropout must be in [0, 1) (or -1 to keep the model's), got -0.5"), std::string::npos) << e;
  EXPECT_EQ(c.get_int("train.batch_size"), 32);
}

TEST(TrainConfig, RangeTextForTheDocs) {
  const std::map<std::string, std::string> expected = {{"train.batch_size", "1..1048576"},
                                                       {"train.lr", "> 0"},
                                                       {"train.beta1", "[0, 1)"},
                                                       {"train.hidden_dropout", "[0, 1) or -1"},
                                                       {"energy.idle_baseline_s", "[0, 600]"}};
  for (const auto& k : train_config_schema()) {
    auto it = expected.find(k.key);
    if (it != expected.end()) {
      EXPECT_EQ(range_text(k), it->second);
    }
    if (k.type == "string" || k.type == "bool" || k.type == "path") {
      EXPECT_EQ(range_text(k), "") << k.key;
    }
  }
}

// train.class_weights: none, balanced (scikit-learn's n / (K x count) over the training labels) or
// one weight per label; its errors name the key (syntax at validate(), counts and classes when the
// task resolves them against the data).
TEST(TrainConfig, ClassWeightsResolve) {
  EXPECT_TRUE(resolve_class_weights("none", {0, 1, 1}, 2).empty());
  // 8 examples: 6 of class 0, 2 of class 1 -> 8 / (2 x 6) and 8 / (2 x 2).
  const std::vector<float> balanced = resolve_class_weights("balanced", {0, 0, 1, 0, 0, 1, 0, 0}, 2);
  ASSERT_EQ(balanced.size(), 2u);
  EXPECT_FLOAT_EQ(balanced[0], 8.0f / 12.0f);
  EXPECT_FLOAT_EQ(balanced[1], 2.0f);
  EXPECT_EQ(resolve_class_weights("1, 3.5,0.25", {}, 3), (std::vector<float>{1.0f, 3.5f, 0.25f}));
  EXPECT_NE(error_of([] { resolve_class_weights("balanced", {0, 0, 2}, 3, {"neg", "neutral", "pos"}); })
                .find("train.class_weights balanced: class 1 ('neutral') has no example among the 3 training examples"),
            std::string::npos);
  EXPECT_NE(error_of([] { resolve_class_weights("1,2", {}, 3, {"a", "b", "c"}); })
                .find("train.class_weights '1,2': 2 weights for a model with 3 labels (one per label, in label order: a, b, c)"),
            std::string::npos);
  for (const char* bad : {"1,-2", "0,1", "1,inf", "1,nan", "1,,2", "1,", "x", "1e40,1"})
    EXPECT_NE(error_of([&] { resolve_class_weights(bad, {}, 2); }).find("train.class_weights '"), std::string::npos) << bad;

  TrainConfig c;
  c.set("data.path=x");
  c.set("model.tokenizer=t");
  for (const char* ok : {"none", "balanced", "1,3.5"}) {
    c.set("train.class_weights", ok, "test");
    EXPECT_NO_THROW(c.validate()) << ok;
  }
  c.set("train.class_weights", "1,-1", "test");
  EXPECT_EQ(error_of([&] { c.validate(); }),
            "config: train.class_weights '1,-1': weight 2 is -1 (every weight must be a finite number > 0)");
}
