#include "wattwise/serve/batching.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <numeric>

namespace ww::serve {

BatchPlan plan_batch(const std::vector<QueuedShape>& queue, const BatchPolicy& policy, Clock::time_point now,
                     bool flush) {
  BatchPlan plan;
  if (queue.empty()) return plan;
  const QueuedShape& anchor = queue.front();
  // Candidates after the anchor, closest in length first; stable, so ties keep arrival order.
  std::vector<size_t> order(queue.size() - 1);
  std::iota(order.begin(), order.end(), size_t(1));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::llabs(queue[a].longest - anchor.longest) < std::llabs(queue[b].longest - anchor.longest);
  });
  plan.take.push_back(0);
  int64_t inputs = anchor.inputs, longest = anchor.longest;
  bool full = false;
  for (size_t i : order) {
    const int64_t n = inputs + queue[i].inputs, l = std::max(longest, queue[i].longest);
    if (n > policy.max_batch || n * l > policy.max_batch_tokens) {
      full = true;  // a request is left out: waiting longer cannot make this batch bigger
      continue;
    }
    plan.take.push_back(i);
    inputs = n;
    longest = l;
  }
  if (inputs >= policy.max_batch) full = true;
  const Clock::time_point deadline = anchor.arrived + policy.max_wait;
  if (full || flush || now >= deadline) {
    std::sort(plan.take.begin(), plan.take.end());
  } else {
    plan.take.clear();
    plan.wake_at = deadline;
  }
  return plan;
}

std::vector<double> split_by_tokens(double joules, const std::vector<int64_t>& tokens) {
  std::vector<double> shares(tokens.size(), 0.0);
  if (tokens.empty()) return shares;
  const int64_t total = std::accumulate(tokens.begin(), tokens.end(), int64_t(0));
  double given = 0;
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    shares[i] = total > 0 ? joules * double(tokens[i]) / double(total) : joules / double(tokens.size());
    given += shares[i];
  }
  shares.back() = joules - given;
  return shares;
}

Batcher::Batcher(BatchPolicy policy, size_t max_queue, int64_t num_labels, RunFn run, BatchObserver on_batch)
    : policy_(policy), max_queue_(max_queue), num_labels_(num_labels), run_(std::move(run)),
      on_batch_(std::move(on_batch)) {
  thread_ = std::thread([this] { loop(); });
}

Batcher::~Batcher() { stop(); }

Batcher::Admission Batcher::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return Admission::stopping;
    if (queue_.size() >= max_queue_) return Admission::queue_full;
    queue_.push_back(job);
  }
  wake_.notify_one();
  return Admission::accepted;
}

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

size_t Batcher::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

void Batcher::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    // Requests whose clients were already answered 504 leave the queue without running.
    std::erase_if(queue_, [](const std::shared_ptr<Job>& job) { return job->abandoned.load(); });
    if (queue_.empty()) {
      if (stopping_) return;
      wake_.wait(lock);
      continue;
    }
    std::vector<QueuedShape> shapes;
    for (const auto& job : queue_) shapes.push_back({int64_t(job->encodings.size()), job->longest, job->arrived});
    BatchPlan plan = plan_batch(shapes, policy_, Clock::now(), stopping_);
    if (plan.take.empty()) {
      wake_.wait_until(lock, *plan.wake_at);
      continue;
    }
    std::vector<std::shared_ptr<Job>> jobs;
    for (size_t i : plan.take) jobs.push_back(queue_[i]);
    for (size_t k = plan.take.size(); k-- > 0;) queue_.erase(queue_.begin() + std::ptrdiff_t(plan.take[k]));
    lock.unlock();
    run_batch(std::move(jobs));
    lock.lock();
  }
}

void Batcher::run_batch(std::vector<std::shared_ptr<Job>> jobs) {
  const Clock::time_point start = Clock::now();
  std::vector<const text::Encoding*> inputs;
  std::vector<int64_t> tokens;
  int64_t total_tokens = 0;
  for (const auto& job : jobs) {
    for (const auto& e : job->encodings) inputs.push_back(&e);
    tokens.push_back(job->tokens);
    total_tokens += job->tokens;
  }
  BatchOutput out;
  std::string error;
  try {
    out = run_(inputs);
    if (!out.error.empty())
      error = out.error;
    else if (out.logits.size() != inputs.size() * size_t(num_labels_))
      error = "the model gave " + std::to_string(out.logits.size()) + " logits for " + std::to_string(inputs.size()) +
              " inputs";
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (on_batch_) on_batch_(int64_t(inputs.size()), total_tokens, out.joules, error.empty());
  const std::vector<double> shares = split_by_tokens(out.joules, tokens);
  size_t row = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    Job::Result result;
    result.queue_seconds = std::chrono::duration<double>(start - jobs[j]->arrived).count();
    result.batch_inputs = int64_t(inputs.size());
    result.joules = shares[j];
    result.provenance = out.provenance;
    const size_t n = jobs[j]->encodings.size();
    if (error.empty()) {
      result.logits.assign(out.logits.begin() + std::ptrdiff_t(row * size_t(num_labels_)),
                           out.logits.begin() + std::ptrdiff_t((row + n) * size_t(num_labels_)));
    } else {
      result.error = "the batch of " + std::to_string(inputs.size()) + " inputs this request ran in failed: " + error;
    }
    row += n;
    jobs[j]->promise.set_value(std::move(result));
  }
}

}  // namespace ww::serve
