// Batching: the batch plan, padding, truncation, length bucketing, and the loader thread (order,
// errors, shutdown mid-epoch).
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <numeric>
#include <optional>
#include <thread>
#include <vector>

#include "test_util.h"
#include "text/whitespace_tokenizer.h"
#include "wattwise/core/error.h"
#include "wattwise/core/rng.h"
#include "wattwise/text/batching.h"
#include "wattwise/text/dataset.h"

using namespace ww;
using namespace ww::text;

namespace {
using ww::testing::expect_error;
using ww::text::testing::WhitespaceTokenizer;
}  // namespace

// ---- batching -----------------------------------------------------------------------------------

namespace {

std::vector<Example> numbered_examples(size_t n, uint64_t seed = 5) {
  Rng rng(seed);
  std::vector<Example> examples(n);
  for (size_t i = 0; i < n; ++i) {
    size_t words = 1 + rng.below(60);
    for (size_t w = 0; w < words; ++w) {
      examples[i].text += 'w';
      examples[i].text += std::to_string(rng.below(50));
      examples[i].text += ' ';
    }
    examples[i].label = int32_t(i % 3);
    examples[i].target = float(i);
    examples[i].source = "mem:" + std::to_string(i);
  }
  return examples;
}

std::vector<HostBatch> drain(BatchLoader& loader) {
  std::vector<HostBatch> batches;
  while (std::optional<HostBatch> batch = loader.next()) batches.push_back(std::move(*batch));
  return batches;
}

std::vector<size_t> order_of(const std::vector<HostBatch>& batches) {
  std::vector<size_t> order;
  for (const HostBatch& b : batches) order.insert(order.end(), b.example_indices.begin(), b.example_indices.end());
  return order;
}

int64_t padding(const std::vector<HostBatch>& batches) {
  int64_t pad = 0;
  for (const HostBatch& b : batches) pad += b.batch * b.seq_len - b.real_tokens;
  return pad;
}

}  // namespace

TEST(Batching, PlanCoversEveryExampleOnceAndIsDeterministic) {
  std::vector<int64_t> lengths(103);
  for (size_t i = 0; i < lengths.size(); ++i) lengths[i] = int64_t((i * 37) % 61);
  BatchOptions options;
  options.batch_size = 10;
  options.shuffle = false;
  auto plain = plan_batches(lengths, options, 0);
  ASSERT_EQ(plain.size(), 11u);
  EXPECT_EQ(plain.back().size(), 3u);
  std::vector<size_t> flat;
  for (const auto& b : plain) flat.insert(flat.end(), b.begin(), b.end());
  for (size_t i = 0; i < flat.size(); ++i) EXPECT_EQ(flat[i], i);  // no shuffle: file order

  for (bool bucketing : {false, true}) {
    SCOPED_TRACE(bucketing);
    options.shuffle = true;
    options.length_bucketing = bucketing;
    options.bucket_batches = 3;
    auto a = plan_batches(lengths, options, 1);
    EXPECT_EQ(a, plan_batches(lengths, options, 1));
    EXPECT_NE(a, plan_batches(lengths, options, 2));
    BatchOptions other = options;
    other.seed = 43;
    EXPECT_NE(a, plan_batches(lengths, other, 1));
    std::multiset<size_t> all;
    for (const auto& b : a) all.insert(b.begin(), b.end());
    EXPECT_EQ(all.size(), 103u);
    EXPECT_EQ(std::set<size_t>(all.begin(), all.end()).size(), 103u);
    options.drop_last = true;
    auto dropped = plan_batches(lengths, options, 1);
    EXPECT_EQ(dropped.size(), 10u);
    for (const auto& b : dropped) EXPECT_EQ(b.size(), 10u);
    options.drop_last = false;
  }
}

// data.balance classes on an unbalanced set (70 / 20 / 10 of three classes): every class as often as
// the largest, each example of a class used before any is repeated, every batch of 6 holding two of
// each class; deterministic per seed and epoch; refused with length bucketing or without labels.
TEST(Batching, ClassBalancedBatchesOnAnUnbalancedSet) {
  std::vector<int32_t> labels;
  for (int i = 0; i < 100; ++i) labels.push_back(i < 70 ? 0 : i < 90 ? 1 : 2);
  const std::vector<int64_t> lengths(labels.size(), 8);
  BatchOptions options;
  options.batch_size = 6;
  options.balance_classes = true;
  EXPECT_EQ(balanced_epoch_examples(labels), 210);
  const auto plan = plan_batches(lengths, options, 3, labels);
  ASSERT_EQ(plan.size(), 35u);  // 210 / 6
  std::map<size_t, int> uses;
  for (const auto& batch : plan) {
    ASSERT_EQ(batch.size(), 6u);
    int per_class[3] = {0, 0, 0};
    for (size_t i : batch) ++per_class[labels[i]], ++uses[i];
    EXPECT_EQ(per_class[0], 2);
    EXPECT_EQ(per_class[1], 2);
    EXPECT_EQ(per_class[2], 2);
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    const int expected = labels[i] == 0 ? 1 : labels[i] == 1 ? 3 : 7;  // 70/70, 70/20 = 3.5, 70/10
    if (labels[i] == 1) {
      EXPECT_TRUE(uses[i] == 3 || uses[i] == 4) << i;  // 3 whole passes and half of a fourth
    } else {
      EXPECT_EQ(uses[i], expected) << i;
    }
  }
  // Class 1's fourth pass takes each example once before any is taken five times (a pass is a
  // shuffled copy of the class): exactly 10 of its 20 examples are used 4 times.
  int fourth = 0;
  for (size_t i = 70; i < 90; ++i) fourth += uses[i] == 4;
  EXPECT_EQ(fourth, 10);
  EXPECT_EQ(plan, plan_batches(lengths, options, 3, labels));
  EXPECT_NE(plan, plan_batches(lengths, options, 4, labels));
  options.length_bucketing = true;
  ww::testing::expect_error([&] { plan_batches(lengths, options, 3, labels); }, {"cannot be length-bucketed"});
  options.length_bucketing = false;
  ww::testing::expect_error([&] { plan_batches(lengths, options, 3, {}); }, {"need a label for each of the 100"});
}

