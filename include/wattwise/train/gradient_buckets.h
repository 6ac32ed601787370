#pragma once
// DDP's bucketed all-reduce: the gradients summed over the ranks in parts of about a bucket's
// size, each as soon as backward has finished it (the model's gradient boundaries), while backward
// goes on (ProcessGroup::all_reduce_sum_overlapped). Buckets are cut only at the boundaries, so a
// layer's gradients are never split; a part larger than a bucket is a bucket of its own.
#include <cstdint>
#include <utility>
#include <vector>

#include "wattwise/core/tensor.h"
#include "wattwise/dist/process_group.h"

namespace ww::train {

// DDP's default bucket_cap_mb: 25 MiB of f32 gradients.
inline constexpr int64_t kDefaultBucketBytes = int64_t(25) << 20;

class GradientBuckets {
 public:
  // `boundaries` as TrainableModel::gradient_boundaries() gives them (descending, ending with 0),
  // `numel` the flat gradient buffer's size, `bucket_elements` > 0.
  GradientBuckets(dist::ProcessGroup& group, const std::vector<int64_t>& boundaries, int64_t numel,
                  int64_t bucket_elements);
  // The parts [begin, end) in the order they are summed: the same on every rank, so a rank whose
  // backward did not run (no rows in this micro-batch) sums the same parts in finish().
  const std::vector<std::pair<int64_t, int64_t>>& buckets() const { return buckets_; }
  // Backward has finished every gradient from `boundary` to the end: the buckets inside start.
  void final_from(const Tensor& grads, int64_t boundary);
  // The buckets not started yet, then waits for all of them; ready for the next step.
  void finish(const Tensor& grads);

 private:
  void launch(const Tensor& grads);
  dist::ProcessGroup& group_;
  int64_t numel_;
  std::vector<std::pair<int64_t, int64_t>> buckets_;
  size_t next_ = 0;
};

}  // namespace ww::train
