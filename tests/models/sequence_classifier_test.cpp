// SequenceClassifier (BERT, DistilBERT): parity with Hugging Face transformers on the committed
// fixtures on every device (logits and loss within 1e-5 absolute, every parameter gradient within
// 1e-4 relative, fp32; the CPU, and CUDA with both attention kernels), padding invariance,
// checkpoint round trips (a MiniLM-sized one from the GPU too) and the errors for checkpoints that do
// not match their config; bare encoder checkpoints loaded with each pooling (seeded head
// initialisation, gradients against finite differences); layer reduction (keep_first_layers). The
// real all-MiniLM-L6-v2 checkpoint is compared with transformers by tests/cli/minilm.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>

#include "cuda_test_util.h"
#include "parity_util.h"
#include "test_util.h"
#include "wattwise/io/safetensors.h"
#include "wattwise/models/sequence_classifier.h"

using namespace ww;
using namespace ww::models;
using ww::testing::batch_from;
using ww::testing::expect_parity;
using ww::testing::measure_parity;
using ww::testing::norm;
namespace fs = std::filesystem;

namespace {

// Forward and backward on `batch` (gradients accumulate onto what is there), then the gradient of
// one weight of every kind against central differences of loss(); returns how many were compared.
// `fixed_dropout`: every forward draws the same masks (seed 5, step 0), so dropout may be on.
int check_gradients_by_finite_differences(SequenceClassifier& model, const Batch& batch, bool fixed_dropout) {
  auto forward = [&] {
    if (fixed_dropout) {
      model.set_dropout_seed(5);
      model.set_dropout_step_for_testing(0);
    }
    model.forward(batch, true);
  };
  forward();
  model.backward();
  const std::vector<float> grads = model.parameters().flat_grads().to_float_vector();
  float* values = model.parameters().flat_values().data<float>();
  int compared = 0;
  for (const auto& p : model.parameters().all()) {
    if (p.name.find("word_embeddings") != std::string::npos) continue;  // mostly unused rows
    const int64_t i = p.offset + shape_numel(p.shape) / 3;
    const float saved = values[i], h = 1e-2f;
    double losses[2];
    for (int side = 0; side < 2; ++side) {
      values[i] = saved + (side ? -h : h);
      forward();
      losses[side] = model.loss();
    }
    values[i] = saved;
    const double numeric = (losses[0] - losses[1]) / (2 * h);
    EXPECT_NEAR(grads[size_t(i)], numeric, 2e-3 + 2e-2 * std::abs(numeric)) << p.name;
    ++compared;
  }
  return compared;
}

fs::path fixture(const std::string& name) { return fs::path(WW_SOURCE_DIR) / "tests" / "fixtures" / name; }

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("wattwise_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void copy_fixture(const std::string& name, const fs::path& to) {
  for (auto& f : fs::directory_iterator(fixture(name))) fs::copy_file(f.path(), to / f.path().filename());
}

class ParityTest : public ::testing::TestWithParam<std::string> {};

}  // namespace

