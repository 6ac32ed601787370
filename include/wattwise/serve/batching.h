#pragma once
// Dynamic batching for `wattwise serve`: a bounded queue of requests and one batcher thread that
// gathers them for at most max_wait (or until a batch is full), picks requests of similar length
// (less padding), runs one forward pass and answers each request. A request is never split: it
// holds at most max_batch inputs (checked when it is parsed).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "wattwise/text/tokenizer.h"

namespace ww::serve {

using Clock = std::chrono::steady_clock;

struct BatchPolicy {
  int64_t max_batch = 32;            // inputs per forward pass
  int64_t max_batch_tokens = 16384;  // padded tokens per forward pass (inputs x longest input)
  std::chrono::microseconds max_wait{5000};  // longest time the oldest request waits for company
};

// What the policy sees of a queued request.
struct QueuedShape {
  int64_t inputs = 1;
  int64_t longest = 0;  // tokens of its longest input
  Clock::time_point arrived;
};

// The policy's decision: the queue positions to run now (empty: wait until wake_at, or for the
// next arrival when the queue is empty).
struct BatchPlan {
  std::vector<size_t> take;
  std::optional<Clock::time_point> wake_at;
};

// The oldest request anchors the batch; the others join closest in length first (ties: oldest
// first) while inputs <= max_batch and inputs x longest <= max_batch_tokens. The batch runs when
// some queued request could not join (it is full), when the oldest has waited max_wait, or when
// `flush` (shutting down). A request too large for any batch alone still runs, alone.
BatchPlan plan_batch(const std::vector<QueuedShape>& queue, const BatchPolicy& policy, Clock::time_point now,
                     bool flush);

// One /predict request's work and, once done, its answer.
struct Job {
  std::vector<text::Encoding> encodings;
  int64_t tokens = 0;   // real tokens (no padding): its share of a batch's energy
  int64_t longest = 0;
  Clock::time_point arrived = Clock::now();
  std::atomic<bool> abandoned{false};  // the client was answered 504: skip it if not yet run

  struct Result {
    std::string error;           // non-empty: the batch failed
    std::vector<float> logits;   // encodings.size() x num_labels
    double joules = 0;           // its share of the batch's energy
    std::string provenance;      // how the batch's energy was obtained
    double queue_seconds = 0;    // from arrival to the start of its batch
    int64_t batch_inputs = 0;    // inputs in the forward pass that ran it
  };
  std::promise<Result> promise;
};

// What running one batch gives back: logits for every input in order, and the batch's energy.
struct BatchOutput {
  std::vector<float> logits;
  double joules = 0;
  std::string provenance;
  std::string error;  // non-empty: the batch failed (its energy still counts)
};

class Batcher {
 public:
  // `run` is called on the batcher thread with the inputs of one batch (the jobs' encodings in
  // order); an exception from it, or an error in its output, fails that batch's jobs only. `on_batch` (optional) sees each
  // batch run: inputs, tokens, joules.
  using RunFn = std::function<BatchOutput(const std::vector<const text::Encoding*>&)>;
  using BatchObserver = std::function<void(int64_t inputs, int64_t tokens, double joules, bool ok)>;
  Batcher(BatchPolicy policy, size_t max_queue, int64_t num_labels, RunFn run, BatchObserver on_batch = {});
  ~Batcher();  // stop()

  enum class Admission { accepted, queue_full, stopping };
  Admission submit(const std::shared_ptr<Job>& job);

  // Runs whatever is queued (no more waiting), then ends the thread. Idempotent.
  void stop();
  size_t queued() const;

 private:
  void loop();
  void run_batch(std::vector<std::shared_ptr<Job>> jobs);

  const BatchPolicy policy_;
  const size_t max_queue_;
  const int64_t num_labels_;
  RunFn run_;
  BatchObserver on_batch_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

// The share of `joules` of each of `tokens` (in proportion; equal shares when all are 0). The
// shares add up to `joules` up to rounding (the last takes what the others leave).
std::vector<double> split_by_tokens(double joules, const std::vector<int64_t>& tokens);

}  // namespace ww::serve
