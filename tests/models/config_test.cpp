// Model configs as untrusted input: every size range-checked with its config.json key named, the
// parameter count exact and overflow-checked, and a model that cannot fit (or that its checkpoint
// does not match) refused before anything is allocated.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "test_util.h"
#include "wattwise/models/config.h"
#include "wattwise/models/gpt2.h"
#include "wattwise/models/sequence_classifier.h"

using namespace ww;
using namespace ww::models;
using ww::testing::expect_error;

namespace {

nlohmann::json bert_json() {
  return {{"model_type", "bert"}, {"vocab_size", 100}, {"hidden_size", 32}, {"num_hidden_layers", 2},
          {"num_attention_heads", 2}, {"intermediate_size", 64}, {"max_position_embeddings", 40}};
}
nlohmann::json distilbert_json() {
  return {{"model_type", "distilbert"}, {"vocab_size", 100}, {"dim", 32}, {"n_layers", 2},
          {"n_heads", 2}, {"hidden_dim", 64}, {"max_position_embeddings", 40}};
}

}  // namespace

TEST(ModelConfig, ParameterCountIsTheBuiltModels) {
  for (const nlohmann::json& j : {bert_json(), distilbert_json()})
    for (Pooling pooling : {Pooling::ClsPooler, Pooling::Cls, Pooling::Mean})
      for (int64_t labels : {1, 2, 5}) {
        nlohmann::json with_labels = j;
        with_labels["num_labels"] = labels;
        ModelConfig config = parse_model_config(with_labels, "test");
        config.pooling = pooling;
        SequenceClassifier model(config, Device::cpu());
        EXPECT_EQ(config.parameter_count(), model.parameters().numel())
            << j["model_type"] << " pooling " << pooling_name(pooling) << " labels " << labels;
      }
  for (const char* preset : {"tiny", "mini"}) {
    Gpt2Config config = Gpt2Config::preset(preset, 300);
    Gpt2LMHeadModel model(config, Device::cpu());
    EXPECT_EQ(config.parameter_count(), model.parameters().numel()) << preset;
  }
  EXPECT_EQ(Gpt2Config::preset("small").parameter_count(), 124439808);  // GPT-2 124M, as HF counts it
}

TEST(ModelConfig, OutOfRangeSizesNameTheirKey) {
  auto with = [](nlohmann::json j, const char* key, nlohmann::json value) {
    j[key] = value;
    return j;
  };
  expect_error([&] { parse_model_config(with(bert_json(), "vocab_size", 4000000000LL), "c.json"); },
               {"c.json", "vocab_size 4000000000 is out of range (1..2147483647)"});
  expect_error([&] { parse_model_config(with(bert_json(), "max_position_embeddings", 72057594037927937LL), "c.json"); },
               {"c.json", "max_position_embeddings 72057594037927937 is out of range"});
  expect_error([&] { parse_model_config(with(bert_json(), "num_hidden_layers", 0), "c.json"); },
               {"num_hidden_layers 0 is out of range (1.."});
  expect_error([&] { parse_model_config(with(distilbert_json(), "n_layers", -3), "c.json"); },
               {"n_layers -3 is out of range"});
  expect_error([&] { parse_model_config(with(bert_json(), "pad_token_id", 1099511627776LL), "c.json"); },
               {"c.json", "key 'pad_token_id' = 1099511627776 is out of range (-2147483648..2147483647)"});
  expect_error([&] { parse_model_config(with(bert_json(), "hidden_size", 18446744073709551615ULL), "c.json"); },
               {"c.json", "'hidden_size' = 18446744073709551615 is out of range"});
  expect_error([&] { Gpt2Config::from_json({{"model_type", "gpt2"}, {"n_positions", 72057594037927937LL}}, "g.json"); },
               {"g.json", "n_positions 72057594037927937 is out of range (1..2147483647)"});
  expect_error([&] { Gpt2Config::from_json({{"model_type", "gpt2"}, {"n_embd", 1000000000}, {"n_head", 1}}, "g.json"); },
               {"g.json", "n_embd 1000000000 is out of range (1..536870911)"});
  // In range one by one, but their product does not fit in 64 bits.
  nlohmann::json huge = bert_json();
  huge["hidden_size"] = 2147483646;
  huge["num_attention_heads"] = 2;
  huge["intermediate_size"] = 2147483647;
  huge["num_hidden_layers"] = 2147483647;
  expect_error([&] { parse_model_config(huge, "c.json"); }, {"c.json", "does not fit in 64 bits"});
}

