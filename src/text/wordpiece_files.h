#pragma once
// Between wordpiece.cpp (the tokenizer) and wordpiece_files.cpp (its files).
#include <string>

#include "wattwise/text/wordpiece.h"

namespace ww::text {

// A tokenizer.json equivalent to `config` (for a tokenizer loaded from vocab.txt).
std::string generate_tokenizer_json(const WordPieceConfig& config, const WordPieceTokenizer& tokenizer);

}  // namespace ww::text
