// The backward pass's gradient boundaries (data parallel's bucketed all-reduce starts summing a
// part of the gradients while backward goes on): every family reports its parts in the order it
// finishes them, and when it reports a boundary, no kernel of that backward writes the gradients
// from there to the end again. Checked by snapshotting those gradients at each report (with
// checkpointing too, which recomputes layers inside backward) and comparing with the final ones.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model_test_util.h"
#include "wattwise/models/gpt2.h"
#include "wattwise/models/sequence_classifier.h"

namespace ww::models {
namespace {

void expect_final_at_each_boundary(ModelRuntime& model, const Batch& batch, const std::string& label) {
  SCOPED_TRACE(label);
  const std::vector<int64_t> planned = model.gradient_boundaries();
  ASSERT_GE(planned.size(), 2u);
  for (size_t i = 1; i < planned.size(); ++i) EXPECT_LT(planned[i], planned[i - 1]) << "boundary " << i;
  EXPECT_EQ(planned.back(), 0);
  // The layers' ranges (ZeRO 2 keeps their gradients in reused slots): adjacent, each beginning at
  // its boundary, and untouched until their own layer's backward: all zeros at every report before.
  const std::vector<std::pair<int64_t, int64_t>> layers = model.layer_gradient_ranges();
  ASSERT_EQ(layers.size() + 1, planned.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    EXPECT_EQ(layers[l].first, planned[planned.size() - 2 - l]) << "layer " << l;
    EXPECT_LT(layers[l].first, layers[l].second) << "layer " << l;
    if (l > 0) EXPECT_EQ(layers[l].first, layers[l - 1].second) << "layer " << l;
  }
  EXPECT_LE(layers.back().second, model.parameters().numel());
  std::vector<int64_t> reported;
  std::vector<std::vector<float>> snapshots;
  int untouched_checks = 0;
  model.set_gradients_final_hook([&](int64_t boundary) {
    reported.push_back(boundary);
    const Tensor& g = model.parameters().flat_grads();
    snapshots.push_back(g.slice(boundary, g.numel()).to_float_vector());
    for (size_t l = 0; l < layers.size(); ++l) {
      if (layers[l].second > boundary) continue;  // this layer has run its backward
      const std::vector<float> layer = g.slice(layers[l].first, layers[l].second).to_float_vector();
      EXPECT_EQ(layer, std::vector<float>(layer.size(), 0.0f)) << "layer " << l << " written before its backward";
      ++untouched_checks;
    }
  });
  model.zero_grad();
  model.forward(batch, /*training=*/true);
  model.backward(1.0f);
  model.set_gradients_final_hook(nullptr);
  EXPECT_EQ(reported, planned);
  EXPECT_EQ(untouched_checks, int(layers.size() * (layers.size() - 1) / 2));
  const std::vector<float> final_grads = model.parameters().flat_grads().to_float_vector();
  for (size_t i = 0; i < reported.size(); ++i) {
    const std::vector<float> tail(final_grads.begin() + reported[i], final_grads.end());
    EXPECT_EQ(snapshots[i], tail) << "gradients from " << reported[i] << " changed after they were reported final";
  }
}

TEST(GradientBoundaries, EncodersReportEachLayerThenTheEmbeddings) {
  for (Architecture arch : {Architecture::Bert, Architecture::DistilBert}) {
    for (const char* checkpointing : {"none", "every"}) {
      SequenceClassifier model(testing::small_config(arch, 3), Device::cpu());
      model.init_weights(3);
      ExecutionOptions exec;
      exec.checkpointing = parse_checkpointing(checkpointing);
      model.set_execution(exec);
      expect_final_at_each_boundary(model, testing::ragged_batch(arch == Architecture::Bert),
                                    std::string(arch == Architecture::Bert ? "bert" : "distilbert") + " " + checkpointing);
    }
  }
}

TEST(GradientBoundaries, Gpt2ReportsTheTiedEmbeddingLast) {
  Gpt2LMHeadModel model(Gpt2Config::preset("tiny"), Device::cpu());
  model.init_weights(3);
  Batch batch;
  std::vector<int32_t> ids;
  for (int i = 0; i < 2 * 16; ++i) ids.push_back(int32_t((i * 37) % 500));
  batch.input_ids = Tensor::from_vector(ids, {2, 16});
  batch.labels = batch.input_ids;
  expect_final_at_each_boundary(model, batch, "gpt2");
  // The token embedding (also the head's weight) is at offset 0: it is summed last.
  EXPECT_EQ(model.parameters().all()[0].name, "transformer.wte.weight");
}

}  // namespace
}  // namespace ww::models
