#pragma once
// Tokenizes a file of text examples (see input_file.h for the formats) into JSON Lines:
// one line per example, in input order: {"input_ids":[...]} for single texts and
// {"input_ids":[...],"token_type_ids":[...]} for pairs.
#include <cstddef>
#include <filesystem>

namespace ww::text {

struct TokenizeOptions {
  std::filesystem::path tokenizer;  // tokenizer folder or file (see load_tokenizer)
  std::filesystem::path input;
  std::filesystem::path output;     // replaced atomically; untouched when anything fails
  int max_length = 0;               // > 0: truncate each example to this many ids (special included)
};

struct TokenizeSummary {
  size_t examples = 0;
  size_t pairs = 0;
  size_t tokens = 0;           // ids written, special tokens included
  size_t truncated = 0;        // examples that lost ids to max_length
  size_t text_bytes = 0;       // UTF-8 bytes of all texts and text pairs
  double encode_seconds = 0;   // time spent in Tokenizer::encode only (no loading, reading, writing)
};

TokenizeSummary tokenize_file(const TokenizeOptions& options);

}  // namespace ww::text
