// DDP's bucketed all-reduce with thread ranks over Gloo: buckets are cut at the model's gradient
// boundaries, start as backward passes each boundary (while the main thread goes on), sum what
// one all-reduce sums, and a rank whose peer stopped gets the error when it waits.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "dist_test_util.h"
#include "wattwise/core/error.h"
#include "wattwise/train/gradient_buckets.h"

namespace ww::train {
namespace {

using Buckets = std::vector<std::pair<int64_t, int64_t>>;

dist::JoinOptions join_options() {
  dist::JoinOptions o;
  o.timeout = std::chrono::seconds(60);
  return o;
}

TEST(GradientBuckets, CutAtBoundariesOnceABucketIsFull) {
  // One rank: the plan only (its sums are the values themselves).
  const ww::testing::Rendezvous rendezvous;
  auto group = dist::join(rendezvous.world(0, 1), Device::cpu(), join_options());
  EXPECT_EQ(GradientBuckets(*group, {900, 600, 300, 0}, 1000, 250).buckets(),
            (Buckets{{600, 1000}, {300, 600}, {0, 300}}));
  EXPECT_EQ(GradientBuckets(*group, {900, 600, 300, 0}, 1000, 1).buckets(),
            (Buckets{{900, 1000}, {600, 900}, {300, 600}, {0, 300}}));
  EXPECT_EQ(GradientBuckets(*group, {900, 600, 300, 0}, 1000, 5000).buckets(), (Buckets{{0, 1000}}));
  EXPECT_THROW(GradientBuckets(*group, {600, 900, 0}, 1000, 10), Error);  // not descending
  EXPECT_THROW(GradientBuckets(*group, {600}, 1000, 10), Error);          // no final 0
}

TEST(GradientBuckets, SumsLikeOneAllReduceAndRanksWithoutBackwardJoinIn) {
  const int ranks = 3;
  const ww::testing::Rendezvous rendezvous;
  const int64_t n = 1000;
  const std::vector<int64_t> boundaries = {900, 600, 300, 0};
  std::vector<std::vector<float>> got(ranks);
  const auto errors = ww::testing::run_ranks(ranks, [&](int rank) {
    auto group = dist::join(rendezvous.world(rank, ranks), Device::cpu(), join_options());
    GradientBuckets buckets(*group, boundaries, n, 250);
    std::vector<float> values(n);
    for (int round = 0; round < 2; ++round) {
      for (int64_t i = 0; i < n; ++i) values[size_t(i)] = float((rank + 1) * (i % 13)) + float(round);
      const Tensor grads = Tensor::from_vector(values, {n});
      // Rank 2 runs no backward (no rows): it sums the same buckets in finish().
      if (rank != 2)
        for (int64_t b : boundaries) buckets.final_from(grads, b);
      buckets.finish(grads);
      got[rank] = grads.to_float_vector();
    }
  });
  for (int r = 0; r < ranks; ++r) ASSERT_EQ(errors[r], "") << "rank " << r;
  for (int r = 0; r < ranks; ++r)
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(got[r][size_t(i)], float(6 * (i % 13)) + 3.0f) << "rank " << r << " element " << i;
}

TEST(GradientBuckets, APeerThatStoppedIsAnErrorWhenWaiting) {
  const int ranks = 2;
  const ww::testing::Rendezvous rendezvous;
  std::string waited_error;
  const auto errors = ww::testing::run_ranks(ranks, [&](int rank) {
    auto group = dist::join(rendezvous.world(rank, ranks), Device::cpu(), join_options());
    group->barrier();
    if (rank == 1) return;  // leaves: its group closes its connections
    GradientBuckets buckets(*group, {0}, 100, 10);
    const Tensor grads = Tensor::zeros({100}, DType::F32);
    buckets.final_from(grads, 0);
    try {
      buckets.finish(grads);
    } catch (const Error& e) {
      waited_error = e.what();
    }
  });
  EXPECT_EQ(errors[0], "");
  EXPECT_NE(waited_error.find("another rank stopped or cannot be reached"), std::string::npos) << waited_error;
}

}  // namespace
}  // namespace ww::train
