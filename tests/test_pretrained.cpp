// Bare encoder checkpoints (BertModel names: no "bert." prefix, pooler present or absent) loaded as
// sequence classifiers with each pooling (cls-pooler, cls, mean): seeded head initialisation,
// gradients against finite differences, padding invariance, save/reload. The real
// all-MiniLM-L6-v2 checkpoint is compared with transformers by tests/cli/minilm.sh.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "wattwise/io/safetensors.h"
#include "wattwise/models/sequence_classifier.h"

using namespace ww;
using namespace ww::models;
namespace fs = std::filesystem;

namespace ww::models {
// Readable test names in ctest (instead of the enum's bytes).
void PrintTo(Pooling pooling, std::ostream* os) { *os << pooling_name(pooling); }
}  // namespace ww::models

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("wattwise_pretrained_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

ModelConfig tiny_config(Architecture arch = Architecture::Bert) {
  ModelConfig config = preset_config(arch, "tiny", 50);
  config.hidden_size = 16, config.num_heads = 2, config.intermediate_size = 24, config.max_position_embeddings = 16;
  config.initializer_range = 0.3f;
  return config;
}

// A random BERT's encoder written as a bare BertModel checkpoint (names without "bert.").
SequenceClassifier write_bare_encoder(const fs::path& dir, bool with_pooler) {
  SequenceClassifier source(tiny_config(), Device::cpu());
  source.init_weights(3);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& p : source.parameters().all()) {
    if (p.name.rfind("bert.", 0) != 0) continue;  // the classifier
    if (!with_pooler && p.name.find("pooler") != std::string::npos) continue;
    tensors.emplace_back(p.name.substr(5), p.value);
  }
  io::save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  save_model_config(source.config(), dir / "config.json");
  return source;
}

SequenceClassifier load(const fs::path& dir, Pooling pooling, uint64_t seed) {
  LoadOptions options;
  options.allow_new_head = true;
  options.head_seed = seed;
  options.pooling = pooling;
  return SequenceClassifier::from_pretrained(dir, Device::cpu(), options);
}

std::vector<float> values_of(const SequenceClassifier& m, const std::string& name) {
  return m.parameters().value(name).to_float_vector();
}

bool has_param(const SequenceClassifier& m, const std::string& name) {
  for (const auto& p : m.parameters().all())
    if (p.name == name) return true;
  return false;
}

Batch make_batch(const std::vector<std::vector<int32_t>>& rows, int64_t T, const std::vector<int32_t>& labels = {}) {
  std::vector<int32_t> ids, mask;
  for (const auto& r : rows)
    for (int64_t t = 0; t < T; ++t) {
      ids.push_back(t < int64_t(r.size()) ? r[size_t(t)] : 0);
      mask.push_back(t < int64_t(r.size()) ? 1 : 0);
    }
  Batch b;
  const int64_t B = int64_t(rows.size());
  b.input_ids = Tensor::from_vector(ids, {B, T});
  b.attention_mask = Tensor::from_vector(mask, {B, T});
  if (!labels.empty()) b.labels = Tensor::from_vector(labels, {B});
  return b;
}

const Pooling kAllPoolings[] = {Pooling::ClsPooler, Pooling::Cls, Pooling::Mean};

class PoolingTest : public ::testing::TestWithParam<Pooling> {};

std::string pooling_test_name(const ::testing::TestParamInfo<Pooling>& info) {
  std::string name = pooling_name(info.param);
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

}  // namespace

