#pragma once
// Tokenizers turn text into model input ids. WordPiece (BERT/DistilBERT) lands with the engine
// foundation; byte-level BPE (GPT-2) implements the same interface later.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ww::text {

struct Encoding {
  std::vector<int32_t> input_ids;       // with special tokens ([CLS] a [SEP] b [SEP])
  std::vector<int32_t> token_type_ids;  // 0 for the first segment, 1 for the second
  std::vector<int32_t> attention_mask;  // all 1 (padding happens at batching time)
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Encodes one example (optionally a pair) with special tokens. max_length > 0 truncates as HF's
  // default 'longest_first' strategy does, so the result including special tokens fits.
  // Invalid UTF-8 is an error (ww::Error) that says so.
  virtual Encoding encode(std::string_view text, std::optional<std::string_view> text_pair,
                          int max_length) const = 0;
  // The tokens of a text without special tokens and without truncation.
  virtual std::vector<std::string> tokenize(std::string_view text) const = 0;
  // The text of token ids, as Hugging Face's decode(ids, skip_special_tokens=False) gives it
  // (special tokens included). Byte-level BPE gives back the exact bytes, even when they are not
  // valid UTF-8. An id outside the vocabulary is an error. The default throws ww::Error saying
  // the tokenizer cannot decode.
  virtual std::string decode(const std::vector<int32_t>& ids) const;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t pad_id() const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int32_t id) const = 0;

  // Writes the tokenizer's files (vocab.txt, tokenizer.json, tokenizer_config.json, ...) so that a
  // saved model directory is complete for Hugging Face. `model_max_length`: the model's longest
  // input (its positions), written into tokenizer_config.json where the file this tokenizer came
  // with gives none (Hugging Face's tokenizer truncates at it; without it, at nothing); 0: unknown.
  virtual void save(const std::filesystem::path& dir, int64_t model_max_length) const = 0;
};

// Tokenizers keep tables indexed by id, sized by the largest id: an id far above the number of
// tokens makes a table mostly empty (2^31 - 1 would ask for 64 GiB). Throws ww::Error naming
// `source` and the token when the largest id is not below the number of tokens + kMaxTokenIdGap.
constexpr int64_t kMaxTokenIdGap = 65536;
void check_token_ids_dense(int32_t max_id, std::string_view max_id_token, size_t tokens,
                           const std::string& source);

// Loads a tokenizer from a model or tokenizer directory (tokenizer.json, vocab.txt, vocab.json +
// merges.txt and tokenizer_config.json, whichever exist) or from a single vocab.txt /
// tokenizer.json file. A tokenizer.json whose model is BPE gives the byte-level BPE tokenizer
// (bpe.h), any other the WordPiece one (wordpiece.h).
// Throws ww::Error naming the file and the problem.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

}  // namespace ww::text