// Logits, loss and every parameter gradient against transformers on the committed fixtures, on each
// device: the CPU, and a CUDA device with the fused attention and with the reference path (the
// inference forward there is a CUDA-graph replay). Skipped with the reason without a GPU.
class ParityOnDevice : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ParityOnDevice, LogitsLossAndEveryGradientMatchTransformers) {
  const auto& [name, device] = GetParam();
  if (device == "cpu") {
    expect_parity(measure_parity(fixture(name)), name);
    return;
  }
  WW_REQUIRE_CUDA();
  for (AttentionKernel attention : {AttentionKernel::Fused, AttentionKernel::Reference})
    expect_parity(measure_parity(fixture(name), Device::cuda(0), attention),
                  name + " on cuda:0, " + attention_kernel_name(attention) + " attention");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ParityOnDevice,
                         ::testing::Combine(::testing::Values("bert_tiny", "distilbert_tiny"),
                                            ::testing::Values("cpu", "cuda")),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

// Full-size fixtures made on demand (scripts/make_parity_fixtures.py --size base), e.g. on the GPU
// machine: WW_PARITY_FIXTURES=/tmp/full/bert_base,/tmp/full/distilbert_base
TEST(ParityExternal, FixturesFromEnvironment) {
  const char* dirs = std::getenv("WW_PARITY_FIXTURES");
  if (!dirs || !*dirs) GTEST_SKIP() << "WW_PARITY_FIXTURES is not set (full-size parity runs on demand)";
  std::stringstream list(dirs);
  std::string dir;
  while (std::getline(list, dir, ',')) expect_parity(measure_parity(dir), dir);
}

TEST_P(ParityTest, PaddingDoesNotChangeLogits) {
  const std::string name = GetParam();
  SequenceClassifier model = SequenceClassifier::from_pretrained(fixture(name), Device::cpu());
  io::SafetensorsFile expected = io::SafetensorsFile::open(fixture(name) / "expected.safetensors");
  const bool bert = model.config().arch == Architecture::Bert;
  Batch batch = batch_from(expected, bert);
  batch.labels = Tensor();
  const int64_t B = batch.input_ids.size(0), T = batch.input_ids.size(1), L = model.config().num_labels;
  std::vector<float> padded = model.forward(batch, false).to_float_vector();
  const int32_t* ids = batch.input_ids.data<int32_t>();
  const int32_t* mask = batch.attention_mask.data<int32_t>();
  const int32_t* types = bert ? batch.token_type_ids.data<int32_t>() : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    int64_t n = 0;
    while (n < T && mask[b * T + n]) ++n;
    // Alone and unpadded, then with 9 extra padding columns.
    for (int64_t width : {n, n + 9}) {
      if (width > model.config().max_position_embeddings) continue;
      std::vector<int32_t> one_ids(size_t(width), 0), one_mask(size_t(width), 0), one_types(size_t(width), 0);
      for (int64_t t = 0; t < n; ++t) {
        one_ids[size_t(t)] = ids[b * T + t];
        one_mask[size_t(t)] = 1;
        if (types) one_types[size_t(t)] = types[b * T + t];
      }
      Batch one;
      one.input_ids = Tensor::from_vector(one_ids, {1, width});
      one.attention_mask = Tensor::from_vector(one_mask, {1, width});
      if (bert) one.token_type_ids = Tensor::from_vector(one_types, {1, width});
      std::vector<float> alone = model.forward(one, false).to_float_vector();
      for (int64_t k = 0; k < L; ++k)
        EXPECT_NEAR(alone[size_t(k)], padded[size_t(b * L + k)], 1e-5) << "example " << b << " width " << width;
    }
  }
}

TEST_P(ParityTest, SaveAndReloadRoundTrips) {
  const std::string name = GetParam();
  SequenceClassifier model = SequenceClassifier::from_pretrained(fixture(name), Device::cpu());
  io::SafetensorsFile expected = io::SafetensorsFile::open(fixture(name) / "expected.safetensors");
  Batch batch = batch_from(expected, model.config().arch == Architecture::Bert);
  std::vector<float> before = model.forward(batch, false).to_float_vector();

  fs::path dir = temp_dir(name + "_save");
  model.save(dir);
  SequenceClassifier reloaded = SequenceClassifier::from_pretrained(dir, Device::cpu());
  EXPECT_EQ(reloaded.forward(batch, false).to_float_vector(), before);
  std::vector<float> a = model.parameters().flat_values().to_float_vector();
  std::vector<float> b = reloaded.parameters().flat_values().to_float_vector();
  EXPECT_EQ(a, b);

  // bf16 storage: the same names, values rounded to bf16, logits close.
  fs::path dir16 = temp_dir(name + "_save_bf16");
  model.save(dir16, DType::BF16);
  io::SafetensorsFile stored = io::SafetensorsFile::open(dir16 / "model.safetensors");
  EXPECT_EQ(stored.tensors().front().dtype, DType::BF16);
  SequenceClassifier half = SequenceClassifier::from_pretrained(dir16, Device::cpu());
  std::vector<float> after = half.forward(batch, false).to_float_vector();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_NEAR(after[i], before[i], 0.05);
  fs::remove_all(dir);
  fs::remove_all(dir16);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ParityTest, ::testing::Values("bert_tiny", "distilbert_tiny"));

