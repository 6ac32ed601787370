#pragma once
// Small classifier configurations and batches that the model and training tests share.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/models/config.h"
#include "wattwise/models/model.h"

namespace ww::testing {

// A tiny encoder of `layers` layers (32 wide, 4 heads) with dropout on.
inline models::ModelConfig small_config(models::Architecture arch, int64_t layers) {
  models::ModelConfig c = models::preset_config(arch, "tiny", 60);
  c.num_layers = layers;
  c.hidden_size = 32, c.num_heads = 4, c.intermediate_size = 48, c.max_position_embeddings = 32;
  c.hidden_dropout = 0.1f, c.attention_dropout = 0.1f, c.classifier_dropout = 0.1f;
  return c;
}

// Three examples of 4, 6 and 8 real tokens padded to 9, labels 1 0 1.
inline models::Batch ragged_batch(bool token_types) {
  const int64_t B = 3, T = 9;
  std::vector<int32_t> ids, mask, types, labels = {1, 0, 1};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      bool real = t < 4 + 2 * b;
      ids.push_back(real ? int32_t(3 + (b * 17 + t * 5) % 55) : 0);
      mask.push_back(real ? 1 : 0);
      types.push_back(real && t > 3 ? 1 : 0);
    }
  models::Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {B, T});
  batch.attention_mask = Tensor::from_vector(mask, {B, T});
  if (token_types) batch.token_type_ids = Tensor::from_vector(types, {B, T});
  batch.labels = Tensor::from_vector(labels, {B});
  return batch;
}

// A three-layer encoder 128 wide (the GPU tests' size).
inline models::ModelConfig test_config(models::Architecture arch, int64_t heads = 2) {
  models::ModelConfig c = models::preset_config(arch, "mini", 100);
  c.num_layers = 3;
  c.hidden_size = 128, c.num_heads = heads, c.intermediate_size = 256, c.max_position_embeddings = 128;
  return c;
}

// B random examples of up to T tokens (the first exactly T) whose label says whether token 5
// appears, with 15% of the labels flipped: a task a model can learn.
inline models::Batch make_batch(int64_t B, int64_t T, uint64_t seed, bool token_types, Device device) {
  Rng rng(seed);
  std::vector<int32_t> ids, mask, types, labels;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t length = b == 0 ? T : std::max<int64_t>(2, T - int64_t(rng.next_u32() % uint32_t(T)));
    const bool positive = rng.next_u32() % 2 == 0;
    const int64_t marker = 1 + int64_t(rng.next_u32() % uint32_t(std::max<int64_t>(1, length - 1)));
    for (int64_t t = 0; t < T; ++t) {
      const bool real = t < length;
      int32_t id = int32_t(6 + rng.next_u32() % 94);
      if (positive && t == marker) id = 5;
      ids.push_back(real ? id : 0);
      mask.push_back(real ? 1 : 0);
      types.push_back(real && t >= length / 2 ? 1 : 0);
    }
    const bool noisy = rng.uniform() < 0.15f;
    labels.push_back((positive != noisy) ? 1 : 0);
  }
  models::Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {B, T}).to(device);
  batch.attention_mask = Tensor::from_vector(mask, {B, T}).to(device);
  if (token_types) batch.token_type_ids = Tensor::from_vector(types, {B, T}).to(device);
  batch.labels = Tensor::from_vector(labels, {B}).to(device);
  return batch;
}

}  // namespace ww::testing
