// libFuzzer target: arbitrary bytes through the WordPiece tokenizer (single texts and pairs, with
// and without truncation). Invalid UTF-8 must be rejected with ww::Error (checked against
// utf8proc's decoder as an independent oracle); valid text must encode, with every id in the
// vocabulary, matching lengths, 0/1 token types and the max_length respected.
//
// Vocabulary: the tokenizer at $WW_FUZZ_VOCAB (folder, tokenizer.json or vocab.txt), e.g. the real
// bert-base-uncased; otherwise fuzz/corpus/tokenizer_vocab.txt, a small vocabulary this target
// writes there when it is absent.
//
// Input layout: byte 0 = flags (bit 0: pair, bit 1: truncate, bits 2..7: max_length - 3),
// byte 1 = where the pair splits (fraction of the rest / 256), then the text bytes.
#include <utf8proc.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "wattwise/core/error.h"
#include "wattwise/text/tokenizer.h"

namespace {

std::filesystem::path default_vocab_path() {
#ifdef WW_SOURCE_DIR
  return std::filesystem::path(WW_SOURCE_DIR) / "fuzz/corpus/tokenizer_vocab.txt";
#else
  return "fuzz/corpus/tokenizer_vocab.txt";
#endif
}

// A small vocabulary that still exercises every step: specials, ASCII, continuations, accents,
// CJK, Cyrillic, multi-byte continuations.
std::string small_vocab() {
  std::string v = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  for (int c = 33; c < 127; ++c) {
    if (c >= 'A' && c <= 'Z') continue;  // lowercased away
    v += char(c);
    v += '\n';
    if (std::isalnum(c)) v += "##" + std::string(1, char(c)) + "\n";
  }
  for (const char* word : {"the", "un", "##aff", "##able", "##affable", "hello", "world", "##ing",
                           "é", "##é", "中", "文", "ж", "##ж", "σ", "##σ", "ü", "##ü", "…", "«",
                           "»", "##ab", "##abc", "abc", "ab"}) {
    v += word;
    v += '\n';
  }
  return v;
}

std::unique_ptr<ww::text::Tokenizer> load() {
  if (const char* path = std::getenv("WW_FUZZ_VOCAB"); path && *path) {
    return ww::text::load_tokenizer(path);
  }
  std::filesystem::path path = default_vocab_path();
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    std::filesystem::create_directories(path.parent_path(), error);
    std::ofstream(path, std::ios::binary) << small_vocab();
  }
  if (std::filesystem::exists(path, error)) return ww::text::load_tokenizer(path);
  // Read-only checkout: the same vocabulary through a temporary file.
  std::filesystem::path temp = std::filesystem::temp_directory_path() / "ww_fuzz_tokenizer_vocab.txt";
  std::ofstream(temp, std::ios::binary) << small_vocab();
  return ww::text::load_tokenizer(temp);
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
  const bool is_pair = flags & 1;
  const int max_length = (flags & 2) ? 3 + (flags >> 2) : 0;
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
  } catch (const ww::Error& e) {
    if (valid) __builtin_trap();  // valid UTF-8 with room for the special tokens must encode
    return 0;
  }
  if (!valid) __builtin_trap();  // invalid UTF-8 must be rejected
  const size_t n = encoding.input_ids.size();
  if (encoding.token_type_ids.size() != n || encoding.attention_mask.size() != n) __builtin_trap();
  if (max_length > 0 && n > size_t(max_length)) __builtin_trap();
  for (size_t i = 0; i < n; ++i) {
    if (encoding.input_ids[i] < 0 || encoding.input_ids[i] >= tok.vocab_size()) __builtin_trap();
    if (encoding.token_type_ids[i] != 0 && (!pair || encoding.token_type_ids[i] != 1)) __builtin_trap();
    if (encoding.attention_mask[i] != 1) __builtin_trap();
  }
  // Without truncation, the tokens of the text are exactly what encode put between the specials.
  static const size_t special_tokens = tok.encode("", std::nullopt, 0).input_ids.size();
  if (!pair && max_length == 0 && tok.tokenize(text).size() + special_tokens != n) __builtin_trap();
  return 0;
}
