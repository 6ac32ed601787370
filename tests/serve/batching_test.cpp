// Dynamic batching without a model: the policy's decisions on hand-made queues, the energy split,
// and the Batcher with a fake forward pass (requests batched together, a failing batch failing only
// its own requests, timed-out requests skipped, stop() answering everything queued). Every wait is
// bounded.
#include <gtest/gtest.h>

#include <atomic>
#include <numeric>

#include "wattwise/serve/batching.h"

namespace ww::serve {
namespace {

using std::chrono::milliseconds;

QueuedShape shape(int64_t inputs, int64_t longest, Clock::time_point arrived) { return {inputs, longest, arrived}; }

TEST(BatchPolicy, WaitsForCompanyUntilMaxWait) {
  BatchPolicy policy{8, 1000, milliseconds(10)};
  const Clock::time_point t0 = Clock::now();
  std::vector<QueuedShape> queue = {shape(1, 10, t0), shape(2, 12, t0 + milliseconds(1))};
  BatchPlan wait = plan_batch(queue, policy, t0 + milliseconds(5), false);
  EXPECT_TRUE(wait.take.empty());
  ASSERT_TRUE(wait.wake_at);
  EXPECT_EQ(*wait.wake_at, t0 + milliseconds(10));
  BatchPlan run = plan_batch(queue, policy, t0 + milliseconds(10), false);
  EXPECT_EQ(run.take, (std::vector<size_t>{0, 1}));
  // Shutting down: no more waiting.
  EXPECT_EQ(plan_batch(queue, policy, t0, true).take, (std::vector<size_t>{0, 1}));
  EXPECT_TRUE(plan_batch({}, policy, t0, false).take.empty());
  EXPECT_FALSE(plan_batch({}, policy, t0, false).wake_at);
}

TEST(BatchPolicy, RunsAtOnceWhenFull) {
  BatchPolicy policy{4, 1000, milliseconds(1000)};
  const Clock::time_point t0 = Clock::now();
  std::vector<QueuedShape> queue = {shape(2, 10, t0), shape(2, 10, t0)};
  EXPECT_EQ(plan_batch(queue, policy, t0, false).take, (std::vector<size_t>{0, 1}));  // 4 inputs: full
  // A request that does not fit makes the batch full too (waiting cannot help it).
  queue = {shape(3, 10, t0), shape(2, 10, t0)};
  EXPECT_EQ(plan_batch(queue, policy, t0, false).take, (std::vector<size_t>{0}));
  // The token budget counts padding: 3 inputs x 300 tokens > 800 leaves the second request out,
  // a short one pads to 300 and fits (2 x 300).
  policy = {8, 800, milliseconds(1000)};
  queue = {shape(1, 300, t0), shape(2, 300, t0), shape(1, 20, t0)};
  EXPECT_EQ(plan_batch(queue, policy, t0, false).take, (std::vector<size_t>{0, 2}));
  // Alone too big for the budget: runs alone rather than never.
  queue = {shape(4, 400, t0)};
  EXPECT_EQ(plan_batch(queue, policy, t0 + milliseconds(1000), false).take, (std::vector<size_t>{0}));
}

TEST(BatchPolicy, GroupsByLength) {
  // The oldest (length 100) takes the closest lengths first: 90 and 120, not 10 or 500.
  BatchPolicy policy{3, 100000, milliseconds(0)};
  const Clock::time_point t0 = Clock::now();
  std::vector<QueuedShape> queue = {shape(1, 100, t0), shape(1, 10, t0), shape(1, 500, t0), shape(1, 90, t0),
                                    shape(1, 120, t0)};
  EXPECT_EQ(plan_batch(queue, policy, t0, false).take, (std::vector<size_t>{0, 3, 4}));
}

TEST(EnergySplit, InProportionToTokensAndSumsToTheBatch) {
  std::vector<double> shares = split_by_tokens(10.0, {1, 3, 6});
  EXPECT_DOUBLE_EQ(shares[0], 1.0);
  EXPECT_DOUBLE_EQ(shares[1], 3.0);
  EXPECT_NEAR(shares[2], 6.0, 1e-12);
  shares = split_by_tokens(1.0 / 3.0, {7, 11, 13, 17});
  EXPECT_EQ(std::accumulate(shares.begin(), shares.end(), 0.0), 1.0 / 3.0);
  EXPECT_EQ(split_by_tokens(2.0, {0, 0}), (std::vector<double>{1.0, 1.0}));
  EXPECT_TRUE(split_by_tokens(2.0, {}).empty());
}

std::shared_ptr<Job> job_of(const std::vector<int32_t>& ids) {
  auto job = std::make_shared<Job>();
  job->encodings.push_back({ids, std::vector<int32_t>(ids.size(), 0), std::vector<int32_t>(ids.size(), 1)});
  job->tokens = int64_t(ids.size());
  job->longest = int64_t(ids.size());
  return job;
}

// A fake forward pass: one logit per input, its first token id; an input starting with -1 fails
// its batch. Energy: 1 J per input.
BatchOutput fake_forward(const std::vector<const text::Encoding*>& inputs) {
  BatchOutput out;
  for (const text::Encoding* e : inputs) {
    if (e->input_ids[0] == -1) throw std::runtime_error("boom");
    out.logits.push_back(float(e->input_ids[0]));
  }
  out.joules = double(inputs.size());
  out.provenance = "fake";
  return out;
}

Job::Result wait_for(std::future<Job::Result>& f) {
  if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "no answer within 10 s";
    return {};
  }
  return f.get();
}

TEST(Batcher, BatchesConcurrentRequestsAndSplitsTheirEnergy) {
  std::atomic<int64_t> batches{0}, largest{0};
  Batcher batcher({8, 1000, milliseconds(200)}, 16, 1, fake_forward, [&](int64_t inputs, int64_t, double, bool) {
    ++batches;
    largest = std::max<int64_t>(largest, inputs);
  });
  std::vector<std::shared_ptr<Job>> jobs;
  std::vector<std::future<Job::Result>> answers;
  for (int i = 0; i < 4; ++i) {
    jobs.push_back(job_of({i + 1, 5, 5, 5}));
    answers.push_back(jobs.back()->promise.get_future());
    ASSERT_EQ(batcher.submit(jobs.back()), Batcher::Admission::accepted);
  }
  double joules = 0;
  for (int i = 0; i < 4; ++i) {
    Job::Result r = wait_for(answers[size_t(i)]);
    EXPECT_TRUE(r.error.empty()) << r.error;
    ASSERT_EQ(r.logits.size(), 1u);
    EXPECT_EQ(r.logits[0], float(i + 1));  // each request gets its own row back
    EXPECT_EQ(r.provenance, "fake");
    joules += r.joules;
  }
  EXPECT_EQ(largest.load(), 4) << "the four requests waited for each other (max wait 200 ms)";
  EXPECT_EQ(batches.load(), 1);
  EXPECT_DOUBLE_EQ(joules, 4.0);
}

TEST(Batcher, AFailingBatchFailsOnlyItsOwnRequests) {
  // max_batch 1: each request is its own batch.
  Batcher batcher({1, 1000, milliseconds(0)}, 16, 1, fake_forward);
  auto good1 = job_of({7}), bad = job_of({-1}), good2 = job_of({9});
  auto f1 = good1->promise.get_future(), fb = bad->promise.get_future(), f2 = good2->promise.get_future();
  for (auto& j : {good1, bad, good2}) ASSERT_EQ(batcher.submit(j), Batcher::Admission::accepted);
  Job::Result r1 = wait_for(f1), rb = wait_for(fb), r2 = wait_for(f2);
  EXPECT_TRUE(r1.error.empty());
  EXPECT_NE(rb.error.find("boom"), std::string::npos) << rb.error;
  EXPECT_TRUE(r2.error.empty());
  EXPECT_EQ(r2.logits.at(0), 9.0f);
}

TEST(Batcher, BoundedQueueAbandonedJobsAndDrainOnStop) {
  // A long max wait: nothing runs until stop() flushes the queue.
  auto batcher = std::make_unique<Batcher>(BatchPolicy{8, 1000, milliseconds(60000)}, 2, 1, fake_forward);
  auto a = job_of({1}), b = job_of({2}), c = job_of({3});
  auto fa = a->promise.get_future(), fb = b->promise.get_future();
  EXPECT_EQ(batcher->submit(a), Batcher::Admission::accepted);
  EXPECT_EQ(batcher->submit(b), Batcher::Admission::accepted);
  EXPECT_EQ(batcher->submit(c), Batcher::Admission::queue_full);
  EXPECT_EQ(batcher->queued(), 2u);
  b->abandoned = true;  // its client got 504: it never runs
  batcher->stop();
  EXPECT_EQ(wait_for(fa).logits.at(0), 1.0f);
  EXPECT_EQ(fb.wait_for(milliseconds(0)), std::future_status::timeout);
  EXPECT_EQ(batcher->submit(job_of({4})), Batcher::Admission::stopping);
}

}  // namespace
}  // namespace ww::serve
