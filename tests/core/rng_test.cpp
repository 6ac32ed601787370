// Rng: Philox known answers, the attention dropout rule, normal fills, reproducible streams.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <set>
#include <vector>

#include "wattwise/core/arena.h"
#include "wattwise/core/dtype.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "test_util.h"

using namespace ww;

TEST(Rng, PhiloxKnownAnswer) {
  // Random123 known-answer test for philox4x32-10 with zero counter and key.
  Philox4 r = philox4x32_10(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
  Philox4 s = philox4x32_10(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(s.v[0], 0x408f276du);
  EXPECT_EQ(s.v[1], 0x41c83b0eu);
  EXPECT_EQ(s.v[2], 0xa20bc7c6u);
  EXPECT_EQ(s.v[3], 0x6d5451fdu);
}

// Attention dropout: p rounds to a multiple of 1/256 (threshold = round(256·p), at most 255),
// kept values scale by 256/(256 − threshold), and the rng.h helpers agree with the rule as stated
// (test_util.h) for rows and sequence lengths that are and are not multiples of 16.
TEST(Rng, AttentionDropoutRule) {
  EXPECT_EQ(attention_dropout_threshold(0.0f), 0u);
  EXPECT_EQ(attention_dropout_threshold(0.001f), 0u);  // below 1/512: no dropout at all
  EXPECT_EQ(attention_dropout_threshold(0.1f), 26u);   // 25.6 → 26: p = 0.1016
  EXPECT_EQ(attention_dropout_threshold(0.5f), 128u);
  EXPECT_EQ(attention_dropout_threshold(0.999f), 255u);
  EXPECT_FLOAT_EQ(attention_dropout_keep_scale(0.1f), 256.0f / 230.0f);
  EXPECT_FLOAT_EQ(attention_dropout_keep_scale(0.0f), 1.0f);
  for (int64_t T : {7, 16, 40, 128, 1000})
    for (float p : {0.1f, 0.5f}) {
      const uint32_t threshold = attention_dropout_threshold(p);
      int64_t dropped = 0, total = 0;
      for (uint64_t row : {0ull, 1ull, 37ull, 4095ull})
        for (int64_t key = 0; key < T; ++key) {
          const bool keep = attention_dropout_keep(11, 5, row, T, key, threshold);
          ASSERT_EQ(keep, ww::testing::attention_keeps(11, 5, row, T, key, p))
              << "T " << T << " p " << p << " row " << row << " key " << key;
          dropped += !keep;
          ++total;
        }
      EXPECT_GT(dropped, 0);
      EXPECT_LT(dropped, total);
    }
  // The rate over 2^20 elements is threshold/256 within 6 standard deviations, and another seed,
  // offset or row draws another mask.
  const int64_t T = 1024;
  const uint32_t threshold = attention_dropout_threshold(0.1f);
  int64_t dropped = 0, differ_seed = 0, differ_offset = 0, differ_row = 0;
  for (uint64_t row = 0; row < 1024; ++row)
    for (int64_t key = 0; key < T; ++key) {
      const bool keep = attention_dropout_keep(1, 2, row, T, key, threshold);
      dropped += !keep;
      differ_seed += keep != attention_dropout_keep(3, 2, row, T, key, threshold);
      differ_offset += keep != attention_dropout_keep(1, 3, row, T, key, threshold);
      differ_row += keep != attention_dropout_keep(1, 2, row + 1024, T, key, threshold);
    }
  const double n = 1024.0 * 1024.0, rate = 26.0 / 256.0, sigma = std::sqrt(n * rate * (1.0 - rate));
  EXPECT_NEAR(double(dropped), n * rate, 6.0 * sigma);
  // Two independent masks at this rate differ on 2·r·(1−r) ≈ 18% of the elements.
  for (int64_t differ : {differ_seed, differ_offset, differ_row}) EXPECT_GT(double(differ), 0.15 * n);
}

// fill_normal: every element from its own Philox block (i/4), so one thread and all threads give
// the same values; N(0, 1) scaled by std; element 4b..4b+3 is Box-Muller of block b's four words, the
// same arithmetic as Rng::normal over that block's words; another seed or stream draws others.
TEST(Rng, FillNormalIsPerElementAndNormal) {
  const int64_t n = 300001;  // not a multiple of 4, and past the parallel threshold
  std::vector<float> all(size_t(n), NAN), one(size_t(n), NAN), other_stream(size_t(n), NAN), other_seed(size_t(n), NAN);
  fill_normal(all.data(), n, 0.02f, 5, 9);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  fill_normal(one.data(), n, 0.02f, 5, 9);
  omp_set_num_threads(threads);
  fill_normal(other_stream.data(), n, 0.02f, 5, 10);
  fill_normal(other_seed.data(), n, 0.02f, 6, 9);
  double sum = 0, sumsq = 0;
  int64_t same_stream = 0, same_seed = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(all[size_t(i)], one[size_t(i)]) << "element " << i << " depends on the thread count";
    ASSERT_TRUE(std::isfinite(all[size_t(i)])) << "element " << i;
    sum += all[size_t(i)] / 0.02;
    sumsq += double(all[size_t(i)] / 0.02) * (all[size_t(i)] / 0.02);
    same_stream += all[size_t(i)] == other_stream[size_t(i)];
    same_seed += all[size_t(i)] == other_seed[size_t(i)];
  }
  EXPECT_NEAR(sum / double(n), 0.0, 0.01);
  EXPECT_NEAR(sumsq / double(n), 1.0, 0.01);
  EXPECT_LT(same_stream, 10);
  EXPECT_LT(same_seed, 10);
  // Block 1000's four words through Rng::normal's Box-Muller: Rng(seed, stream) starting at word 4000.
  Rng rng(5, 9);
  for (int i = 0; i < 4000; ++i) rng.next_u32();
  for (int e = 0; e < 4; ++e) EXPECT_EQ(all[size_t(4000 + e)], rng.normal() * 0.02f) << "element " << 4000 + e;
}

TEST(Rng, StreamsAreReproducibleAndDistinct) {
  Rng a(42), b(42), c(43), d(42, 1);
  std::set<uint32_t> seen;
  for (int i = 0; i < 1000; ++i) {
    uint32_t x = a.next_u32();
    EXPECT_EQ(x, b.next_u32());
    seen.insert(x);
    EXPECT_NE(x, c.next_u32());
    (void)d;
  }
  EXPECT_GT(seen.size(), 990u);
  double sum = 0, sumsq = 0;
  Rng n(7);
  for (int i = 0; i < 20000; ++i) {
    float v = n.normal();
    sum += v;
    sumsq += double(v) * v;
  }
  EXPECT_NEAR(sum / 20000, 0.0, 0.03);
  EXPECT_NEAR(sumsq / 20000, 1.0, 0.05);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(n.below(7), 7u);
}
