// SequenceClassifier::keep_first_layers: the reduced model computes what a model built with fewer
// layers (and the same weights) computes, saves only what it runs, and rejects out-of-range k.
#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

#include "test_util.h"
#include "wattwise/io/safetensors.h"
#include "wattwise/models/sequence_classifier.h"

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