TEST(Pooling, NamesParseAndConfigRoundTrips) {
  for (Pooling p : kAllPoolings) EXPECT_EQ(parse_pooling(pooling_name(p)), p);
  EXPECT_THROW(parse_pooling("max"), Error);
  ModelConfig config = tiny_config();
  EXPECT_FALSE(model_config_to_json(config).contains("wattwise_pooling"));  // default: a plain HF config
  config.pooling = Pooling::Mean;
  nlohmann::json j = model_config_to_json(config);
  EXPECT_EQ(j["wattwise_pooling"], "mean");
  ModelConfig back = parse_model_config(j, "test");
  EXPECT_EQ(back.pooling, Pooling::Mean);
  EXPECT_FALSE(back.extra.contains("wattwise_pooling"));
  j["wattwise_pooling"] = "max";
  try {
    parse_model_config(j, "cfg.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
  }
}

TEST_P(PoolingTest, BareEncoderLoadsWithSeededHead) {
  const Pooling pooling = GetParam();
  for (bool with_pooler : {true, false}) {
    SCOPED_TRACE(with_pooler ? "checkpoint with pooler" : "checkpoint without pooler");
    fs::path dir = temp_dir(std::string("bare_") + pooling_name(pooling) + (with_pooler ? "_p" : ""));
    SequenceClassifier source = write_bare_encoder(dir, with_pooler);
    SequenceClassifier a = load(dir, pooling, 9);
    SequenceClassifier b = load(dir, pooling, 9);
    SequenceClassifier c = load(dir, pooling, 10);
    EXPECT_EQ(a.config().pooling, pooling);
    // The encoder is the checkpoint's.
    const std::string enc = "bert.encoder.layer.1.output.dense.weight";
    EXPECT_EQ(values_of(a, enc), values_of(source, enc));
    // The dense head exists only with cls-pooler; it is the checkpoint's when present there.
    const std::string pooler = "bert.pooler.dense.weight";
    EXPECT_EQ(has_param(a, pooler), pooling == Pooling::ClsPooler);
    if (pooling == Pooling::ClsPooler) {
      if (with_pooler) EXPECT_EQ(values_of(a, pooler), values_of(source, pooler));
      else EXPECT_NE(values_of(a, pooler), values_of(source, pooler));
    }
    // Seeded: same seed, same head; another seed, another head.
    EXPECT_EQ(a.parameters().flat_values().to_float_vector(), b.parameters().flat_values().to_float_vector());
    EXPECT_NE(values_of(a, "classifier.weight"), values_of(c, "classifier.weight"));

    // Save and reload (no new head needed): same logits; the pooling travels in config.json and
    // no pooler tensor is written without the dense head.
    Batch batch = make_batch({{2, 7, 9, 3}, {2, 5, 3}}, 4);
    std::vector<float> logits = a.forward(batch, false).to_float_vector();
    for (float v : logits) EXPECT_TRUE(std::isfinite(v));
    fs::path saved = dir / "saved";
    a.save(saved);
    SequenceClassifier reloaded = SequenceClassifier::from_pretrained(saved, Device::cpu());
    EXPECT_EQ(reloaded.config().pooling, pooling);
    EXPECT_EQ(reloaded.forward(batch, false).to_float_vector(), logits);
    io::SafetensorsCheckpoint written = io::SafetensorsCheckpoint::open(saved);
    EXPECT_EQ(bool(written.find(pooler)), pooling == Pooling::ClsPooler);
    fs::remove_all(dir);
  }
}

TEST_P(PoolingTest, GradientsMatchFiniteDifferences) {
  ModelConfig config = tiny_config();
  config.pooling = GetParam();
  SequenceClassifier model(config, Device::cpu());
  model.init_weights(4);
  // Padding in the second example: mean pooling must route no gradient through it.
  Batch batch = make_batch({{5, 9, 13, 2, 7}, {3, 4, 11, 12}}, 6, {1, 0});
  model.set_dropout_seed(5);
  model.set_dropout_step_for_testing(0);
  model.forward(batch, true);
  model.backward();
  std::vector<float> grads = model.parameters().flat_grads().to_float_vector();
  float* values = model.parameters().flat_values().data<float>();
  int compared = 0;
  for (const auto& p : model.parameters().all()) {
    if (p.name.find("word_embeddings") != std::string::npos) continue;  // mostly unused rows
    const int64_t i = p.offset + shape_numel(p.shape) / 3;
    const float saved = values[i], h = 1e-2f;
    double losses[2];
    for (int side = 0; side < 2; ++side) {
      values[i] = saved + (side ? -h : h);
      model.set_dropout_seed(5);
      model.set_dropout_step_for_testing(0);  // the same dropout masks
      model.forward(batch, true);
      losses[side] = model.loss();
    }
    values[i] = saved;
    const double numeric = (losses[0] - losses[1]) / (2 * h);
    EXPECT_NEAR(grads[size_t(i)], numeric, 2e-3 + 2e-2 * std::abs(numeric)) << p.name;
    ++compared;
  }
  EXPECT_GT(compared, 20);
  // The gradient reaches a padded position's embedding input only through attention keys, which
  // are masked: the position embedding row used only by padding gets no gradient.
  const Parameter* pos = nullptr;
  for (const auto& p : model.parameters().all())
    if (p.name == "bert.embeddings.position_embeddings.weight") pos = &p;
  ASSERT_NE(pos, nullptr);
  const int64_t C = config.hidden_size;
  for (int64_t c = 0; c < C; ++c) EXPECT_EQ(grads[size_t(pos->offset + 5 * C + c)], 0.0f);
}

TEST_P(PoolingTest, PaddingDoesNotChangeLogits) {
  ModelConfig config = tiny_config();
  config.pooling = GetParam();
  SequenceClassifier model(config, Device::cpu());
  model.init_weights(6);
  const std::vector<std::vector<int32_t>> rows = {{2, 7, 9, 3}, {2, 5, 11, 14, 8, 3}, {2, 3}};
  std::vector<float> tight = model.forward(make_batch(rows, 6), false).to_float_vector();
  std::vector<float> padded = model.forward(make_batch(rows, 12), false).to_float_vector();
  ASSERT_EQ(tight.size(), padded.size());
  for (size_t i = 0; i < tight.size(); ++i) EXPECT_NEAR(tight[i], padded[i], 1e-5f) << i;
  // Each example alone (no padding at all) gives its row of the padded batch.
  for (size_t r = 0; r < rows.size(); ++r) {
    std::vector<float> alone = model.forward(make_batch({rows[r]}, int64_t(rows[r].size())), false).to_float_vector();
    for (size_t k = 0; k < alone.size(); ++k) EXPECT_NEAR(alone[k], padded[r * alone.size() + k], 1e-5f);
  }
}

INSTANTIATE_TEST_SUITE_P(All, PoolingTest, ::testing::ValuesIn(kAllPoolings), pooling_test_name);

TEST(Pooling, DistilBertWithoutDenseHeadHasNoPreClassifier) {
  ModelConfig config = tiny_config(Architecture::DistilBert);
  EXPECT_TRUE([&] {
    SequenceClassifier m(config, Device::cpu());
    return has_param(m, "pre_classifier.weight");
  }());
  config.pooling = Pooling::Mean;
  SequenceClassifier model(config, Device::cpu());
  EXPECT_FALSE(has_param(model, "pre_classifier.weight"));
  model.init_weights(1);
  for (float v : model.forward(make_batch({{2, 7, 3}}, 3), false).to_float_vector()) EXPECT_TRUE(std::isfinite(v));
}

TEST(Pooling, PoolerInCheckpointIsIgnoredWithoutDenseHead) {
  // A fine-tuned BERT classifier (pooler + classifier) reloaded with mean pooling: the pooler is
  // dropped, the classifier kept.
  fs::path dir = temp_dir("ignore_pooler");
  SequenceClassifier source(tiny_config(), Device::cpu());
  source.init_weights(8);
  source.save(dir);
  LoadOptions options;
  options.pooling = Pooling::Mean;
  SequenceClassifier m = SequenceClassifier::from_pretrained(dir, Device::cpu(), options);
  EXPECT_FALSE(has_param(m, "bert.pooler.dense.weight"));
  EXPECT_EQ(values_of(m, "classifier.weight"), values_of(source, "classifier.weight"));
  fs::remove_all(dir);
}
