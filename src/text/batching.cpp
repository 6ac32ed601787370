#include "wattwise/text/batching.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "wattwise/core/error.h"
#include "wattwise/core/rng.h"

namespace ww::text {

static void check_options(const BatchOptions& options) {
  if (options.batch_size < 1) fail("batch_size must be >= 1, got ", options.batch_size);
  if (options.max_length < 1) fail("max_length must be >= 1, got ", options.max_length);
  if (options.pad_to_multiple_of < 1)
    fail("pad_to_multiple_of must be >= 1, got ", options.pad_to_multiple_of);
  if (options.bucket_batches < 1) fail("bucket_batches must be >= 1, got ", options.bucket_batches);
  if (options.prefetch_batches < 1)
    fail("prefetch_batches must be >= 1, got ", options.prefetch_batches);
}

static EncodedExample encode_one(const Tokenizer& tokenizer, const Example& example, int max_length) {
  Encoding encoding;
  try {
    std::optional<std::string_view> pair;
    if (example.text_pair) pair = *example.text_pair;
    encoding = tokenizer.encode(example.text, pair, max_length);
  } catch (const std::exception& e) {
    fail(example.source, ": cannot tokenize: ", e.what());
  }
  if (int64_t(encoding.input_ids.size()) > max_length ||
      encoding.token_type_ids.size() != encoding.input_ids.size())
    fail(example.source, ": the tokenizer returned ", encoding.input_ids.size(), " ids and ",
         encoding.token_type_ids.size(), " token types for max_length ", max_length);
  EncodedExample out;
  out.input_ids = std::move(encoding.input_ids);
  out.token_type_ids = std::move(encoding.token_type_ids);
  out.label = example.label;
  out.target = example.target;
  return out;
}

EncodedExamples encode_examples(const Tokenizer& tokenizer, const std::vector<Example>& examples,
                                int max_length, int num_threads) {
  if (max_length < 1) fail("max_length must be >= 1, got ", max_length);
  EncodedExamples encoded;
  encoded.max_length = max_length;
  encoded.pad_id = tokenizer.pad_id();
  encoded.items.resize(examples.size());
  size_t threads = num_threads > 0 ? size_t(num_threads)
                                   : std::min<size_t>(8, std::max(1u, std::thread::hardware_concurrency()));
  constexpr size_t kChunk = 64;
  threads = std::max<size_t>(1, std::min(threads, (examples.size() + kChunk - 1) / kChunk));

  std::atomic<size_t> next_chunk{0};
  std::mutex error_mutex;
  size_t error_index = SIZE_MAX;  // report the earliest failing example, whatever the scheduling
  std::exception_ptr error;
  auto work = [&] {
    while (true) {
      size_t start = next_chunk.fetch_add(kChunk);
      if (start >= examples.size()) return;
      size_t end = std::min(examples.size(), start + kChunk);
      for (size_t i = start; i < end; ++i) {
        try {
          encoded.items[i] = encode_one(tokenizer, examples[i], max_length);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (i < error_index) {
            error_index = i;
            error = std::current_exception();
          }
          return;
        }
      }
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
  return encoded;
}

namespace {

// The examples of each class present, by label, in example order.
std::map<int32_t, std::vector<size_t>> examples_by_class(const std::vector<int32_t>& labels) {
  std::map<int32_t, std::vector<size_t>> classes;
  for (size_t i = 0; i < labels.size(); ++i) classes[labels[i]].push_back(i);
  return classes;
}

size_t largest_class(const std::map<int32_t, std::vector<size_t>>& classes) {
  size_t largest = 0;
  for (const auto& [label, members] : classes) largest = std::max(largest, members.size());
  return largest;
}

// An epoch's order of class-balanced batches: each class's examples shuffled, repeated (each
// repetition reshuffled) up to the largest class's count, then the classes interleaved.
std::vector<size_t> balanced_order(const std::vector<int32_t>& labels, bool shuffle, Rng& rng) {
  const auto classes = examples_by_class(labels);
  const size_t largest = largest_class(classes);
  std::vector<std::vector<size_t>> lists;
  for (const auto& [label, members] : classes) {
    std::vector<size_t> list;
    while (list.size() < largest) {
      std::vector<size_t> pass = members;
      if (shuffle)
        for (size_t i = pass.size(); i > 1; --i) std::swap(pass[i - 1], pass[rng.below(i)]);
      list.insert(list.end(), pass.begin(), pass.begin() + std::ptrdiff_t(std::min(pass.size(), largest - list.size())));
    }
    lists.push_back(std::move(list));
  }
  std::vector<size_t> order;
  order.reserve(largest * lists.size());
  for (size_t i = 0; i < largest; ++i)
    for (const auto& list : lists) order.push_back(list[i]);
  return order;
}

}  // namespace

int64_t balanced_epoch_examples(const std::vector<int32_t>& labels) {
  const auto classes = examples_by_class(labels);
  return int64_t(classes.size() * largest_class(classes));
}

std::vector<std::vector<size_t>> plan_batches(const std::vector<int64_t>& lengths,
                                              const BatchOptions& options, uint64_t epoch,
                                              const std::vector<int32_t>& labels) {
  check_options(options);
  const size_t batch_size = size_t(options.batch_size);
  std::vector<size_t> order;
  if (options.balance_classes) {
    if (options.length_bucketing) fail("class-balanced batches cannot be length-bucketed (bucketing regroups them by length)");
    if (labels.size() != lengths.size())
      fail("class-balanced batches need a label for each of the ", lengths.size(), " examples (got ", labels.size(), ")");
    Rng rng(options.seed, 2 * epoch);
    order = balanced_order(labels, options.shuffle, rng);
  } else {
    order.resize(lengths.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    // Two streams per epoch: one orders the examples, one the batches.
    if (options.shuffle) {
      Rng rng(options.seed, 2 * epoch);
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    }
  }
  const size_t n = order.size();

  size_t chunk = options.length_bucketing ? batch_size * size_t(options.bucket_batches) : n;
  std::vector<std::vector<size_t>> batches;
  for (size_t chunk_start = 0; chunk_start < n; chunk_start += chunk) {
    auto first = order.begin() + chunk_start;
    auto last = order.begin() + std::min(n, chunk_start + chunk);
    if (options.length_bucketing)  // longest first: without shuffling, memory peaks at step one
      std::stable_sort(first, last, [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
    for (auto it = first; it < last; it += std::min<ptrdiff_t>(batch_size, last - it))
      batches.emplace_back(it, it + std::min<ptrdiff_t>(batch_size, last - it));
  }
  if (options.drop_last)
    batches.erase(std::remove_if(batches.begin(), batches.end(),
                                 [&](const auto& b) { return b.size() < batch_size; }),
                  batches.end());
  if (options.shuffle && options.length_bucketing) {
    Rng rng(options.seed, 2 * epoch + 1);
    for (size_t i = batches.size(); i > 1; --i) std::swap(batches[i - 1], batches[rng.below(i)]);
  }
  return batches;
}

HostBatch make_batch(const std::vector<const EncodedExample*>& encodings,
                     const std::vector<size_t>& example_indices, int32_t pad_id,
                     const BatchOptions& options) {
  WW_CHECK(encodings.size() == example_indices.size(), "one index per encoding");
  int64_t longest = 0;
  for (const EncodedExample* e : encodings) longest = std::max<int64_t>(longest, e->input_ids.size());
  if (longest > options.max_length)
    fail("an encoding has ", longest, " tokens, more than max_length ", options.max_length);
  int64_t seq_len = options.max_length;
  if (!options.pad_to_max_length) {
    int64_t multiple = options.pad_to_multiple_of;
    seq_len = std::min<int64_t>((longest + multiple - 1) / multiple * multiple, options.max_length);
    seq_len = std::max<int64_t>(seq_len, 1);
  }
  HostBatch batch;
  batch.batch = int64_t(encodings.size());
  batch.seq_len = seq_len;
  size_t cells = size_t(batch.batch * seq_len);
  batch.input_ids.assign(cells, pad_id);
  batch.attention_mask.assign(cells, 0);
  batch.token_type_ids.assign(cells, 0);
  batch.labels.reserve(encodings.size());
  batch.targets.reserve(encodings.size());
  batch.example_indices = example_indices;
  for (size_t row = 0; row < encodings.size(); ++row) {
    const EncodedExample& e = *encodings[row];
    size_t offset = row * size_t(seq_len);
    std::copy(e.input_ids.begin(), e.input_ids.end(), batch.input_ids.begin() + offset);
    std::copy(e.token_type_ids.begin(), e.token_type_ids.end(), batch.token_type_ids.begin() + offset);
    std::fill_n(batch.attention_mask.begin() + offset, e.input_ids.size(), 1);
    batch.real_tokens += int64_t(e.input_ids.size());
    batch.labels.push_back(e.label);
    batch.targets.push_back(e.target);
  }
  return batch;
}

// ---- BatchLoader --------------------------------------------------------------------------------

struct BatchLoader::State {
  // Where examples come from: raw text (tokenized here) or cached encodings.
  const Tokenizer* tokenizer = nullptr;
  const std::vector<Example>* examples = nullptr;
  std::shared_ptr<const EncodedExamples> encoded;
  BatchOptions options;
  int32_t pad_id = 0;
  std::vector<std::vector<size_t>> plan;
  int64_t num_examples = 0;

  std::mutex mutex;
  std::condition_variable changed;
  std::deque<HostBatch> queue;
  bool finished = false;
  std::atomic<bool> stopping{false};
  std::exception_ptr error;
  std::thread worker;

  HostBatch build(const std::vector<size_t>& indices) const {
    std::vector<const EncodedExample*> pointers;
    pointers.reserve(indices.size());
    if (encoded) {
      for (size_t i : indices) pointers.push_back(&encoded->items[i]);
      return make_batch(pointers, indices, pad_id, options);
    }
    std::vector<EncodedExample> fresh;
    fresh.reserve(indices.size());
    for (size_t i : indices) fresh.push_back(encode_one(*tokenizer, (*examples)[i], options.max_length));
    for (const EncodedExample& e : fresh) pointers.push_back(&e);
    return make_batch(pointers, indices, pad_id, options);
  }

  void run() {
    try {
      for (const std::vector<size_t>& indices : plan) {
        if (stopping) break;
        HostBatch batch = build(indices);
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return stopping || int64_t(queue.size()) < options.prefetch_batches; });
        if (stopping) break;
        queue.push_back(std::move(batch));
        changed.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mutex);
    finished = true;
    changed.notify_all();
  }

  void start(const std::vector<int64_t>& lengths, const std::vector<int32_t>& labels, uint64_t epoch) {
    plan = plan_batches(lengths, options, epoch, labels);
    for (const auto& indices : plan) num_examples += int64_t(indices.size());
    worker = std::thread([this] { run(); });
  }
};

BatchLoader::BatchLoader(const Tokenizer& tokenizer, const std::vector<Example>& examples,
                         const BatchOptions& options, uint64_t epoch)
    : state_(std::make_unique<State>()) {
  state_->tokenizer = &tokenizer;
  state_->examples = &examples;
  state_->options = options;
  state_->pad_id = tokenizer.pad_id();
  std::vector<int64_t> lengths(examples.size());
  std::vector<int32_t> labels(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    lengths[i] = int64_t(examples[i].text.size() + (examples[i].text_pair ? examples[i].text_pair->size() : 0));
    labels[i] = examples[i].label;
  }
  state_->start(lengths, labels, epoch);
}

BatchLoader::BatchLoader(std::shared_ptr<const EncodedExamples> encoded, const BatchOptions& options,
                         uint64_t epoch)
    : state_(std::make_unique<State>()) {
  if (!encoded) fail("BatchLoader: no encodings given");
  if (encoded->max_length != options.max_length)
    fail("the cached encodings were made with max_length ", encoded->max_length,
         " but the batch options ask for max_length ", options.max_length, "; encode again");
  state_->encoded = std::move(encoded);
  state_->options = options;
  state_->pad_id = state_->encoded->pad_id;
  const auto& items = state_->encoded->items;
  std::vector<int64_t> lengths(items.size());
  std::vector<int32_t> labels(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    lengths[i] = int64_t(items[i].input_ids.size());
    labels[i] = items[i].label;
  }
  state_->start(lengths, labels, epoch);
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping = true;
  }
  state_->changed.notify_all();
  if (state_->worker.joinable()) state_->worker.join();
}

std::optional<HostBatch> BatchLoader::next() {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mutex);
  s.changed.wait(lock, [&] { return !s.queue.empty() || s.finished; });
  if (!s.queue.empty()) {
    HostBatch batch = std::move(s.queue.front());
    s.queue.pop_front();
    s.changed.notify_all();
    return batch;
  }
  if (s.error) std::rethrow_exception(s.error);
  return std::nullopt;
}

int64_t BatchLoader::num_batches() const { return int64_t(state_->plan.size()); }
int64_t BatchLoader::num_examples() const { return state_->num_examples; }

}  // namespace ww::text
