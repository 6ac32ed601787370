// The mma flash-attention kernels' per-lane arithmetic (src/kernels/cuda/flash_lanes.h) on a
// simulated warp, on the CPU: which dropout bit each lane ends up with after the shuffles, and
// which elements the masks allow, element by element against the rules as stated (test_util.h's
// attention_keeps; key padding and causal masks). The GPU tests check the kernels themselves; these
// pin the index arithmetic on every machine, CI included.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/flash_lanes.h"
#include "test_util.h"
#include "wattwise/core/rng.h"

using namespace ww;
namespace lanes = ww::kernels::flash_lanes;

namespace {

constexpr uint64_t kSeed = 0x1234abcd5678ull, kOffset = 77;

// A simulated warp's dropout bits: every lane draws its Philox block (block_of), then in each of
// `rounds` shuffle rounds every lane sends (send), each lane takes its source's value (source) and
// folds it into its bits (bits): what the kernels' loops do with __shfl_sync.
template <typename BlockOf, typename Send, typename Source, typename Bits>
std::vector<unsigned> warp_keep_bits(int rounds, BlockOf block_of, Send send, Source source, Bits bits) {
  std::vector<Philox4> words(32);
  for (int lane = 0; lane < 32; ++lane) words[size_t(lane)] = philox_block(kSeed, kOffset, block_of(lane));
  std::vector<unsigned> keep(32, 0u);
  for (int k = 0; k < rounds; ++k) {
    std::vector<uint32_t> sent(32);
    for (int lane = 0; lane < 32; ++lane) sent[size_t(lane)] = send(words[size_t(lane)], lane, k);
    for (int lane = 0; lane < 32; ++lane) keep[size_t(lane)] |= bits(sent[size_t(source(lane, k))], lane, k);
  }
  return keep;
}

// Row side (forward, dQ kernels): query rows q_w + g and q_w + g + 8 of head row bh, keys key0..+31.
TEST(FlashLanes, RowSideDropoutBitsAreTheRule) {
  for (int64_t T : {16, 40, 64, 100, 256, 1024})
    for (float p : {0.1f, 0.5f, 0.9f}) {
      const uint32_t threshold = attention_dropout_threshold(p);
      const uint64_t blocks_per_row = uint64_t((T + 15) / 16);
      for (int64_t bh : {0, 5})
        for (int64_t q_w = 0; q_w < T; q_w += 16)
          for (int64_t key0 = 0; key0 < T; key0 += 32) {
            SCOPED_TRACE("T " + std::to_string(T) + " p " + std::to_string(p) + " bh " + std::to_string(bh) +
                         " rows " + std::to_string(q_w) + " keys " + std::to_string(key0));
            auto prob_row = [&](int lane, int r) { return uint64_t(bh * T + q_w + (lane >> 2) + 8 * r); };
            const std::vector<unsigned> keep = warp_keep_bits(
                4,
                [&](int lane) {
                  return lanes::rows32_block(prob_row(lane, 0), prob_row(lane, 1), key0, lane & 3, blocks_per_row);
                },
                [](const Philox4& w, int lane, int k) { return lanes::rows32_send(w, lane & 3, k); },
                [](int lane, int k) { return lanes::rows32_source(lane, k); },
                [&](uint32_t got, int lane, int k) { return lanes::rows32_bits(got, lane & 3, k, threshold); });
            for (int lane = 0; lane < 32; ++lane)
              for (int nn = 0; nn < 4; ++nn)
                for (int r = 0; r < 2; ++r)
                  for (int e = 0; e < 2; ++e) {
                    const int64_t key = key0 + 8 * nn + 2 * (lane & 3) + e;
                    const bool want = ww::testing::attention_keeps(kSeed, kOffset, prob_row(lane, r), T, key, p);
                    const bool got = (keep[size_t(lane)] >> (4 * nn + 2 * r + e)) & 1u;
                    ASSERT_EQ(got, want) << "lane " << lane << " row " << r << " key " << key;
                  }
          }
    }
}

// Key side (dK/dV kernel): keys key_w + g and key_w + g + 8, queries i_base + 8·nn + 2t + e.
TEST(FlashLanes, KeySideDropoutBitsAreTheRule) {
  for (int64_t T : {16, 40, 64, 100, 256})
    for (float p : {0.1f, 0.5f}) {
      const uint32_t threshold = attention_dropout_threshold(p);
      const uint64_t blocks_per_row = uint64_t((T + 15) / 16);
      for (int64_t bh : {0, 3})
        for (int64_t key_w = 0; key_w < T; key_w += 16)
          for (int64_t i_base = 0; i_base < T; i_base += 32) {
            SCOPED_TRACE("T " + std::to_string(T) + " p " + std::to_string(p) + " keys " + std::to_string(key_w) +
                         " queries " + std::to_string(i_base));
            const uint64_t bh_T = uint64_t(bh * T);
            const std::vector<unsigned> keep = warp_keep_bits(
                8, [&](int lane) { return lanes::keys32_block(bh_T, i_base, key_w, lane, blocks_per_row); },
                [](const Philox4& w, int lane, int k) { return lanes::keys32_send(w, lane >> 2, k); },
                [](int lane, int k) { return lanes::keys32_source(lane, k); },
                [&](uint32_t got, int lane, int k) { return lanes::keys32_bits(got, lane >> 2, k, threshold); });
            for (int lane = 0; lane < 32; ++lane)
              for (int nn = 0; nn < 4; ++nn)
                for (int r = 0; r < 2; ++r)
                  for (int e = 0; e < 2; ++e) {
                    const int64_t query = i_base + 8 * nn + 2 * (lane & 3) + e, key = key_w + (lane >> 2) + 8 * r;
                    if (query >= T) continue;  // no such query: its bit is never read
                    const bool want = ww::testing::attention_keeps(kSeed, kOffset, bh_T + uint64_t(query), T, key, p);
                    const bool got = (keep[size_t(lane)] >> (4 * nn + 2 * r + e)) & 1u;
                    ASSERT_EQ(got, want) << "lane " << lane << " key " << key << " query " << query;
                  }
          }
    }
}

// A 64-key tile's real keys from per-key flags, as the kernels' two ballots build it.
lanes::KeyMap map_of(const std::vector<int>& real) {
  lanes::KeyMap m{0u, 0u};
  for (int j = 0; j < 32; ++j) {
    m.lo |= unsigned(real[size_t(j)] != 0) << j;
    m.hi |= unsigned(real[size_t(32 + j)] != 0) << j;
  }
  return m;
}

// Row side: with kMask exactly the disallowed elements are −∞ (a key that is padding or past the
// sequence, or after the row's query when causal); and where row_tile_needs_mask says a warp's tile
// needs no mask, no element of any lane is disallowed, so the unmasked path is exact.
TEST(FlashLanes, RowSideMasksAreTheRule) {
  for (int64_t T : {40, 64, 200})
    for (bool causal : {false, true})
      for (int padding : {0, 7}) {  // real keys: the first T − padding
        for (int64_t k0 = 0; k0 < T; k0 += 64)
          for (int64_t warp_row0 = 0; warp_row0 < T; warp_row0 += 16) {
            if (causal && k0 > warp_row0 + 15) continue;  // the kernels visit no tile past the CTA's rows
            std::vector<int> real(64);
            for (int j = 0; j < 64; ++j) real[size_t(j)] = k0 + j < T - padding;
            const lanes::KeyMap keys = map_of(real);
            const bool needs_mask = lanes::row_tile_needs_mask(keys, causal, k0, warp_row0);
            for (int lane = 0; lane < 32; ++lane) {
              const int g = lane >> 2, t = lane & 3;
              const int64_t rows[2] = {warp_row0 + g, warp_row0 + g + 8};
              const int future[2] = {int(rows[0] - k0 - 2 * t), int(rows[1] - k0 - 2 * t)};
              float sc[8][4], row_max[2] = {-INFINITY, -INFINITY};
              for (auto& f : sc)
                for (float& v : f) v = 1.0f;
              lanes::scale_row_scores<true>(sc, row_max, 0.5f, keys, causal, future, t);
              for (int n = 0; n < 8; ++n)
                for (int e = 0; e < 4; ++e) {
                  const int64_t key = k0 + 8 * n + 2 * t + (e & 1), row = rows[e >> 1];
                  const bool allowed = key < T - padding && !(causal && key > row);
                  ASSERT_EQ(sc[n][e], allowed ? 0.5f : -INFINITY)
                      << "T " << T << " causal " << causal << " k0 " << k0 << " lane " << lane << " key " << key
                      << " row " << row;
                  if (!needs_mask) {
                    ASSERT_TRUE(allowed) << "the unmasked path would let key " << key << " through";
                  }
                }
            }
          }
      }
}

// Key side: the same for the dK/dV kernel's transposed fragments and key_tile_needs_mask.
TEST(FlashLanes, KeySideMasksAreTheRule) {
  for (int64_t T : {40, 64, 200})
    for (bool causal : {false, true})
      for (int padding : {0, 7}) {
        for (int64_t key_w = 0; key_w < T; key_w += 16)
          for (int64_t i0 = causal ? key_w / 64 * 64 : 0; i0 < T; i0 += 64) {
            bool warp_keys_real = true;
            for (int lane = 0; lane < 32; ++lane)
              for (int r = 0; r < 2; ++r) warp_keys_real &= key_w + (lane >> 2) + 8 * r < T - padding;
            const bool needs_mask = lanes::key_tile_needs_mask(warp_keys_real, i0, T, causal, key_w);
            for (int lane = 0; lane < 32; ++lane) {
              const int g = lane >> 2, t = lane & 3;
              const int64_t keys[2] = {key_w + g, key_w + g + 8};
              const bool key_real[2] = {keys[0] < T - padding, keys[1] < T - padding};
              const int query_limit = int(T - i0) - 2 * t;
              const int future[2] = {int(keys[0] - i0) - 2 * t, int(keys[1] - i0) - 2 * t};
              float st[8][4];
              for (auto& f : st)
                for (float& v : f) v = 1.0f;
              lanes::scale_key_scores<true>(st, 0.5f, query_limit, key_real, causal, future);
              for (int n = 0; n < 8; ++n)
                for (int e = 0; e < 4; ++e) {
                  const int64_t query = i0 + 8 * n + 2 * t + (e & 1), key = keys[e >> 1];
                  const bool allowed = query < T && key < T - padding && !(causal && key > query);
                  ASSERT_EQ(st[n][e], allowed ? 0.5f : -INFINITY)
                      << "T " << T << " causal " << causal << " lane " << lane << " key " << key << " query " << query;
                  if (!needs_mask) {
                    ASSERT_TRUE(allowed) << "the unmasked path would let query " << query << " through";
                  }
                }
            }
          }
      }
}

}  // namespace