TEST(Checkpoint, MismatchesAreClearErrors) {
  fs::path dir = temp_dir("mismatch");
  copy_fixture("bert_tiny", dir);
  SequenceClassifier model = SequenceClassifier::from_pretrained(dir, Device::cpu());

  // A tensor missing from the file.
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& p : model.parameters().all())
    if (p.name != "bert.encoder.layer.1.output.dense.weight") tensors.emplace_back(p.name, p.value);
  io::save_safetensors(dir / "model.safetensors", tensors);
  try {
    SequenceClassifier::from_pretrained(dir, Device::cpu());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor 'bert.encoder.layer.1.output.dense.weight'"), std::string::npos)
        << e.what();
  }

  // An unexpected tensor.
  tensors.clear();
  for (const auto& p : model.parameters().all()) tensors.emplace_back(p.name, p.value);
  tensors.emplace_back("bert.encoder.layer.7.output.dense.weight", model.parameters().all().back().value);
  io::save_safetensors(dir / "model.safetensors", tensors);
  try {
    SequenceClassifier::from_pretrained(dir, Device::cpu());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unexpected tensor 'bert.encoder.layer.7.output.dense.weight'"), std::string::npos)
        << e.what();
  }

  // A shape that disagrees with config.json.
  tensors.pop_back();
  tensors[0].second = Tensor::zeros({3, 3}, DType::F32);
  io::save_safetensors(dir / "model.safetensors", tensors);
  try {
    SequenceClassifier::from_pretrained(dir, Device::cpu());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(tensors[0].first), std::string::npos) << e.what();
  }

  // A bare encoder (no head): an error unless a new head is allowed.
  tensors.clear();
  for (const auto& p : model.parameters().all())
    if (p.name.rfind("bert.", 0) == 0 && p.name.find("pooler") == std::string::npos)
      tensors.emplace_back(p.name.substr(5), p.value);
  io::save_safetensors(dir / "model.safetensors", tensors);
  EXPECT_THROW(SequenceClassifier::from_pretrained(dir, Device::cpu()), Error);
  LoadOptions allow;
  allow.allow_new_head = true;
  SequenceClassifier fresh = SequenceClassifier::from_pretrained(dir, Device::cpu(), allow);
  EXPECT_EQ(fresh.parameters().value("bert.encoder.layer.0.output.dense.weight").to_float_vector(),
            model.parameters().value("bert.encoder.layer.0.output.dense.weight").to_float_vector());
  fs::remove_all(dir);
}

TEST(Config, UnsupportedValuesAreErrors) {
  auto parse = [](const std::string& text) { return parse_model_config(nlohmann::json::parse(text), "config.json"); };
  EXPECT_NO_THROW(parse(R"({"model_type": "bert"})"));
  EXPECT_THROW(parse(R"({"model_type": "bert", "position_embedding_type": "relative_key"})"), Error);
  EXPECT_THROW(parse(R"({"model_type": "distilbert", "sinusoidal_pos_embds": true})"), Error);
  EXPECT_THROW(parse(R"({"model_type": "bert", "hidden_act": "swish"})"), Error);
  EXPECT_THROW(parse(R"({"model_type": "bert", "is_decoder": true})"), Error);
  EXPECT_THROW(parse(R"({"model_type": "roberta"})"), Error);
  EXPECT_THROW(parse(R"({"hidden_size": 8})"), Error);
  EXPECT_THROW(parse(R"({"model_type": "bert", "hidden_size": 10, "num_attention_heads": 3})"), Error);
  EXPECT_THROW(parse(R"({"model_type": "bert", "hidden_size": "big"})"), Error);
  EXPECT_THROW(parse(R"({"model_type": "bert", "num_labels": 3, "id2label": {"0": "a", "1": "b"}})"), Error);
  try {
    parse(R"({"model_type": "bert", "position_embedding_type": "relative_key"})");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json: position_embedding_type 'relative_key'"), std::string::npos);
  }
  ModelConfig labels = parse(R"({"model_type": "distilbert", "id2label": {"0": "NEG", "1": "POS"}})");
  EXPECT_EQ(labels.num_labels, 2);
  EXPECT_EQ(labels.label_name(1), "POS");
  EXPECT_TRUE(parse(R"({"model_type": "bert", "num_labels": 1})").regression);
}

TEST(Model, DropoutIsSeededAndGradientsMatchFiniteDifferences) {
  ModelConfig config = preset_config(Architecture::Bert, "tiny", 50);
  config.hidden_size = 16, config.num_heads = 2, config.intermediate_size = 24, config.max_position_embeddings = 16;
  config.initializer_range = 0.3f;
  SequenceClassifier model(config, Device::cpu());
  model.init_weights(3);
  Batch batch;
  batch.input_ids = Tensor::from_vector(std::vector<int32_t>{5, 9, 13, 2, 7, 0, 0, 3, 4, 11, 12, 0}, {2, 6});
  batch.attention_mask = Tensor::from_vector(std::vector<int32_t>{1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0}, {2, 6});
  batch.labels = Tensor::from_vector(std::vector<int32_t>{1, 0}, {2});

  model.set_dropout_seed(11);
  model.forward(batch, true);
  float with_dropout = model.loss();
  SequenceClassifier twin(config, Device::cpu());
  twin.init_weights(3);
  twin.set_dropout_seed(11);
  twin.forward(batch, true);
  EXPECT_EQ(twin.loss(), with_dropout);  // same seed, same masks
  model.forward(batch, false);
  EXPECT_NE(model.loss(), with_dropout);

  // Finite differences on a few weights of every kind, dropout on (masks are fixed per step).
  model.zero_grad();
  EXPECT_GT(check_gradients_by_finite_differences(model, batch, /*fixed_dropout=*/true), 20);
}

