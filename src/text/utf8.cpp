#include "wattwise/text/utf8.h"

#include <cstdio>
#include <cstring>

#include "wattwise/core/error.h"

namespace ww::text {
namespace {

std::string hex_byte(unsigned char b) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "0x%02x", b);
  return buffer;
}

}  // namespace

std::optional<Utf8Problem> find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // Eight ASCII bytes at a time: most text is mostly ASCII.
    if (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, s + i, 8);
      if ((word & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    unsigned char b = s[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    size_t length;
    unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
    if (b >= 0xC2 && b <= 0xDF) {
      length = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      length = 3;
      if (b == 0xE0) low = 0xA0;   // overlong
      if (b == 0xED) high = 0x9F;  // surrogates U+D800..U+DFFF
    } else if (b >= 0xF0 && b <= 0xF4) {
      length = 4;
      if (b == 0xF0) low = 0x90;   // overlong
      if (b == 0xF4) high = 0x8F;  // above U+10FFFF
    } else if (b == 0xC0 || b == 0xC1) {
      return Utf8Problem{i, "byte " + hex_byte(b) + " starts an overlong encoding"};
    } else if (b >= 0x80 && b <= 0xBF) {
      return Utf8Problem{i, "continuation byte " + hex_byte(b) + " without a lead byte"};
    } else {
      return Utf8Problem{i, "byte " + hex_byte(b) + " never occurs in UTF-8"};
    }
    if (i + length > n) return Utf8Problem{i, "character cut off by the end of the text"};
    for (size_t k = 1; k < length; ++k) {
      unsigned char c = s[i + k];
      unsigned char lo = k == 1 ? low : 0x80, hi = k == 1 ? high : 0xBF;
      if (c < lo || c > hi) {
        if (k == 1 && c >= 0x80 && c <= 0xBF) {
          return Utf8Problem{i, "sequence " + hex_byte(b) + " " + hex_byte(c) +
                                    " is an overlong form, a surrogate or above U+10FFFF"};
        }
        return Utf8Problem{i, "byte " + hex_byte(b) + " is not followed by enough continuation bytes"};
      }
    }
    i += length;
  }
  return std::nullopt;
}

void check_utf8(std::string_view text, std::string_view what) {
  if (auto problem = find_invalid_utf8(text)) {
    fail(what, " is not valid UTF-8: ", problem->reason, " at byte ", problem->offset);
  }
}

}  // namespace ww::text
