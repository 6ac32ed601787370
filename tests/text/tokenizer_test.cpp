// Tokenizer files as untrusted input: ids far past the vocabulary are refused with the file and the
// token named, before an id table sized by the largest id is allocated (WordPiece and byte-level
// BPE alike).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "wattwise/text/tokenizer.h"

using namespace ww;
using namespace ww::text;
namespace fs = std::filesystem;

namespace {

fs::path write_json(const std::string& name, const nlohmann::json& j) {
  const fs::path dir = fs::temp_directory_path() / ("ww_tokenizer_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path path = dir / name;
  std::ofstream(path) << j.dump();
  return path;
}

nlohmann::json wordpiece_json(int64_t big_id) {
  nlohmann::json vocab = {{"[PAD]", 0}, {"[UNK]", 1}, {"[CLS]", 2}, {"[SEP]", 3}, {"hello", 4}};
  if (big_id >= 0) vocab["far"] = big_id;
  return {{"model", {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
                     {"max_input_chars_per_word", 100}, {"vocab", vocab}}},
          {"normalizer", {{"type", "BertNormalizer"}, {"lowercase", true}}},
          {"pre_tokenizer", {{"type", "BertPreTokenizer"}}}};
}

nlohmann::json bpe_json(int64_t big_id) {
  nlohmann::json vocab = {{"h", 0}, {"e", 1}, {"he", 2}};
  if (big_id >= 0) vocab["far"] = big_id;
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array({"h e"})}}},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}}};
}

}  // namespace

TEST(Tokenizer, IdsFarPastTheVocabularyAreRefused) {
  for (const auto& [kind, make] : {std::pair{"wordpiece", &wordpiece_json}, std::pair{"bpe", &bpe_json}}) {
    const fs::path bad = write_json(std::string(kind) + "_bad.json", make(2147483647));
    ww::testing::expect_error([&] { load_tokenizer(bad); },
                              {bad.string(), "token \"far\" has id 2147483647", "ids must lie below"});
    // A gap within the allowance loads (some vocabularies skip ids).
    const fs::path gap = write_json(std::string(kind) + "_gap.json", make(1000));
    EXPECT_NO_THROW(load_tokenizer(gap)) << kind;
  }
}
