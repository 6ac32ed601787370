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
  std::vector<int64_t> reported;
  std::vector<std::vector<float>> snapshots;
  model.set_gradients_final_hook([&](int64_t boundary) {
    reported.push_back(boundary);
    const Tensor& g = model.parameters().flat_grads();
    snapshots.push_back(g.slice(boundary, g.numel()).to_float_vector());
  });
  model.zero_grad();
  model.forward(batch, /*training=*/true);
  model.backward(1.0f);
  model.set_gradients_final_hook(nullptr);
  EXPECT_EQ(reported, planned);
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
