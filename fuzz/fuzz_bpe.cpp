// libFuzzer target: arbitrary bytes through the GPT-2 byte-level BPE tokenizer (single texts and
// pairs, with and without truncation) and arbitrary ids through decode. Invalid UTF-8 must be
// rejected with ww::Error (checked against utf8proc's decoder as an independent oracle); valid text
// must encode with every id in the vocabulary, matching lengths, type ids 0 then 1, max_length
// respected, and decode must give back exactly the text (text + pair for pairs).
//
// Tokenizer: $WW_FUZZ_BPE (folder or tokenizer.json, e.g. the real GPT-2 folder); otherwise the
// committed slice of GPT-2 in tests/fixtures/bpe/tiny.
//
// Input layout: byte 0 = flags (bit 0: pair, bit 1: truncate, bits 2..7: max_length - 1),
// byte 1 = where the pair splits (fraction of the rest / 256), then the text bytes.
#include <utf8proc.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "wattwise/core/error.h"
#include "wattwise/text/tokenizer.h"

namespace {

std::unique_ptr<ww::text::Tokenizer> load() {
  if (const char* path = std::getenv("WW_FUZZ_BPE"); path && *path) return ww::text::load_tokenizer(path);
  // This file is fuzz/fuzz_bpe.cpp; the fixture lives next to fuzz/ in the source tree.
  std::filesystem::path root = std::filesystem::path(__FILE__).parent_path().parent_path();
  for (const auto& candidate : {root / "tests/fixtures/bpe/tiny", std::filesystem::path("tests/fixtures/bpe/tiny")}) {
    std::error_code error;
    if (std::filesystem::exists(candidate / "vocab.json", error)) return ww::text::load_tokenizer(candidate);
  }
  throw ww::Error("fuzz_bpe: cannot find tests/fixtures/bpe/tiny; set WW_FUZZ_BPE");
}

const ww::text::Tokenizer& tokenizer() {
  static std::unique_ptr<ww::text::Tokenizer> instance = load();
  return *instance;
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = utf8proc_ssize_t(s.size());
  while (left > 0) {
    utf8proc_int32_t c;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
    if (n <= 0) return false;
    p += n;
    left -= n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ww::text::Tokenizer& tok = tokenizer();
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);

  // Any ids decode without crashing, and decoding is concatenation of the single ids.
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < rest.size() && ids.size() < 64; i += 2) {
    ids.push_back(int32_t((uint8_t(rest[i]) | (uint8_t(rest[i + 1]) << 8)) % tok.vocab_size()));
  }
  std::string joined;
  for (int32_t id : ids) joined += tok.decode({id});
  if (tok.decode(ids) != joined) __builtin_trap();

  const bool is_pair = flags & 1;
  const int max_length = (flags & 2) ? 1 + (flags >> 2) : 0;
  std::string_view text = rest;
  std::optional<std::string_view> pair;
  if (is_pair) {
    size_t split = rest.size() * data[1] / 256;
    text = rest.substr(0, split);
    pair = rest.substr(split);
  }
  const bool valid = valid_utf8(text) && (!pair || valid_utf8(*pair));
  ww::text::Encoding encoding;
  try {
    encoding = tok.encode(text, pair, max_length);
  } catch (const ww::Error&) {
    if (valid) __builtin_trap();  // valid UTF-8 must encode
    return 0;
  }
  if (!valid) __builtin_trap();  // invalid UTF-8 must be rejected
  const size_t n = encoding.input_ids.size();
  if (encoding.token_type_ids.size() != n || encoding.attention_mask.size() != n) __builtin_trap();
  if (max_length > 0 && n > size_t(max_length)) __builtin_trap();
  bool in_pair = false;
  for (size_t i = 0; i < n; ++i) {
    if (encoding.input_ids[i] < 0 || encoding.input_ids[i] >= tok.vocab_size()) __builtin_trap();
    if (encoding.attention_mask[i] != 1) __builtin_trap();
    const int32_t type = encoding.token_type_ids[i];
    if (type == 1) in_pair = true;
    if (type != (in_pair ? 1 : 0) || (in_pair && !pair)) __builtin_trap();
  }
  if (max_length == 0) {
    std::string expected(text);
    if (pair) expected += *pair;
    if (tok.decode(encoding.input_ids) != expected) __builtin_trap();  // exact round trip
  }
  return 0;
}
