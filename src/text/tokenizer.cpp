// load_tokenizer: picks the tokenizer implementation from the files a folder (or path) holds.
#include "wattwise/text/tokenizer.h"

#include <system_error>

#include "wattwise/core/error.h"
#include "wattwise/text/wordpiece.h"

namespace ww::text {

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (fs::is_directory(path, error)) {
    const fs::path config = path / "tokenizer_config.json";
    std::optional<fs::path> config_path;
    if (fs::is_regular_file(config, error)) config_path = config;
    // tokenizer.json describes the whole pipeline, so it wins over vocab.txt.
    if (fs::is_regular_file(path / "tokenizer.json", error)) {
      return load_wordpiece_tokenizer_json(path / "tokenizer.json", config_path);
    }
    if (fs::is_regular_file(path / "vocab.txt", error)) {
      return load_wordpiece_vocab(path / "vocab.txt", config_path);
    }
    if (fs::is_regular_file(path / "vocab.json", error) &&
        fs::is_regular_file(path / "merges.txt", error)) {
      fail("tokenizer folder ", path.string(),
           " holds a byte-level BPE tokenizer (vocab.json + merges.txt), which is not supported yet");
    }
    fail("tokenizer folder ", path.string(), " has neither tokenizer.json nor vocab.txt");
  }
  if (fs::is_regular_file(path, error)) {
    if (path.extension() == ".json") return load_wordpiece_tokenizer_json(path);
    return load_wordpiece_vocab(path, std::nullopt);
  }
  fail("tokenizer path ", path.string(), " does not exist");
}

}  // namespace ww::text