// Class weights (torch's CrossEntropyLoss(weight=w)): the loss is Σ w[y]·nll / Σ w[y] of the logits;
// equal weights change nothing; the gradient of the weighted, smoothed loss matches finite
// differences; bad weights are errors naming the counts and the class.
TEST(Model, ClassWeightsGiveTorchsWeightedMeanAndItsGradient) {
  ModelConfig config = preset_config(Architecture::Bert, "tiny", 50);
  config.hidden_size = 16, config.num_heads = 2, config.intermediate_size = 24, config.max_position_embeddings = 16;
  config.initializer_range = 0.3f;
  SequenceClassifier model(config, Device::cpu());
  model.init_weights(3);
  model.set_dropout(0, 0, 0);
  Batch batch;
  batch.input_ids = Tensor::from_vector(std::vector<int32_t>{5, 9, 13, 2, 7, 0, 3, 4, 11, 12, 0, 0, 8, 6, 2, 0, 0, 0}, {3, 6});
  batch.attention_mask = Tensor::from_vector(std::vector<int32_t>{1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0}, {3, 6});
  batch.labels = Tensor::from_vector(std::vector<int32_t>{1, 0, 1}, {3});

  const std::vector<float> logits = model.forward(batch, false).to_float_vector();
  const float plain_loss = model.loss();
  model.set_class_weights({1.0f, 3.0f});
  EXPECT_EQ(model.class_weights(), (std::vector<float>{1.0f, 3.0f}));
  model.forward(batch, false);
  double weighted = 0;
  const int labels[3] = {1, 0, 1};
  for (int n = 0; n < 3; ++n) {
    const double a = logits[size_t(2 * n)], b = logits[size_t(2 * n + 1)], m = std::max(a, b);
    const double lse = m + std::log(std::exp(a - m) + std::exp(b - m));
    weighted += (labels[n] ? 3.0 : 1.0) * (lse - (labels[n] ? b : a));
  }
  EXPECT_NEAR(model.loss(), weighted / 7.0, 1e-5);  // Σ w[y] = 3 + 1 + 3

  // Equal weights: the same mean and gradients as none.
  model.zero_grad();
  model.set_class_weights({});
  model.forward(batch, true);
  model.backward();
  const std::vector<float> plain_grads = model.parameters().flat_grads().to_float_vector();
  model.zero_grad();
  model.set_class_weights({2.5f, 2.5f});
  model.forward(batch, true);
  EXPECT_NEAR(model.loss(), plain_loss, 1e-6);
  model.backward();
  const std::vector<float> equal_grads = model.parameters().flat_grads().to_float_vector();
  double worst = 0, scale = 0;
  for (size_t i = 0; i < plain_grads.size(); ++i) {
    worst = std::max(worst, double(std::fabs(equal_grads[i] - plain_grads[i])));
    scale = std::max(scale, double(std::fabs(plain_grads[i])));
  }
  EXPECT_LT(worst, 1e-5 * scale);

  // Weighted and smoothed: finite differences of loss() on a few weights of every kind.
  model.set_label_smoothing(0.2f);
  model.set_class_weights({1.0f, 3.0f});
  model.zero_grad();
  EXPECT_GT(check_gradients_by_finite_differences(model, batch, /*fixed_dropout=*/false), 20);

  ww::testing::expect_error([&] { model.set_class_weights({1.0f}); }, {"1 weights for a model with 2 labels"});
  ww::testing::expect_error([&] { model.set_class_weights({1.0f, 0.0f}); }, {"class 1", "finite number > 0"});
}

// ---- bare encoders and poolings ----

namespace ww::models {
// Readable test names in ctest (instead of the enum's bytes).
void PrintTo(Pooling pooling, std::ostream* os) { *os << pooling_name(pooling); }
}  // namespace ww::models

