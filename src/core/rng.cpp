#include "wattwise/core/rng.h"

#include <cmath>

namespace ww {

float Rng::normal() {
  if (have_spare_) {
    have_spare_ = false;
    return spare_;
  }
  // Box-Muller on (0, 1]: never log(0).
  float u1 = 1.0f - uniform();
  float u2 = uniform();
  float radius = std::sqrt(-2.0f * std::log(u1));
  float angle = 6.28318530717958647692f * u2;
  spare_ = radius * std::sin(angle);
  have_spare_ = true;
  return radius * std::cos(angle);
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
