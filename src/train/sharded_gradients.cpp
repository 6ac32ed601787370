#include "wattwise/train/sharded_gradients.h"

#include <algorithm>

#include "wattwise/core/error.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/optimizer.h"

namespace ww::train {

// Two slots: a layer's sum runs while the layer below writes the other one.
constexpr int kGradientSlots = 2;

bool ShardedGradients::saves_memory(const std::vector<std::pair<int64_t, int64_t>>& layers, int64_t numel,
                                    int64_t part) {
  int64_t in_layers = 0, largest = 0;
  for (const auto& [begin, end] : layers) {
    in_layers += end - begin;
    largest = std::max(largest, end - begin);
  }
  return int64_t(layers.size()) > kGradientSlots && numel - in_layers + kGradientSlots * largest + part < numel;
}

ShardedGradients::ShardedGradients(dist::ProcessGroup& group, models::ParameterStore& store,
                                   const std::vector<std::pair<int64_t, int64_t>>& layers, OptimizerShard shard)
    : group_(group), store_(store), layers_(layers), shard_(shard), unsummed_(layers.size()) {
  WW_CHECK(!layers_.empty() && shard_.active(), "ZeRO 2's gradients need layers and a sharded optimizer");
  store_.keep_gradients_in_slots(layers_, kGradientSlots);
  int64_t begin = 0;
  for (int64_t count : shard_counts(store_.numel(), group_.size())) {
    shard_begins_.push_back(begin);
    begin += count;
  }
  shard_begins_.push_back(begin);
  part_ = Tensor::zeros({shard_.end - shard_.begin}, DType::F32, store_.flat_values().device());
}

double ShardedGradients::squared_norm(const Tensor& view) {
  if (view.numel() == 0) return 0;
  const double norm = ops::global_grad_norm(view);
  return norm * norm;
}

void ShardedGradients::sum_range(const Tensor& view, int64_t begin, int64_t end) {
  if (begin == end) return;
  // Each rank's share of [begin, end): consecutive, in rank order, as reduce_scatter_sum lays out.
  std::vector<int64_t> counts;
  for (int r = 0; r < group_.size(); ++r)
    counts.push_back(std::max<int64_t>(0, std::min(end, shard_begins_[size_t(r) + 1]) - std::max(begin, shard_begins_[size_t(r)])));
  group_.reduce_scatter_sum(view, counts);
  const int64_t from = std::max(begin, shard_.begin), to = std::min(end, shard_.end);
  if (from < to)
    ops::add_inplace(part_.slice(from - shard_.begin, to - shard_.begin), view.slice(from - begin, to - begin));
}

void ShardedGradients::sum_layer(size_t layer) {
  const auto [begin, end] = layers_[layer];
  if (measuring_) local_sum_of_squares_ += squared_norm(store_.gradient_range(begin, end));
  sum_range(store_.gradient_range(begin, end), begin, end);
  store_.gradient_slot(layer).fill_zero();  // for the layer kGradientSlots below
}

void ShardedGradients::final_from(int64_t boundary) {
  while (unsummed_ > 0 && layers_[unsummed_ - 1].first >= boundary) sum_layer(--unsummed_);
}

void ShardedGradients::finish_micro_batch(bool last_of_step) {
  while (unsummed_ > 0) sum_layer(--unsummed_);
  unsummed_ = layers_.size();
  // The resident gradients: the head's (after the layers) and the embeddings'.
  const int64_t first = layers_.front().first, last = layers_.back().second, numel = store_.numel();
  if (measuring_) {  // they hold this micro-batch's alone only when it is the step's first
    local_sum_of_squares_ += squared_norm(store_.gradient_range(last, numel)) + squared_norm(store_.gradient_range(0, first));
    measuring_ = false;
  }
  if (!last_of_step) return;
  sum_range(store_.gradient_range(last, numel), last, numel);
  sum_range(store_.gradient_range(0, first), 0, first);
}

void ShardedGradients::zero() { part_.fill_zero(); }

size_t ShardedGradients::bytes() const {
  return size_t(store_.gradient_elements() + part_.numel()) * sizeof(float);
}

}  // namespace ww::train
