#pragma once
// The per-lane arithmetic of the mma flash-attention kernels (flash_attention_mma.cu) that decides which
// of a lane's elements dropout keeps and which the masks allow, free of warp intrinsics: the kernels
// wrap these in their shuffles and ballots, and tests/kernels/flash_lanes_test.cpp runs a simulated warp on
// the CPU through the same functions and checks every element against the stated rules (core/rng.h's
// attention dropout rule; key padding and causal masks).
//
// Fragment layout (mma.m16n8k16's C operand, g = lane / 4, t = lane % 4): a lane holds, of each
// 8-column n-tile n, rows g and g + 8 at columns 2t and 2t + 1; element e of a fragment is row
// g + 8·(e >> 1), column 8n + 2t + (e & 1). Row-side kernels (forward, dQ) have queries as rows and
// keys as columns; the dK/dV kernel is transposed (keys as rows, queries as columns).
#include <cmath>
#include <cstdint>

#include "wattwise/core/host_device.h"
#include "wattwise/core/rng.h"

// nvcc unrolls these loops over a fragment's registers (a register array needs constant indices);
// the host compiler, for the tests, needs no hint.
#if defined(__CUDACC__)
#define WW_UNROLL_FRAGMENT _Pragma("unroll")
#else
#define WW_UNROLL_FRAGMENT
#endif

