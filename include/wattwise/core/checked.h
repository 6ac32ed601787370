#pragma once
// Sizes computed from user input (a config.json, a flag, a file header) must never wrap: a wrapped
// element count allocates a tiny buffer that is then written past. These helpers compute sizes
// exactly or throw ww::Error naming what was being sized.
#include <cstdint>
#include <string_view>

#include "wattwise/core/error.h"

namespace ww {

// a * b for non-negative a and b, or ww::Error "<what>: a x b does not fit in 64 bits".
inline int64_t checked_mul(int64_t a, int64_t b, std::string_view what) {
  int64_t product = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &product))
    fail(what, ": ", a, " x ", b, " does not fit in 64 bits");
  return product;
}

// a + b for non-negative a and b, or ww::Error naming `what`.
inline int64_t checked_add(int64_t a, int64_t b, std::string_view what) {
  int64_t sum = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &sum))
    fail(what, ": ", a, " + ", b, " does not fit in 64 bits");
  return sum;
}

// "1.5 GiB", "12 MiB", "512 bytes": sizes in messages.
std::string format_bytes(double bytes);

}  // namespace ww