TEST(Batching, DynamicVersusMaxLengthPadding) {
  EncodedExample a{{1, 7, 8, 2}, {0, 0, 0, 0}, 1, 0.5f};
  EncodedExample b{{1, 9, 2, 5, 2}, {0, 0, 0, 1, 1}, 0, 1.5f};
  BatchOptions options;
  options.max_length = 12;
  HostBatch dynamic = make_batch({&a, &b}, {4, 9}, 0, options);
  EXPECT_EQ(dynamic.batch, 2);
  EXPECT_EQ(dynamic.seq_len, 5);
  EXPECT_EQ(dynamic.input_ids, (std::vector<int32_t>{1, 7, 8, 2, 0, 1, 9, 2, 5, 2}));
  EXPECT_EQ(dynamic.attention_mask, (std::vector<int32_t>{1, 1, 1, 1, 0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(dynamic.token_type_ids, (std::vector<int32_t>{0, 0, 0, 0, 0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(dynamic.labels, (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(dynamic.targets, (std::vector<float>{0.5f, 1.5f}));
  EXPECT_EQ(dynamic.example_indices, (std::vector<size_t>{4, 9}));
  EXPECT_EQ(dynamic.real_tokens, 9);

  options.pad_to_multiple_of = 8;
  EXPECT_EQ(make_batch({&a, &b}, {0, 1}, 0, options).seq_len, 8);
  options.pad_to_multiple_of = 1;
  options.pad_to_max_length = true;
  HostBatch full = make_batch({&a, &b}, {0, 1}, 3, options);
  EXPECT_EQ(full.seq_len, 12);
  EXPECT_EQ(full.input_ids.size(), 24u);
  EXPECT_EQ(full.input_ids[11], 3);  // the pad id given
  EXPECT_EQ(std::accumulate(full.attention_mask.begin(), full.attention_mask.end(), 0), 9);
}

TEST(Batching, TruncationRespectsMaxLength) {
  WhitespaceTokenizer tokenizer;
  std::vector<Example> examples(2);
  examples[0].text = "one two three four five six seven eight nine ten";
  examples[1].text = "short";
  examples[1].text_pair = "a much longer second segment of many words";
  BatchOptions options;
  options.max_length = 8;
  options.shuffle = false;
  EncodedExamples encoded = encode_examples(tokenizer, examples, 8);
  EXPECT_EQ(encoded.items[0].input_ids.size(), 8u);
  EXPECT_EQ(encoded.items[1].input_ids.size(), 8u);
  EXPECT_EQ(encoded.items[1].token_type_ids, (std::vector<int32_t>{0, 0, 0, 1, 1, 1, 1, 1}));
  BatchLoader loader(tokenizer, examples, options, 0);
  std::vector<HostBatch> batches = drain(loader);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].seq_len, 8);
  EXPECT_EQ(std::vector<int32_t>(batches[0].input_ids.begin(), batches[0].input_ids.begin() + 8),
            encoded.items[0].input_ids);
}

TEST(Batching, LengthBucketingReducesPadding) {
  WhitespaceTokenizer tokenizer;
  std::vector<Example> examples = numbered_examples(2000);
  auto encoded = std::make_shared<EncodedExamples>(encode_examples(tokenizer, examples, 64));
  BatchOptions options;
  options.batch_size = 16;
  options.max_length = 64;
  BatchLoader plain(encoded, options, 0);
  int64_t plain_padding = padding(drain(plain));
  options.length_bucketing = true;
  options.bucket_batches = 20;
  BatchLoader bucketed(encoded, options, 0);
  std::vector<HostBatch> batches = drain(bucketed);
  int64_t bucketed_padding = padding(batches);
  EXPECT_LT(bucketed_padding * 4, plain_padding) << bucketed_padding << " vs " << plain_padding;
  std::vector<size_t> order = order_of(batches);
  EXPECT_EQ(std::set<size_t>(order.begin(), order.end()).size(), examples.size());
  options.pad_to_max_length = true;
  BatchLoader full(encoded, options, 0);
  EXPECT_GT(padding(drain(full)), plain_padding);
  std::printf("[ info ] padding tokens over the epoch: dynamic %lld, bucketed %lld\n",
              (long long)plain_padding, (long long)bucketed_padding);
}

TEST(Batching, LoaderYieldsEveryExampleOncePerEpoch) {
  WhitespaceTokenizer tokenizer;
  std::vector<Example> examples = numbered_examples(1003);
  auto encoded = std::make_shared<EncodedExamples>(encode_examples(tokenizer, examples, 32, 2));
  BatchOptions options;
  options.batch_size = 32;
  options.max_length = 32;
  options.prefetch_batches = 3;
  for (uint64_t epoch : {0, 1}) {
    BatchLoader streaming(tokenizer, examples, options, epoch);
    BatchLoader cached(encoded, options, epoch);
    EXPECT_EQ(streaming.num_batches(), 32);
    EXPECT_EQ(streaming.num_examples(), 1003);
    std::vector<HostBatch> a = drain(streaming), b = drain(cached);
    EXPECT_FALSE(streaming.next());  // stays at the end
    ASSERT_EQ(a.size(), 32u);
    ASSERT_EQ(b.size(), a.size());
    std::vector<size_t> order = order_of(a);
    EXPECT_EQ(order, order_of(b));  // without bucketing, the mode does not change the order
    std::vector<size_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < sorted.size(); ++i) ASSERT_EQ(sorted[i], i);
    for (size_t k = 0; k < a.size(); ++k) {
      EXPECT_EQ(a[k].input_ids, b[k].input_ids);
      for (int64_t row = 0; row < a[k].batch; ++row) {
        const Example& e = examples[a[k].example_indices[size_t(row)]];
        EXPECT_EQ(a[k].labels[size_t(row)], e.label);
        EXPECT_EQ(a[k].targets[size_t(row)], e.target);
      }
    }
  }
  BatchLoader e0(encoded, options, 0), e1(encoded, options, 1), again(encoded, options, 0);
  auto o0 = order_of(drain(e0));
  EXPECT_NE(o0, order_of(drain(e1)));
  EXPECT_EQ(o0, order_of(drain(again)));
}

TEST(Batching, EncodeExamplesThreadsAgreeAndReportTheEarliestError) {
  WhitespaceTokenizer tokenizer;
  std::vector<Example> examples = numbered_examples(700);
  EncodedExamples one = encode_examples(tokenizer, examples, 48, 1);
  EncodedExamples four = encode_examples(tokenizer, examples, 48, 4);
  ASSERT_EQ(one.items.size(), four.items.size());
  for (size_t i = 0; i < one.items.size(); ++i) EXPECT_EQ(one.items[i].input_ids, four.items[i].input_ids);
  examples[650].text += "\xFF";
  examples[300].text += "\xFF";
  expect_error([&] { encode_examples(tokenizer, examples, 48, 4); }, {"mem:300", "invalid UTF-8"});
}

TEST(Batching, LoaderRethrowsThreadErrorsAfterEarlierBatches) {
  WhitespaceTokenizer tokenizer;
  std::vector<Example> examples = numbered_examples(100);
  examples[45].text = "bad \xFF bytes";
  BatchOptions options;
  options.batch_size = 10;
  options.shuffle = false;
  BatchLoader loader(tokenizer, examples, options, 0);
  for (int k = 0; k < 4; ++k) ASSERT_TRUE(loader.next()) << "batch " << k;
  expect_error([&] { loader.next(); }, {"mem:45", "cannot tokenize", "invalid UTF-8"});
  expect_error([&] { loader.next(); }, {"mem:45"});  // stays failed
}

TEST(Batching, DestructionStopsTheThreadMidEpoch) {
  // A slow tokenizer and a small queue: the thread is busy or blocked when the loader dies.
  WhitespaceTokenizer slow(std::chrono::microseconds(200));
  std::vector<Example> examples = numbered_examples(5000);
  BatchOptions options;
  options.batch_size = 8;
  options.prefetch_batches = 2;
  auto start = std::chrono::steady_clock::now();
  {
    BatchLoader never_read(slow, examples, options, 0);
  }
  {
    BatchLoader partly_read(slow, examples, options, 0);
    ASSERT_TRUE(partly_read.next());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the queue fill and block
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 2.0);  // a full epoch would take 5000 × 200 µs = 1 s per loader
}

TEST(Batching, OptionErrors) {
  WhitespaceTokenizer tokenizer;
  std::vector<Example> examples = numbered_examples(10);
  auto encoded = std::make_shared<EncodedExamples>(encode_examples(tokenizer, examples, 16));
  BatchOptions options;
  options.max_length = 32;
  expect_error([&] { BatchLoader loader(encoded, options, 0); },
               {"max_length 16", "max_length 32"});
  options.max_length = 16;
  options.batch_size = 0;
  expect_error([&] { BatchLoader loader(encoded, options, 0); }, {"batch_size must be >= 1"});
  options.batch_size = 4;
  options.prefetch_batches = 0;
  expect_error([&] { BatchLoader loader(tokenizer, examples, options, 0); }, {"prefetch_batches"});
}
