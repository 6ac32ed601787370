#pragma once
// From examples to padded host batches. A BatchLoader prepares batches on a background thread
// (tokenizing ahead, or reading cached encodings) into a bounded queue, so the training step never
// waits on text processing. The batch order is a pure function of the examples' lengths, the
// options, the seed and the epoch.
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "wattwise/text/dataset.h"
#include "wattwise/text/tokenizer.h"

namespace ww::text {

struct EncodedExample {
  std::vector<int32_t> input_ids;       // with special tokens, already truncated
  std::vector<int32_t> token_type_ids;
  int32_t label = 0;
  float target = 0.0f;
};

// One split tokenized once, reusable across epochs (tokenizing IMDB every epoch is waste).
struct EncodedExamples {
  int max_length = 0;   // the truncation length the encodings were made with
  int32_t pad_id = 0;   // the tokenizer's padding id
  std::vector<EncodedExample> items;
};

// Tokenizes every example (truncated to max_length) on num_threads threads (0: one per core, at
// most 8). An encoding error is rethrown as ww::Error naming the example's source.
EncodedExamples encode_examples(const Tokenizer& tokenizer, const std::vector<Example>& examples,
                                int max_length, int num_threads = 0);

struct BatchOptions {
  int64_t batch_size = 32;
  int max_length = 128;            // truncation length (tokens, special tokens included)
  bool pad_to_max_length = false;  // else dynamic: pad to the batch's longest
  int pad_to_multiple_of = 1;      // dynamic padding rounds seq_len up to this (8 suits tensor cores)
  // Group similar lengths: sort within chunks of bucket_batches batches by length, cut the chunks
  // into batches, then shuffle the batches (when shuffle is on).
  bool length_bucketing = false;
  int64_t bucket_batches = 100;
  bool shuffle = true;
  // Class-balanced batches (data.balance classes): every class as often as the largest, its
  // examples repeated (reshuffled each time) to make up the count, the classes interleaved so every
  // batch holds them in near-equal numbers. An epoch is then classes × largest count examples.
  // Needs the labels; not with length_bucketing (it regroups by length).
  bool balance_classes = false;
  uint64_t seed = 42;
  bool drop_last = false;          // drop a final batch smaller than batch_size
  int64_t prefetch_batches = 8;    // bound of the loader's queue
};

struct HostBatch {
  int64_t batch = 0, seq_len = 0;
  std::vector<int32_t> input_ids;       // [batch, seq_len], row major, pad_id past each length
  std::vector<int32_t> attention_mask;  // [batch, seq_len], 1 for tokens, 0 for padding
  std::vector<int32_t> token_type_ids;  // [batch, seq_len], 0 on padding
  std::vector<int32_t> labels;          // [batch]
  std::vector<float> targets;           // [batch] regression targets
  std::vector<size_t> example_indices;  // [batch] positions in the loader's example list
  int64_t real_tokens = 0;              // number of non-padding tokens
};

// The batches of one epoch, as example indices. `lengths` are the examples' lengths (tokens, or a
// proxy); only length_bucketing looks at them; `labels` (one per example) only balance_classes.
// Shuffling uses ww::Rng(seed, epoch).
std::vector<std::vector<size_t>> plan_batches(const std::vector<int64_t>& lengths,
                                              const BatchOptions& options, uint64_t epoch,
                                              const std::vector<int32_t>& labels = {});
// Examples in an epoch of class-balanced batches: the number of classes present × the largest
// class's count.
int64_t balanced_epoch_examples(const std::vector<int32_t>& labels);

// Pads encodings into one batch under the options' padding rules.
HostBatch make_batch(const std::vector<const EncodedExample*>& encodings,
                     const std::vector<size_t>& example_indices, int32_t pad_id,
                     const BatchOptions& options);

class BatchLoader {
 public:
  // Tokenizes on the background thread as it goes. `tokenizer` and `examples` must outlive the
  // loader. Length bucketing sorts by text length in bytes here (tokens are not known yet).
  BatchLoader(const Tokenizer& tokenizer, const std::vector<Example>& examples,
              const BatchOptions& options, uint64_t epoch);
  // Reads cached encodings (made with options.max_length); bucketing sorts by token count.
  BatchLoader(std::shared_ptr<const EncodedExamples> encoded, const BatchOptions& options,
              uint64_t epoch);
  // Stops the background thread, even mid-epoch.
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // The next batch, or nullopt at the end of the epoch. An error on the background thread is
  // rethrown here (after the batches prepared before it), with its message.
  std::optional<HostBatch> next();

  int64_t num_batches() const;
  int64_t num_examples() const;  // examples this epoch yields (fewer than given with drop_last)

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ww::text
