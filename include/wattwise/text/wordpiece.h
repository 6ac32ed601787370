#pragma once
// BERT WordPiece tokenizer with the behaviour of Hugging Face `tokenizers` (bert-base-uncased):
//   added/special tokens ("[CLS]" typed in the text is the [CLS] id, as in HF)
//   -> BertNormalizer (clean text, spaces around CJK ideographs, strip accents, lowercase)
//   -> BertPreTokenizer (split on whitespace, every punctuation character is its own word)
//   -> WordPiece (greedy longest match first, "##" continuations, [UNK] for unknown words)
//   -> truncation 'longest_first' -> template post-processing ([CLS] A [SEP] B [SEP]).
// Unicode classes come from utf8proc plus generated exception tables
// (scripts/gen_hf_unicode_tables.py), so ids match HF for every code point.
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

// HF's BertNormalizer options. strip_accents unset means "same as lowercase", as in HF.
struct BertNormalizerOptions {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  std::optional<bool> strip_accents;
  bool lowercase = true;
};

// A token matched in the text before WordPiece runs (HF's AddedToken).
struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = true;
  bool single_word = false;  // only match when not inside a word
  bool lstrip = false;       // swallow whitespace on the left
  bool rstrip = false;       // swallow whitespace on the right
  bool normalized = false;   // match against the normalized text instead of the raw text
};

// One element of the post-processing template: a special token, or sequence A or B.
struct TemplatePiece {
  enum class Kind { kSpecial, kSequenceA, kSequenceB };
  Kind kind = Kind::kSpecial;
  std::vector<int32_t> ids;  // for kSpecial
  int32_t type_id = 0;
};

struct WordPieceConfig {
  std::vector<std::pair<std::string, int32_t>> vocab;  // token -> id (ids may have gaps)
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  int max_input_chars_per_word = 100;
  bool has_normalizer = true;  // false: text goes to the pre-tokenizer unchanged
  BertNormalizerOptions normalizer;
  std::vector<AddedToken> added_tokens;
  std::vector<TemplatePiece> single_template;  // empty: no special tokens added
  std::vector<TemplatePiece> pair_template;
  std::string pad_token = "[PAD]";
  // What save() writes back: the tokenizer.json text this config was read from (written verbatim)
  // or empty (a tokenizer.json is generated), and the tokenizer_config.json object as text.
  std::string source_tokenizer_json;
  std::string tokenizer_config_json;
};

// The standard BERT template [CLS] A [SEP] (B [SEP]) for the given ids.
std::vector<TemplatePiece> bert_single_template(int32_t cls_id, int32_t sep_id);
std::vector<TemplatePiece> bert_pair_template(int32_t cls_id, int32_t sep_id);

class WordPieceTokenizer final : public Tokenizer {
 public:
  // Throws ww::Error when the config is inconsistent (unk_token or a template id not in the vocab,
  // duplicate tokens or ids, ...); `source` names the file(s) it came from in those messages.
  explicit WordPieceTokenizer(WordPieceConfig config, std::string source = "WordPiece config");
  ~WordPieceTokenizer() override;

  Encoding encode(std::string_view text, std::optional<std::string_view> text_pair,
                  int max_length) const override;
  std::vector<std::string> tokenize(std::string_view text) const override;
  // tokenizers' WordPiece decoder: tokens joined by spaces, "##" pieces glued on, then its cleanup
  // (" ." -> ".", " 's" -> "'s", ...) on each token, as HF's decode(ids, skip_special_tokens=False).
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t vocab_size() const override;  // largest id + 1 (the embedding rows a model needs)
  int32_t pad_id() const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  void save(const std::filesystem::path& dir, int64_t model_max_length) const override;

  // The steps of encode(), exposed for tests and tools. Inputs must be valid UTF-8.
  std::string normalize(std::string_view text) const;                      // BertNormalizer
  std::vector<std::string> pre_tokenize(std::string_view normalized) const;  // BertPreTokenizer
  void append_wordpiece_ids(std::string_view word, std::vector<int32_t>& ids) const;  // one word
  // Ids of one sequence without special tokens (added tokens, normalizer, pre-tokenizer, WordPiece).
  std::vector<int32_t> encode_sequence(std::string_view text) const;

  const WordPieceConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Loaders. Errors name the file and what is wrong with it. A tokenizer_config.json given to the
// tokenizer.json loader is only kept for save(); tokenizer.json alone defines the behaviour.
std::unique_ptr<WordPieceTokenizer> load_wordpiece_tokenizer_json(
    const std::filesystem::path& path,
    const std::optional<std::filesystem::path>& tokenizer_config_json = std::nullopt);
// vocab.txt (one token per line, id = line number - 1) and optionally tokenizer_config.json
// (do_lower_case, strip_accents, tokenize_chinese_chars, unk/sep/pad/cls/mask tokens).
std::unique_ptr<WordPieceTokenizer> load_wordpiece_vocab(
    const std::filesystem::path& vocab_txt,
    const std::optional<std::filesystem::path>& tokenizer_config_json);

// HF's longest_first truncation of a (pair of) id sequences so that together they hold at most
// `max_tokens` ids (special tokens not counted).
void truncate_longest_first(std::vector<int32_t>& a, std::vector<int32_t>* b, size_t max_tokens);

}  // namespace ww::text
