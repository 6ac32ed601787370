// models/parameters.h's gradient slots (ZeRO 2): the layers' gradients in reused slots, the rest
// in one resident buffer, every view where it should be, and misuse named.
#include <gtest/gtest.h>

#include "test_util.h"
#include "wattwise/models/parameters.h"

namespace ww::models {
namespace {

// emb (10) | layer 0: a 6, b 2 | layer 1: a 6, b 2 | layer 2: a 5 | head 3
ParameterStore make_store() {
  ParameterStore store;
  store.add("emb", {10}, true);
  for (int l = 0; l < 3; ++l) {
    store.add("l" + std::to_string(l) + ".a", {l == 2 ? 5 : 6}, true);
    if (l < 2) store.add("l" + std::to_string(l) + ".b", {2}, false);
  }
  store.add("head", {3}, true);
  store.allocate(Device::cpu());
  return store;
}

const std::vector<std::pair<int64_t, int64_t>> kLayers = {{10, 18}, {18, 26}, {26, 31}};

TEST(ParameterStore, GradientsInSlotsLiveInTheLayersSlotsAndAResidentBuffer) {
  ParameterStore store = make_store();
  EXPECT_EQ(store.numel(), 34);
  store.keep_gradients_in_slots(kLayers, 2);
  EXPECT_TRUE(store.gradients_in_slots());
  // Layers 0 and 2 share slot 0; layer 1 has slot 1; the embeddings and head are resident.
  EXPECT_EQ(store.grad("l0.a").raw(), store.grad("l2.a").raw());
  EXPECT_EQ(store.grad("l0.a").raw(), store.gradient_slot(0).raw());
  EXPECT_EQ(store.grad("l1.a").raw(), store.gradient_slot(1).raw());
  EXPECT_EQ(static_cast<float*>(store.grad("l0.b").raw()), static_cast<float*>(store.grad("l0.a").raw()) + 6);
  EXPECT_EQ(static_cast<float*>(store.grad("head").raw()), static_cast<float*>(store.grad("emb").raw()) + 10);
  EXPECT_EQ(store.gradient_elements(), 10 + 3 + 2 * 8);
  EXPECT_EQ(store.gradient_range(18, 26).raw(), store.gradient_slot(1).raw());
  EXPECT_EQ(store.gradient_range(31, 34).raw(), store.grad("head").raw());
  EXPECT_EQ(store.span("l1.a", "l1.b", {8}, true).raw(), store.gradient_slot(1).raw());
  // Misuse: the whole buffer, a range across slots.
  ww::testing::expect_error([&] { store.flat_grads(); }, {"kept per layer in reused slots"});
  EXPECT_THROW(store.gradient_range(16, 20), Error);
  // zero_grad clears every buffer.
  store.grad("emb").copy_from(Tensor::from_vector(std::vector<float>(10, 1.0f), {10}));
  store.grad("l1.b").copy_from(Tensor::from_vector(std::vector<float>(2, 2.0f), {2}));
  store.zero_grad();
  EXPECT_EQ(store.grad("emb").to_float_vector(), std::vector<float>(10, 0.0f));
  EXPECT_EQ(store.grad("l1.b").to_float_vector(), std::vector<float>(2, 0.0f));
}

TEST(ParameterStore, SlotsNeedWholeParametersInAdjacentLayers) {
  ParameterStore store = make_store();
  EXPECT_THROW(store.keep_gradients_in_slots({{10, 17}, {17, 26}}, 2), Error);  // l0.b straddles
  EXPECT_THROW(store.keep_gradients_in_slots({{10, 18}, {20, 26}}, 2), Error);  // a gap
  EXPECT_THROW(store.keep_gradients_in_slots(kLayers, 1), Error);
  // Without slots: one buffer, every range a view of it.
  EXPECT_EQ(store.gradient_range(16, 20).raw(), static_cast<float*>(store.flat_grads().raw()) + 16);
  EXPECT_EQ(store.gradient_elements(), 34);
}

}  // namespace
}  // namespace ww::models
