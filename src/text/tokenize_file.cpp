#include "wattwise/text/tokenize_file.h"

#include <charconv>
#include <chrono>
#include <string>

#include "wattwise/io/file.h"
#include "wattwise/core/error.h"
#include "wattwise/text/input_file.h"
#include "wattwise/text/tokenizer.h"

namespace ww::text {
namespace {

void append_ids(std::string& out, const char* key, const std::vector<int32_t>& ids) {
  out += '"';
  out += key;
  out += "\":[";
  char buffer[16];
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    auto result = std::to_chars(buffer, buffer + sizeof buffer, ids[i]);
    out.append(buffer, result.ptr);
  }
  out += ']';
}

}  // namespace

TokenizeSummary tokenize_file(const TokenizeOptions& options) {
  if (options.max_length < 0) fail("max_length must be 0 (no truncation) or positive, not ", options.max_length);
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(options.tokenizer);
  std::vector<TextExample> examples = read_text_examples(options.input);

  TokenizeSummary summary;
  std::string out;
  out.reserve(examples.size() * 64);
  std::chrono::steady_clock::duration encode_time{0};
  for (const TextExample& example : examples) {
    std::optional<std::string_view> pair;
    if (example.text_pair) pair = *example.text_pair;
    Encoding encoding;
    auto before = std::chrono::steady_clock::now();
    try {
      encoding = tokenizer->encode(example.text, pair, options.max_length);
    } catch (const Error& e) {
      fail(options.input.string(), ":", example.line, ": ", e.what());
    }
    encode_time += std::chrono::steady_clock::now() - before;
    if (options.max_length > 0) {
      // Only an example that ends up exactly at the limit can have been truncated; encoding it
      // again without the limit tells (outside the timed part).
      if (encoding.input_ids.size() == size_t(options.max_length)) {
        Encoding full = tokenizer->encode(example.text, pair, 0);
        if (full.input_ids.size() > encoding.input_ids.size()) ++summary.truncated;
      }
    }
    out += '{';
    append_ids(out, "input_ids", encoding.input_ids);
    if (pair) {
      out += ',';
      append_ids(out, "token_type_ids", encoding.token_type_ids);
      ++summary.pairs;
    }
    out += "}\n";
    ++summary.examples;
    summary.tokens += encoding.input_ids.size();
    summary.text_bytes += example.text.size() + (pair ? pair->size() : 0);
  }
  summary.encode_seconds = std::chrono::duration<double>(encode_time).count();
  io::write_file_atomic(options.output, out);
  return summary;
}

}  // namespace ww::text