namespace pooling {
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
  EXPECT_GT(check_gradients_by_finite_differences(model, batch, /*fixed_dropout=*/true), 20);
  const std::vector<float> grads = model.parameters().flat_grads().to_float_vector();
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

}  // namespace pooling

// ---- layer reduction ----

namespace ww::models {
namespace {

ModelConfig small_config(Architecture arch, int64_t layers) {
  ModelConfig config = preset_config(arch, "tiny", 40);
  config.hidden_size = 16, config.num_heads = 2, config.intermediate_size = 24, config.max_position_embeddings = 16;
  config.num_layers = layers;
  config.initializer_range = 0.3f;
  return config;
}

Batch sample_batch() {
  Batch batch;
  batch.input_ids = Tensor::from_vector(std::vector<int32_t>{5, 9, 13, 2, 7, 0, 3, 4, 11, 12, 1, 0}, {2, 6});
  batch.attention_mask = Tensor::from_vector(std::vector<int32_t>{1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0}, {2, 6});
  return batch;
}

TEST(LayerReduction, MatchesAModelBuiltWithFewerLayers) {
  for (Architecture arch : {Architecture::Bert, Architecture::DistilBert}) {
    SequenceClassifier full(small_config(arch, 3), Device::cpu());
    full.init_weights(5);
    SequenceClassifier small(small_config(arch, 2), Device::cpu());
    for (const auto& p : small.parameters().all()) {
      const Tensor& from = full.parameters().value(p.name);
      std::copy_n(from.data<float>(), from.numel(), small.parameters().value(p.name).data<float>());
    }
    const std::vector<float> before = full.forward(sample_batch(), false).to_float_vector();
    full.keep_first_layers(2);
    EXPECT_EQ(full.config().num_layers, 2);
    const std::vector<float> reduced = full.forward(sample_batch(), false).to_float_vector();
    const std::vector<float> expected = small.forward(sample_batch(), false).to_float_vector();
    ASSERT_EQ(reduced.size(), expected.size());
    for (size_t i = 0; i < reduced.size(); ++i) EXPECT_NEAR(reduced[i], expected[i], 1e-5f) << i;
    EXPECT_NE(reduced, before);  // the third layer did change the output
  }
}

TEST(LayerReduction, SavesOnlyTheLayersItRunsAndReloads) {
  SequenceClassifier model(small_config(Architecture::Bert, 3), Device::cpu());
  model.init_weights(2);
  model.keep_first_layers(1);
  const auto dir = std::filesystem::temp_directory_path() / ("ww_layers_" + std::to_string(::getpid()));
  model.save(dir);
  SequenceClassifier loaded = SequenceClassifier::from_pretrained(dir, Device::cpu());
  EXPECT_EQ(loaded.config().num_layers, 1);
  EXPECT_EQ(loaded.forward(sample_batch(), false).to_float_vector(), model.forward(sample_batch(), false).to_float_vector());
  std::filesystem::remove_all(dir);
}

TEST(LayerReduction, OutOfRangeIsAnError) {
  SequenceClassifier model(small_config(Architecture::Bert, 3), Device::cpu());
  testing::expect_error([&] { model.keep_first_layers(0); }, {"keep_first_layers(0)", "3 encoder layers"});
  testing::expect_error([&] { model.keep_first_layers(4); }, {"keep_first_layers(4)"});
  model.keep_first_layers(2);
  testing::expect_error([&] { model.keep_first_layers(3); }, {"has 2 encoder layers"});
}

}  // namespace
}  // namespace ww::models

// ---- saving from the GPU ----

// A training model on the GPU saves through one host copy of its flat parameters; at this size
// (22.7M parameters, 91 MB) that copy is its own memory mapping, so writing from it after it was
// freed failed with EFAULT ("Bad address") instead of passing unnoticed as with small models.
TEST(ModelOnGpu, SavesAMiniLMSizedModelAndReadsItBack) {
  WW_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("ww-test-cuda-save-minilm-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ModelConfig config = preset_config(Architecture::Bert, "minilm", 30522);
  config.num_labels = 2;
  SequenceClassifier model(config, gpu);
  model.init_weights(9);
  model.save(dir / "f32", DType::F32);
  SequenceClassifier reloaded = SequenceClassifier::from_pretrained(dir / "f32", Device::cpu());
  EXPECT_EQ(reloaded.parameters().flat_values().to_float_vector(), model.parameters().flat_values().to_float_vector());
  std::filesystem::remove_all(dir);
}
