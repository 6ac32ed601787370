#pragma once
// UTF-8 helpers for the text layer: validation that says where and why input is not UTF-8, and
// decoding/encoding of text already known to be valid.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ww::text {

struct Utf8Problem {
  size_t offset;       // byte offset of the first byte of the bad sequence
  std::string reason;  // e.g. "byte 0xff cannot start a character"
};

// The first invalid sequence in `text` (strict RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF, no truncated sequences), or nothing when the whole text is valid UTF-8.
std::optional<Utf8Problem> find_invalid_utf8(std::string_view text);

// Throws ww::Error "<what> is not valid UTF-8: <reason> at byte <offset>" when `text` is invalid.
void check_utf8(std::string_view text, std::string_view what);

// Decodes the character at `p` and advances `p` past it. `p` must point into valid UTF-8.
inline char32_t decode_utf8(const unsigned char*& p) {
  unsigned char b = *p;
  if (b < 0x80) {
    ++p;
    return b;
  }
  if (b < 0xE0) {
    char32_t c = (char32_t(b & 0x1F) << 6) | (p[1] & 0x3F);
    p += 2;
    return c;
  }
  if (b < 0xF0) {
    char32_t c = (char32_t(b & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    p += 3;
    return c;
  }
  char32_t c = (char32_t(b & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) |
               (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
  p += 4;
  return c;
}

// Appends the UTF-8 encoding of code point `c` (which must be a valid scalar value).
inline void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(char(c));
  } else if (c < 0x800) {
    char bytes[2] = {char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))};
    out.append(bytes, 2);
  } else if (c < 0x10000) {
    char bytes[3] = {char(0xE0 | (c >> 12)), char(0x80 | ((c >> 6) & 0x3F)),
                     char(0x80 | (c & 0x3F))};
    out.append(bytes, 3);
  } else {
    char bytes[4] = {char(0xF0 | (c >> 18)), char(0x80 | ((c >> 12) & 0x3F)),
                     char(0x80 | ((c >> 6) & 0x3F)), char(0x80 | (c & 0x3F))};
    out.append(bytes, 4);
  }
}

}  // namespace ww::text
