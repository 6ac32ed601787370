#pragma once
// GPT-2 byte-level BPE tokenizer with the behaviour of Hugging Face `tokenizers` (GPT2TokenizerFast):
//   added tokens ("<|endoftext|>" typed in the text is its id, as in HF)
//   -> ByteLevel pre-tokenizer: GPT-2's pattern
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//      matched by hand over code points (no regex library; \p{L}/\p{N} from utf8proc plus the code
//      points Oniguruma's newer Unicode tables add, \s = Unicode White_Space), add_prefix_space off
//   -> each byte of a piece becomes one symbol (GPT-2's byte-to-unicode alphabet)
//   -> merges applied lowest rank first (ties: leftmost), exactly as tokenizers' Word::merge_all
//   -> no special tokens: a pair is A then B (token_type_ids 0 for A, 1 for B, as tokenizers'
//      encode gives; GPT-2 models should not be fed token_type_ids, transformers does not return
//      them for GPT-2), truncation 'longest_first' from the right.
// Words already seen are served from a bounded per-thread cache, so repeated words are fast and
// encode() stays safe to call from several threads at once.
//
// pad_id(): GPT-2 has no padding token; the pad_token of tokenizer_config.json when given, else
// "<|endoftext|>" (50256 for GPT-2), else 0. The attention mask is what marks padding anyway.
//
// Invalid UTF-8: encode() rejects it (ww::Error), as Python's str cannot hold it either. decode()
// returns the exact bytes the ids stand for, even when they are not valid UTF-8 (HF would insert
// U+FFFD; nothing is replaced here), so decode(encode(x)) == x for every valid text x.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wattwise/text/tokenizer.h"

namespace ww::text {

struct BpeAddedToken {
  std::string content;
  int32_t id = 0;
  bool special = true;
};

struct BpeConfig {
  std::vector<std::pair<std::string, int32_t>> vocab;  // token (byte-level alphabet) -> id
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order (line order)
  std::vector<BpeAddedToken> added_tokens;                  // matched in the raw text first
  int32_t pair_type_id = 1;    // token type of the second text of a pair (tokenizers gives 1)
  bool ignore_merges = false;  // tokenizers' option: a whole piece found in the vocab is one id
  std::optional<std::string> pad_token;  // from tokenizer_config.json; see pad_id()
  // What save() writes back: the tokenizer_config.json text this came with (empty: generated) and
  // the tokenizer.json text it was loaded from (empty: generated).
  std::string tokenizer_config_json;
  std::string source_tokenizer_json;
};

class BpeTokenizer final : public Tokenizer {
 public:
  // Throws ww::Error when the config is inconsistent (a merge whose parts or result are not in the
  // vocabulary, duplicate tokens or ids, ...); `source` names the file(s) in those messages.
  explicit BpeTokenizer(BpeConfig config, std::string source = "BPE config");
  ~BpeTokenizer() override;

  Encoding encode(std::string_view text, std::optional<std::string_view> text_pair,
                  int max_length) const override;
  std::vector<std::string> tokenize(std::string_view text) const override;  // byte-level tokens
  std::string decode(const std::vector<int32_t>& ids) const override;       // the exact bytes
  int32_t vocab_size() const override;  // largest id + 1 (added tokens included)
  int32_t pad_id() const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  // Writes vocab.json, merges.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json.
  void save(const std::filesystem::path& dir, int64_t model_max_length) const override;

  // The steps of encode(), exposed for tests and tools. Inputs must be valid UTF-8.
  std::vector<std::string> pre_tokenize(std::string_view text) const;  // pieces of raw text
  std::vector<int32_t> encode_sequence(std::string_view text) const;   // ids without truncation

  const BpeConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// GPT-2's byte-to-unicode alphabet: the code point that stands for byte b in vocab.json.
char32_t bpe_byte_to_char(uint8_t b);

// Loaders. Errors name the file and what is wrong with it.
// vocab.json + merges.txt (+ optional tokenizer_config.json: pad_token, added_tokens_decoder);
// without added_tokens_decoder, "<|endoftext|>" is an added special token when it is in the vocab
// (as GPT2TokenizerFast makes it).
std::unique_ptr<BpeTokenizer> load_bpe_files(
    const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt,
    const std::optional<std::filesystem::path>& tokenizer_config_json = std::nullopt);
// A tokenizer.json whose model is BPE with a ByteLevel pre-tokenizer (GPT-2 style).
std::unique_ptr<BpeTokenizer> load_bpe_tokenizer_json(
    const std::filesystem::path& path,
    const std::optional<std::filesystem::path>& tokenizer_config_json = std::nullopt);

// The "model.type" of a tokenizer.json ("BPE", "WordPiece", ... or "" when absent); throws
// ww::Error when the file cannot be read or is not JSON.
std::string tokenizer_json_model_type(const std::filesystem::path& path);

}  // namespace ww::text
