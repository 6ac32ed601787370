#pragma once
// ZeRO stage 2's gradients: each rank keeps only its part of the summed gradients (the part its
// optimizer shard updates), never the whole buffer. The model's layers write their gradients into
// reused slots (ParameterStore::keep_gradients_in_slots); as soon as backward reports a layer's
// final, its slot is reduce-scattered over the ranks (each rank receiving the sum of the part of
// that layer it owns), added to this rank's part, and zeroed for the layer two below. The
// embeddings' and head's gradients stay resident through the step (GPT-2's tied token embedding
// is written at both ends of backward) and are summed once at its end. Every micro-batch's layers
// are summed (their slots are reused), as DeepSpeed's stage 2 does; ZeRO 0 and 1 sum once per
// optimizer step.
#include <cstdint>
#include <utility>
#include <vector>

#include "wattwise/core/tensor.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/models/parameters.h"
#include "wattwise/train/optimizer.h"

namespace ww::train {

class ShardedGradients {
 public:
  // Whether keeping the gradients in slots holds fewer than the whole buffer (`numel`) on a rank
  // whose part has `part` elements: with two layers or fewer, the slots would hold them all, and
  // the whole buffer reduce-scattered after backward is the smaller.
  static bool saves_memory(const std::vector<std::pair<int64_t, int64_t>>& layers, int64_t numel, int64_t part);
  // `layers` as TrainableModel::layer_gradient_ranges() gives them (non-empty); `shard` this
  // rank's part of the flat buffers (shard_of). Puts `store`'s gradients in slots.
  ShardedGradients(dist::ProcessGroup& group, models::ParameterStore& store,
                   const std::vector<std::pair<int64_t, int64_t>>& layers, OptimizerShard shard);
  // This rank's summed gradients, elements [shard.begin, shard.end): what its optimizer reads.
  const Tensor& part() const { return part_; }
  // Backward has finished every gradient from `boundary` to the end: the layers inside are summed.
  void final_from(int64_t boundary);
  // After a micro-batch's backward (or in its place, on a rank without rows): the layers not summed
  // yet (all of them without a backward), and at the step's last micro-batch the resident
  // gradients too. Every rank sums the same ranges in the same order.
  void finish_micro_batch(bool last_of_step);
  // Adaptive accumulation: the next micro-batch's squared gradient norm on this rank alone, taken
  // from each layer's slot before its sum and from the resident gradients at the micro-batch's end
  // (read with local_sum_of_squares() after finish_micro_batch).
  void measure_next_micro_batch() { measuring_ = true, local_sum_of_squares_ = 0; }
  double local_sum_of_squares() const { return local_sum_of_squares_; }
  // After the optimizer step (or a skipped one): the part back to zeros.
  void zero();
  // Bytes of gradients this rank holds: the store's slots and resident buffer, and the part.
  size_t bytes() const;

 private:
  // Sums `view`, the gradients of the flat elements [begin, end), over the ranks, adding this
  // rank's share of the result to the part.
  void sum_range(const Tensor& view, int64_t begin, int64_t end);
  void sum_layer(size_t layer);
  static double squared_norm(const Tensor& view);

  dist::ProcessGroup& group_;
  models::ParameterStore& store_;
  std::vector<std::pair<int64_t, int64_t>> layers_;
  OptimizerShard shard_;
  std::vector<int64_t> shard_begins_;  // every rank's part begins here (and the last ends at numel)
  Tensor part_;
  size_t unsummed_;  // the layers [0, unsummed_) are not summed yet in this micro-batch
  bool measuring_ = false;
  double local_sum_of_squares_ = 0;
};

}  // namespace ww::train