namespace ww::kernels::flash_lanes {

WW_HOST_DEVICE inline uint32_t word_of(const Philox4& w, int i) {
  return i == 0 ? w.v[0] : i == 1 ? w.v[1] : i == 2 ? w.v[2] : w.v[3];
}

// Bit b set iff byte b of `bytes` is at least the threshold.
WW_HOST_DEVICE inline unsigned keep_nibble(uint32_t bytes, uint32_t threshold) {
#ifdef __CUDA_ARCH__
  const uint32_t c = __vcmpgeu4(bytes, threshold * 0x01010101u);  // 0xFF per byte that passes
  return (c & 1u) | ((c >> 7) & 2u) | ((c >> 14) & 4u) | ((c >> 21) & 8u);
#else
  unsigned keep = 0;
  for (int b = 0; b < 4; ++b) keep |= unsigned(((bytes >> (8 * b)) & 0xFFu) >= threshold) << b;
  return keep;
#endif
}

// ---- row side: 32 keys key0..key0+31 (key0 % 16 == 0) of the lane's rows g and g + 8 -------------
// Result bit 4·nn + 2·r + e: n-tile nn (0..3), row r (0: g, 1: g + 8), column e. The quad's four
// Philox blocks (row g / g + 8 × keys key0 / key0 + 16) are one per lane, lane t computing block
// (row t & 1, half t >> 1); in round k (0..3) every lane sends the 4 bytes lane (t + k) % 4 needs
// and receives its own from lane (t − k) % 4.

// The block lane t of the quad computes (row_g, row_g8: the probability rows of rows g, g + 8).
WW_HOST_DEVICE inline uint64_t rows32_block(uint64_t row_g, uint64_t row_g8, int64_t key0, int t,
                                            uint64_t blocks_per_row) {
  return ((t & 1) ? row_g8 : row_g) * blocks_per_row + uint64_t(key0 >> 4) + uint64_t(t >> 1);
}
// What lane t sends in round k: for lane to = (t + k) % 4, bytes 2·(to & 1)..+1 of word to >> 1
// (its columns in the block's first n-tile) and of word 2 + (to >> 1) (the second n-tile).
WW_HOST_DEVICE inline uint32_t rows32_send(const Philox4& w, int t, int k) {
  const int to = (t + k) & 3, shift = 16 * (to & 1);
  return ((word_of(w, to >> 1) >> shift) & 0xFFFFu) | ((word_of(w, 2 + (to >> 1)) >> shift) << 16);
}
WW_HOST_DEVICE inline int rows32_source(int lane, int k) { return (lane & ~3) | ((lane - k) & 3); }
// The result bits of what lane t received in round k (from block (row from & 1, half from >> 1)).
WW_HOST_DEVICE inline unsigned rows32_bits(uint32_t got, int t, int k, uint32_t threshold) {
  const int from = (t - k) & 3;
  const unsigned c = keep_nibble(got, threshold);        // bit b: n-tile 2·half + (b >> 1), column b & 1
  const unsigned spread = (c & 3u) | ((c & 0xCu) << 2);  // → bit 4·(b >> 1) + (b & 1)
  return spread << (8 * (from >> 1) + 2 * (from & 1));
}

// ---- key side (dK/dV): 32 queries i_base + 8·nn + 2t + e of the lane's keys key_w + g, + g + 8 ---
// key_w % 16 == 0, so a query's 16 keys of the warp are one Philox block. Result bit 4·nn + 2·r + e
// for key r (0: g, 1: g + 8). The 8 lanes of column t hold the same 8 queries' blocks: lane g
// computes query (nn = g >> 1, e = g & 1)'s; in round k (0..7) it sends bytes to, to + 8 of its
// block to lane to = (g + k) % 8 and receives its own from lane (g − k) % 8.

WW_HOST_DEVICE inline uint64_t keys32_block(uint64_t bh_T, int64_t i_base, int64_t key_w, int lane,
                                            uint64_t blocks_per_row) {
  const int g = lane >> 2, t = lane & 3;
  const uint64_t query = uint64_t(i_base + 8 * (g >> 1) + 2 * t + (g & 1));
  return (bh_T + query) * blocks_per_row + uint64_t(key_w >> 4);
}
WW_HOST_DEVICE inline uint32_t keys32_send(const Philox4& w, int g, int k) {
  const int to = (g + k) & 7, shift = 8 * (to & 3);
  return ((word_of(w, to >> 2) >> shift) & 0xFFu) | (((word_of(w, 2 + (to >> 2)) >> shift) & 0xFFu) << 8);
}
WW_HOST_DEVICE inline int keys32_source(int lane, int k) { return 4 * (((lane >> 2) - k) & 7) + (lane & 3); }
WW_HOST_DEVICE inline unsigned keys32_bits(uint32_t got, int g, int k, uint32_t threshold) {
  const int from = (g - k) & 7;
  const unsigned c = keep_nibble(got, threshold);  // bit 0: key g, bit 1: key g + 8
  return ((c & 1u) | ((c & 2u) << 1)) << (4 * (from >> 1) + (from & 1));
}

// ---- masks ----------------------------------------------------------------------------------

// The real keys of a 64-key tile as two 32-bit maps (keys 0..31, 32..63); a warp builds it with
// two ballots.
struct KeyMap {
  unsigned lo, hi;
  WW_HOST_DEVICE bool all() const { return (lo & hi) == ~0u; }
};

// Whether a row-side warp's tile at keys k0.. needs per-element masking: a key that is padding or
// past the sequence, or (causal) a key after the warp's first query row warp_row0.
WW_HOST_DEVICE inline bool row_tile_needs_mask(KeyMap keys, bool causal, int64_t k0, int64_t warp_row0) {
  return !keys.all() || (causal && k0 + 63 > warp_row0);
}

// Row-side score fragments: s = scores · scale, −∞ where the key is not allowed, and each row's
// maximum into row_max. kMask = false is the common tile (row_tile_needs_mask false): no test per
// element. With kMask, `future[r]` is the column offset (relative to 2t) past which keys follow row
// r's query, i.e. row − k0 − 2t.
template <bool kMask>
WW_HOST_DEVICE inline void scale_row_scores(float (*sc)[4], float* row_max, float scale, KeyMap keys, bool causal,
                                            const int* future, int t) {
  const unsigned lo = keys.lo >> (2 * t), hi = keys.hi >> (2 * t);
WW_UNROLL_FRAGMENT
  for (int n = 0; n < 8; ++n) {
WW_UNROLL_FRAGMENT
    for (int e = 0; e < 4; ++e) {
      float v = sc[n][e] * scale;
      if constexpr (kMask) {
        const int col = 8 * n + (e & 1);
        const bool real = (((n < 4 ? lo : hi) >> (col & 31)) & 1u) != 0;
        if (!real || (causal && col > future[e >> 1])) v = -INFINITY;
      }
      sc[n][e] = v;
      row_max[e >> 1] = fmaxf(row_max[e >> 1], v);
    }
  }
}

// Whether the dK/dV kernel's warp (keys key_w..key_w + 15, all real or not) needs per-element
// masking on the query tile i0..i0 + 63: queries past the sequence, a padding key, or (causal) a
// query before one of the keys.
WW_HOST_DEVICE inline bool key_tile_needs_mask(bool warp_keys_real, int64_t i0, int64_t seq_len, bool causal,
                                               int64_t key_w) {
  return !warp_keys_real || i0 + 64 > seq_len || (causal && key_w + 15 > i0);
}

// Key-side score fragments (rows: keys g, g + 8; columns: queries): s = scores · scale, −∞ where not
// allowed: a query past the sequence (column offset ≥ query_limit = T − i0 − 2t), a padding key, or
// (causal) a query before key r (column offset < future[r] = key_r − i0 − 2t).
template <bool kMask>
WW_HOST_DEVICE inline void scale_key_scores(float (*st)[4], float scale, int query_limit, const bool* key_real,
                                            bool causal, const int* future) {
WW_UNROLL_FRAGMENT
  for (int n = 0; n < 8; ++n) {
WW_UNROLL_FRAGMENT
    for (int e = 0; e < 4; ++e) {
      float v = st[n][e] * scale;
      if constexpr (kMask) {
        const int col = 8 * n + (e & 1), r = e >> 1;
        if (col >= query_limit || !key_real[r] || (causal && col < future[r])) v = -INFINITY;
      }
      st[n][e] = v;
    }
  }
}

}  // namespace ww::kernels::flash_lanes
