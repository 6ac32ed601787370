#include "wattwise/core/rng.h"

#include <cmath>

namespace ww {

namespace {

// Box-Muller: two standard normals from two words (u1 on (0, 1], so never log(0)).
void box_muller(uint32_t word1, uint32_t word2, float* first, float* second) {
  const float u1 = 1.0f - uniform_from_word(word1), u2 = uniform_from_word(word2);
  const float radius = std::sqrt(-2.0f * std::log(u1));
  const float angle = 6.28318530717958647692f * u2;
  *first = radius * std::cos(angle);
  *second = radius * std::sin(angle);
}

}  // namespace

float Rng::normal() {
  if (have_spare_) {
    have_spare_ = false;
    return spare_;
  }
  const uint32_t word1 = next_u32(), word2 = next_u32();
  float first = 0.0f;
  box_muller(word1, word2, &first, &spare_);
  have_spare_ = true;
  return first;
}

void fill_normal(float* w, int64_t n, float std, uint64_t seed, uint64_t stream) {
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n >= (int64_t(1) << 16))
  for (int64_t b = 0; b < blocks; ++b) {
    const Philox4 r = philox_block(seed, stream, uint64_t(b));
    float z[4];
    box_muller(r.v[0], r.v[1], &z[0], &z[1]);
    box_muller(r.v[2], r.v[3], &z[2], &z[3]);
    for (int e = 0; e < 4 && 4 * b + e < n; ++e) w[4 * b + e] = z[e] * std;
  }
}

uint64_t Rng::below(uint64_t n) {
  if (n <= 1) return 0;
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = next_u64();
  } while (x >= limit);
  return x % n;
}

}  // namespace ww
