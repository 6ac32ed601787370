#pragma once
// Counter-based random numbers (Philox4x32-10). A value depends only on (seed, offset, index), so
// the CPU and CUDA kernels draw the same dropout mask for the same seed without sharing state, and
// backward regenerates the forward mask instead of storing it.
#include <cstdint>

#include "wattwise/core/host_device.h"

namespace ww {

struct Philox4 {
  uint32_t v[4];
};

WW_HOST_DEVICE inline Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                            uint32_t k0, uint32_t k1) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(M0) * c0;
    uint64_t p1 = uint64_t(M1) * c2;
    uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += W0;
    k1 += W1;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Block `block` (four 32-bit words) of stream `offset` under `seed`: the counter is the block, the
// key the seed. Every generator below draws its words this way.
WW_HOST_DEVICE inline Philox4 philox_block(uint64_t seed, uint64_t offset, uint64_t block) {
  return philox4x32_10(uint32_t(block), uint32_t(block >> 32), uint32_t(offset), uint32_t(offset >> 32),
                       uint32_t(seed), uint32_t(seed >> 32));
}

// The index-th 32-bit random word of stream `offset` under `seed`. Element i uses word i%4 of block
// i/4, so a CUDA thread that handles four consecutive elements makes one Philox call.
WW_HOST_DEVICE inline uint32_t philox_u32(uint64_t seed, uint64_t offset, uint64_t index) {
  return philox_block(seed, offset, index >> 2).v[index & 3];
}

// A word as a uniform in [0, 1) with 24 bits of resolution (exactly representable in fp32).
WW_HOST_DEVICE inline float uniform_from_word(uint32_t word) { return float(word >> 8) * (1.0f / 16777216.0f); }

WW_HOST_DEVICE inline float philox_uniform(uint64_t seed, uint64_t offset, uint64_t index) {
  return uniform_from_word(philox_u32(seed, offset, index));
}

// Word i (0..3) of a block by selection, not by indexing the array with a run-time index (a GPU
// kernel would put the block in local memory for that).
WW_HOST_DEVICE inline uint32_t philox_word(const Philox4& words, int i) {
  return i == 0 ? words.v[0] : i == 1 ? words.v[1] : i == 2 ? words.v[2] : words.v[3];
}

// Element dropout (ops::dropout_forward/backward: hidden states, embeddings, classifier inputs), one
// rule for the CPU and CUDA kernels. Element i survives iff 16-bit half i % 8 of Philox block i/8
// (halves in word order, the low half of each word first) is ≥ threshold = round(p·65536), at most
// 65535. One Philox call covers eight elements (one 16-byte bf16 vector): with a call per four
// elements, Philox's multiplies, not DRAM, bounded the CUDA kernel. p is rounded to a multiple of
// 1/65536 (below 8e-6 off), and kept values are scaled by 65536/(65536 − threshold), so the
// expectation is exact.
WW_HOST_DEVICE inline uint32_t element_dropout_threshold(float p) {
  const float scaled = p * 65536.0f + 0.5f;
  return scaled <= 0.0f ? 0u : scaled >= 65535.0f ? 65535u : uint32_t(scaled);
}
WW_HOST_DEVICE inline float element_dropout_keep_scale(float p) {
  return 65536.0f / float(65536u - element_dropout_threshold(p));
}
// Half `j` (0..7) of a block's words against the threshold.
WW_HOST_DEVICE inline bool element_dropout_keeps(const Philox4& words, int j, uint32_t threshold) {
  return ((philox_word(words, j >> 1) >> (16 * (j & 1))) & 0xFFFFu) >= threshold;
}
WW_HOST_DEVICE inline bool element_dropout_keep(uint64_t seed, uint64_t offset, uint64_t i, uint32_t threshold) {
  return element_dropout_keeps(philox_block(seed, offset, i >> 3), int(i & 7), threshold);
}

// Attention-probability dropout, one rule for every attention path (CPU reference, CUDA reference,
// fused kernels). Element (row, key) of the [B·H·T, T] probability matrix, row = (b·H + h)·T + i,
// survives iff byte key % 16 of Philox block row·⌈T/16⌉ + key/16 (bytes in word order, each word
// little-endian) is ≥ threshold = round(p·256). One Philox call covers 16 keys of a row, as in
// FlashAttention, which is what makes dropout cheap inside the fused kernels; the price is that p
// is rounded to a multiple of 1/256 (0.1 → 26/256 = 0.1016), and kept values are scaled by
// 256/(256 − threshold) so the expectation is still exact.
WW_HOST_DEVICE inline uint32_t attention_dropout_threshold(float p) {
  const float scaled = p * 256.0f + 0.5f;
  return scaled <= 0.0f ? 0u : scaled >= 255.0f ? 255u : uint32_t(scaled);
}
WW_HOST_DEVICE inline float attention_dropout_keep_scale(float p) {
  return 256.0f / float(256u - attention_dropout_threshold(p));
}
WW_HOST_DEVICE inline uint64_t attention_dropout_block(uint64_t row, int64_t seq_len, int64_t key) {
  return row * uint64_t((seq_len + 15) / 16) + uint64_t(key / 16);
}
// Byte `key % 16` of a block's words against the threshold.
WW_HOST_DEVICE inline bool attention_dropout_keeps(const Philox4& words, int64_t key, uint32_t threshold) {
  const int byte = int(key & 15);
  return ((philox_word(words, byte >> 2) >> (8 * (byte & 3))) & 0xFFu) >= threshold;
}
WW_HOST_DEVICE inline bool attention_dropout_keep(uint64_t seed, uint64_t offset, uint64_t row, int64_t seq_len,
                                                  int64_t key, uint32_t threshold) {
  return attention_dropout_keeps(philox_block(seed, offset, attention_dropout_block(row, seq_len, key)), key,
                                 threshold);
}

// w[0, n) = std · N(0, 1), element i from Philox block i/4 of (seed, stream) by Box-Muller: every
// value depends only on (seed, stream, i), so the fill runs on all cores and gives the same values
// on any number of them (a 124M-parameter model in a fraction of a second, not seconds).
void fill_normal(float* w, int64_t n, float std, uint64_t seed, uint64_t stream);

// Host-side generator for initialisation and shuffling: also counter based, so a (seed, stream)
// pair reproduces the same sequence on any machine.
class Rng {
 public:
  explicit Rng(uint64_t seed, uint64_t stream = 0) : seed_(seed), stream_(stream) {}
  uint32_t next_u32() { return philox_u32(seed_, stream_, counter_++); }
  uint64_t next_u64() { return (uint64_t(next_u32()) << 32) | next_u32(); }
  float uniform() { return uniform_from_word(next_u32()); }
  float normal();  // Box-Muller
  // Uniform integer in [0, n) without modulo bias.
  uint64_t below(uint64_t n);

 private:
  uint64_t seed_, stream_, counter_ = 0;
  bool have_spare_ = false;
  float spare_ = 0.0f;
};

}  // namespace ww
