// load_tokenizer: picks the tokenizer implementation from the files a folder (or path) holds.
#include "wattwise/text/tokenizer.h"

#include <system_error>

#include "wattwise/core/error.h"
#include "wattwise/text/bpe.h"
#include "wattwise/text/wordpiece.h"

namespace ww::text {

void check_token_ids_dense(int32_t max_id, std::string_view max_id_token, size_t tokens,
                           const std::string& source) {
  if (int64_t(max_id) < int64_t(tokens) + kMaxTokenIdGap) return;
  fail(source, ": token \"", max_id_token, "\" has id ", max_id, ", but the vocabulary holds only ", tokens,
       " tokens: ids must lie below ", int64_t(tokens) + kMaxTokenIdGap, " (the token count + ", kMaxTokenIdGap,
       "), or the id tables would be mostly empty");
}

std::string Tokenizer::decode(const std::vector<int32_t>&) const {
  fail("this tokenizer cannot decode token ids (decode is implemented for WordPiece and byte-level BPE)");
}

namespace {

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::filesystem::path& file,
                                               const std::optional<std::filesystem::path>& config) {
  if (tokenizer_json_model_type(file) == "BPE") return load_bpe_tokenizer_json(file, config);
  return load_wordpiece_tokenizer_json(file, config);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (fs::is_directory(path, error)) {
    const fs::path config = path / "tokenizer_config.json";
    std::optional<fs::path> config_path;
    if (fs::is_regular_file(config, error)) config_path = config;
    // tokenizer.json describes the whole pipeline, so it wins over vocab.txt / vocab.json.
    if (fs::is_regular_file(path / "tokenizer.json", error)) {
      return load_tokenizer_json(path / "tokenizer.json", config_path);
    }
    if (fs::is_regular_file(path / "vocab.txt", error)) {
      return load_wordpiece_vocab(path / "vocab.txt", config_path);
    }
    if (fs::is_regular_file(path / "vocab.json", error)) {
      if (!fs::is_regular_file(path / "merges.txt", error)) {
        fail("tokenizer folder ", path.string(), " has vocab.json but no merges.txt (byte-level BPE needs both)");
      }
      return load_bpe_files(path / "vocab.json", path / "merges.txt", config_path);
    }
    fail("tokenizer folder ", path.string(),
         " has neither tokenizer.json nor vocab.txt (nor GPT-2's vocab.json + merges.txt)");
  }
  if (fs::is_regular_file(path, error)) {
    if (path.extension() == ".json") return load_tokenizer_json(path, std::nullopt);
    return load_wordpiece_vocab(path, std::nullopt);
  }
  fail("tokenizer path ", path.string(), " does not exist");
}

}  // namespace ww::text