TEST(ModelConfig, AModelThatCannotFitIsRefusedBeforeAllocating) {
  nlohmann::json j = bert_json();
  j["num_hidden_layers"] = 100000000;  // 5e12 parameters: more than any host has
  const ModelConfig config = parse_model_config(j, "c.json");
  expect_error([&] { config.check_fits(Device::cpu(), 4, "c.json"); },
               {"c.json", "parameters (mostly num_hidden_layers 100000000 x hidden_size 32", "is available"});
  // The constructor refuses it too, at once (registering 1.6e9 tensors would take minutes first).
  expect_error([&] { SequenceClassifier model(config, Device::cpu()); }, {"num_hidden_layers 100000000"});
  nlohmann::json wide = bert_json();
  wide["vocab_size"] = 2000000000;
  wide["hidden_size"] = 4096;
  expect_error([&] { SequenceClassifier model(parse_model_config(wide, "c.json"), Device::cpu()); },
               {"mostly vocab_size 2000000000 x hidden_size 4096"});
  Gpt2Config gpt2 = Gpt2Config::preset("tiny", 300);
  gpt2.n_layer = 2000000000;
  expect_error([&] { Gpt2LMHeadModel model(gpt2, Device::cpu()); }, {"mostly n_layer 2000000000 x n_embd"});
}

TEST(ModelConfig, AConfigMuchLargerThanItsCheckpointIsRefused) {
  check_config_matches_checkpoint(1000, "sizes", 990, "m/config.json", "m/model.safetensors");  // a fresh head
  check_config_matches_checkpoint(1000, "sizes", 500, "m/config.json", "m/model.safetensors");
  expect_error([] { check_config_matches_checkpoint(1001, "num_hidden_layers 40", 500, "m/config.json", "m/model.safetensors"); },
               {"m/config.json: describes a model of 1001 parameters (num_hidden_layers 40)",
                "m/model.safetensors holds only 500 values"});
}

// A number JSON cannot hold (1e400) is nlohmann's out_of_range, not a parse_error: it too must be
// one error naming the file (it was "unexpected error" with no file; found by fuzz_model_folder).
TEST(ModelConfig, ANumberOutOfJsonsRangeNamesTheFile) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("wattwise_config_overflow_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir / "config.json");
    out << R"({"model_type": "bert", "hidden_size": 1e400})";
  }
  const std::string file = (dir / "config.json").string();
  expect_error([&] { load_model_config(dir); }, {file + ": malformed JSON", "number overflow"});
  {
    std::ofstream out(dir / "config.json");
    out << R"({"model_type": "gpt2", "n_embd": -1e400})";
  }
  expect_error([&] { Gpt2Config::load(dir); }, {file + ": malformed JSON", "number overflow"});
  std::filesystem::remove_all(dir);
}

// config.json as Hugging Face writes it: Python floats, not float32 values printed as doubles.
TEST(ModelConfig, FloatsAreWrittenAsTheShortestDecimalOfTheFloat) {
  EXPECT_EQ(models::config_json_float(0.02f), 0.02);
  EXPECT_EQ(models::config_json_float(1e-12f), 1e-12);
  EXPECT_EQ(models::config_json_float(0.1f), 0.1);
  EXPECT_EQ(models::config_json_float(0.0f), 0.0);
  EXPECT_EQ(float(models::config_json_float(0.3333333f)), 0.3333333f);  // reads back as the same float
  const std::string text = models::model_config_to_json(models::preset_config(models::Architecture::Bert, "tiny", 30)).dump();
  EXPECT_NE(text.find("\"initializer_range\":0.02"), std::string::npos) << text;
  EXPECT_NE(text.find("\"layer_norm_eps\":1e-12"), std::string::npos) << text;
  EXPECT_EQ(text.find("0.0199999"), std::string::npos) << text;
  const std::string distil = models::model_config_to_json(models::preset_config(models::Architecture::DistilBert, "tiny", 30)).dump();
  EXPECT_NE(distil.find("\"dropout\":0.1"), std::string::npos) << distil;
}
