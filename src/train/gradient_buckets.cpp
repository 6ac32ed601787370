#include "wattwise/train/gradient_buckets.h"

#include "wattwise/core/error.h"

namespace ww::train {

GradientBuckets::GradientBuckets(dist::ProcessGroup& group, const std::vector<int64_t>& boundaries, int64_t numel,
                                 int64_t bucket_elements)
    : group_(group), numel_(numel) {
  WW_CHECK(bucket_elements > 0, "gradient bucket of ", bucket_elements, " elements");
  WW_CHECK(!boundaries.empty() && boundaries.back() == 0, "gradient boundaries must end with 0");
  int64_t end = numel, previous = numel;
  for (int64_t b : boundaries) {
    WW_CHECK(b >= 0 && b < previous, "gradient boundaries must descend from ", numel, " (got ", b, " after ", previous, ")");
    previous = b;
    if (end - b >= bucket_elements || b == 0) {
      buckets_.emplace_back(b, end);
      end = b;
    }
  }
}

void GradientBuckets::launch(const Tensor& grads) {
  const auto [begin, end] = buckets_[next_++];
  group_.all_reduce_sum_overlapped(grads.slice(begin, end));
}

void GradientBuckets::final_from(const Tensor& grads, int64_t boundary) {
  WW_CHECK(grads.numel() == numel_, "gradient buckets of ", numel_, " elements given ", grads.describe());
  while (next_ < buckets_.size() && buckets_[next_].first >= boundary) launch(grads);
}

void GradientBuckets::finish(const Tensor& grads) {
  WW_CHECK(grads.numel() == numel_, "gradient buckets of ", numel_, " elements given ", grads.describe());
  while (next_ < buckets_.size()) launch(grads);
  next_ = 0;
  group_.wait_overlapped();
}

}  // namespace ww::train
