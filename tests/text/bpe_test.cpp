// GPT-2 byte-level BPE: ids against Hugging Face tokenizers (committed fixtures made by
// scripts/make_bpe_fixtures.py), decode round trips, the merge order, loading, saving and errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "test_util.h"
#include "wattwise/text/bpe.h"
#include "wattwise/text/tokenizer.h"
#include "wattwise/text/wordpiece.h"

namespace fs = std::filesystem;
using ww::testing::expect_error;
using ww::text::BpeConfig;
using ww::text::BpeTokenizer;
using ww::text::Encoding;

namespace {

const fs::path kFixtures = fs::path(WW_SOURCE_DIR) / "tests/fixtures/bpe";
fs::path gpt2_dir() { return fs::path(WW_SHARED_DATA) / "tokenizers/gpt2"; }

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("ww-test-bpe-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, const std::string& contents) const {
    std::ofstream(path_ / name, std::ios::binary) << contents;
    return path_ / name;
  }

 private:
  fs::path path_;
};

// The token text (byte-level alphabet) of raw bytes.
std::string byte_token(std::string_view bytes) {
  std::string out;
  for (char b : bytes) {
    char32_t c = ww::text::bpe_byte_to_char(static_cast<uint8_t>(b));
    if (c < 0x80) out.push_back(char(c));
    else if (c < 0x800) out += {char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))};
  }
  return out;
}

// Every single byte (ids 0..255 = the byte) plus the given merges, whose results get the next ids.
BpeConfig byte_config(const std::vector<std::pair<std::string, std::string>>& merges) {
  BpeConfig c;
  for (int b = 0; b < 256; ++b) c.vocab.emplace_back(byte_token(std::string(1, char(b))), b);
  for (const auto& [left, right] : merges) {
    c.merges.emplace_back(byte_token(left), byte_token(right));
    bool known = false;
    for (const auto& [token, id] : c.vocab) known = known || token == byte_token(left + right);
    if (!known) c.vocab.emplace_back(byte_token(left + right), int32_t(c.vocab.size()));
  }
  return c;
}

std::vector<std::string> tokens_of(const BpeTokenizer& tok, std::string_view text) {
  std::vector<std::string> out;
  for (int32_t id : tok.encode_sequence(text)) out.push_back(tok.decode({id}));
  return out;
}

using Strings = std::vector<std::string>;

// Every row of a fixture file: encode must give HF's ids and type ids, decode the text back.
void check_fixture(const ww::text::Tokenizer& tok, const fs::path& file) {
  std::ifstream in(file);
  ASSERT_TRUE(in) << "cannot open " << file;
  std::string line;
  size_t rows = 0, round_trips = 0;
  while (std::getline(in, line)) {
    nlohmann::json row = nlohmann::json::parse(line);
    const std::string text = row["text"];
    std::optional<std::string> pair;
    if (row.contains("text_pair")) pair = row["text_pair"].get<std::string>();
    const int max_length = row["max_length"];
    Encoding e = tok.encode(text, pair ? std::optional<std::string_view>(*pair) : std::nullopt, max_length);
    EXPECT_EQ(e.input_ids, row["ids"].get<std::vector<int32_t>>())
        << file.filename() << ": text " << nlohmann::json(text).dump() << " max_length " << max_length;
    EXPECT_EQ(e.token_type_ids, row["type_ids"].get<std::vector<int32_t>>()) << nlohmann::json(text).dump();
    EXPECT_EQ(e.attention_mask, std::vector<int32_t>(e.input_ids.size(), 1));
    if (max_length == 0) {
      EXPECT_EQ(tok.decode(e.input_ids), text + pair.value_or(""));
      ++round_trips;
    }
    ++rows;
  }
  EXPECT_GT(rows, 300u) << file;
  EXPECT_GT(round_trips, 300u) << file;
}

}  // namespace

TEST(Bpe, TinyFixtureMatchesHuggingFace) {
  auto tok = ww::text::load_tokenizer(kFixtures / "tiny");
  EXPECT_EQ(tok->vocab_size(), 1257);
  check_fixture(*tok, kFixtures / "hard_cases_tiny.jsonl");
}

TEST(Bpe, Gpt2FixtureMatchesHuggingFace) {
  if (!fs::exists(gpt2_dir() / "vocab.json")) GTEST_SKIP() << "no " << gpt2_dir() << " (WW_SHARED_DATA)";
  auto tok = ww::text::load_tokenizer(gpt2_dir());
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->pad_id(), 50256);  // GPT-2 has no pad token: <|endoftext|> stands in
  EXPECT_EQ(tok->id_to_token(50256), "<|endoftext|>");
  check_fixture(*tok, kFixtures / "hard_cases_gpt2.jsonl");
}

TEST(Bpe, RealTextsRoundTrip) {
  const fs::path shakespeare = fs::path(WW_SHARED_DATA) / "tinyshakespeare/input.txt";
  const fs::path sst2 = fs::path(WW_SHARED_DATA) / "glue/SST-2/dev.tsv";
  if (!fs::exists(gpt2_dir() / "vocab.json") || !fs::exists(shakespeare) || !fs::exists(sst2)) {
    GTEST_SKIP() << "real data sets missing under " << WW_SHARED_DATA;
  }
  auto tok = ww::text::load_tokenizer(gpt2_dir());
  const std::string text = read_text(shakespeare);
  std::vector<int32_t> ids = tok->encode(text, std::nullopt, 0).input_ids;
  EXPECT_GT(ids.size(), 250000u);
  EXPECT_LT(ids.size(), 400000u);
  EXPECT_EQ(tok->decode(ids), text);
  std::istringstream lines(read_text(sst2));
  std::string line;
  size_t checked = 0;
  while (std::getline(lines, line)) {
    EXPECT_EQ(tok->decode(tok->encode(line, std::nullopt, 0).input_ids), line);
    ++checked;
  }
  EXPECT_GT(checked, 800u);
}

TEST(Bpe, PreTokenizerFollowsGpt2Pattern) {
  BpeTokenizer tok(byte_config({}));
  EXPECT_EQ(tok.pre_tokenize("Hello  world\n\nfoo"), (Strings{"Hello", " ", " world", "\n", "\n", "foo"}));
  EXPECT_EQ(tok.pre_tokenize("it's I'M 'sa ''s"), (Strings{"it", "'s", " I", "'", "M", " '", "sa", " ''", "s"}));
  EXPECT_EQ(tok.pre_tokenize("we're they'll he'd"),
            (Strings{"we", "'re", " they", "'ll", " he", "'d"}));
  EXPECT_EQ(tok.pre_tokenize("abc123 45!? x"), (Strings{"abc", "123", " 45", "!?", " x"}));
  EXPECT_EQ(tok.pre_tokenize("a\n b"), (Strings{"a", "\n", " b"}));
  EXPECT_EQ(tok.pre_tokenize("a \n\tb  "), (Strings{"a", " \n", "\t", "b", "  "}));
  // Non-ASCII classes: letters, numbers (Roman numeral, superscript), NBSP is whitespace but only
  // U+0020 may lead a word.
  EXPECT_EQ(tok.pre_tokenize("日本語 Ⅻ² \u00a0x"), (Strings{"日本語", " Ⅻ²", " ", "\u00a0", "x"}));
  EXPECT_EQ(tok.pre_tokenize("e\u0301 😀😀 a"), (Strings{"e", "\u0301", " 😀😀", " a"}));
  EXPECT_EQ(tok.pre_tokenize(""), Strings{});
}

TEST(Bpe, MergesApplyLowestRankFirstThenLeftmost) {
  // "b c" has a lower rank than "a b": abc -> a + bc, although "a b" comes first in the word.
  BpeTokenizer by_rank(byte_config({{"b", "c"}, {"a", "b"}}));
  EXPECT_EQ(tokens_of(by_rank, "abc"), (Strings{"a", "bc"}));
  EXPECT_EQ(tokens_of(by_rank, "abab"), (Strings{"ab", "ab"}));
  // Equal ranks: the leftmost pair merges first.
  BpeTokenizer leftmost(byte_config({{"a", "a"}}));
  EXPECT_EQ(tokens_of(leftmost, "aaa"), (Strings{"aa", "a"}));
  EXPECT_EQ(tokens_of(leftmost, "aaaaa"), (Strings{"aa", "aa", "a"}));
  // Merges build on merges; a space joins the word after it (byte-level Ġ).
  BpeTokenizer chain(byte_config({{"a", "b"}, {"ab", "c"}, {" ", "abc"}}));
  EXPECT_EQ(tokens_of(chain, "abc abc abcab"), (Strings{"abc", " abc", " abc", "ab"}));
  EXPECT_EQ(chain.id_to_token(chain.encode_sequence(" abc")[0]), "\xC4\xA0" "abc");  // "Ġabc"
}

TEST(Bpe, CacheGivesTheSameIdsAcrossTokenizersAndThreads) {
  BpeTokenizer one(byte_config({{"a", "b"}}));
  BpeTokenizer two(byte_config({{"b", "c"}}));
  // The per-thread cache belongs to one tokenizer at a time: alternating must not mix them up.
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(tokens_of(one, "abc"), (Strings{"ab", "c"}));
    EXPECT_EQ(tokens_of(two, "abc"), (Strings{"a", "bc"}));
  }
  // Many distinct words (more than the cache holds) and threads give what one thread gives.
  std::string text;
  for (int i = 0; i < 70000; ++i) text += " w" + std::to_string(i) + "ab";
  const std::vector<int32_t> expected = one.encode(text, std::nullopt, 0).input_ids;
  std::vector<std::vector<int32_t>> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] { results[t] = one.encode(text, std::nullopt, 0).input_ids; });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
  EXPECT_EQ(one.decode(expected), text);
}

TEST(Bpe, AddedTokensPairsAndTruncation) {
  BpeConfig c = byte_config({{"a", "b"}});
  c.vocab.emplace_back("<|endoftext|>", 300);
  c.added_tokens.push_back({"<|endoftext|>", 300, true});
  BpeTokenizer tok(c);
  EXPECT_EQ(tok.vocab_size(), 301);
  EXPECT_EQ(tok.pad_id(), 300);
  Encoding e = tok.encode("ab<|endoftext|>a", std::string_view("bab"), 0);
  EXPECT_EQ(e.input_ids, (std::vector<int32_t>{256, 300, 'a', 'b', 256}));
  EXPECT_EQ(e.token_type_ids, (std::vector<int32_t>{0, 0, 0, 1, 1}));
  EXPECT_EQ(tok.decode(e.input_ids), "ab<|endoftext|>abab");
  // Truncation from the right; a pair loses from the longer text first (longest_first).
  EXPECT_EQ(tok.encode("a b c d", std::nullopt, 3).input_ids, (std::vector<int32_t>{'a', ' ', 'b'}));
  Encoding pair = tok.encode("a b c d", std::string_view("x"), 3);
  EXPECT_EQ(pair.input_ids, (std::vector<int32_t>{'a', ' ', 'x'}));
  EXPECT_EQ(pair.token_type_ids, (std::vector<int32_t>{0, 0, 1}));
}

TEST(Bpe, DecodeGivesBackRawBytesEvenWhenNotUtf8) {
  BpeTokenizer tok(byte_config({}));
  EXPECT_EQ(tok.decode({0xFF, 0xC3, 'a', 0x00}), std::string("\xFF\xC3" "a\0", 4));
  const std::string bytes("\xE2\x82\xAC\xF0\x9F\x98\x80 \t\n\r\x01", 12);
  EXPECT_EQ(tok.decode(tok.encode(bytes, std::nullopt, 0).input_ids), bytes);
  expect_error([&] { tok.decode({256}); }, {"token id 256", "not in the vocabulary"});
  expect_error([&] { tok.decode({-1}); }, {"token id -1"});
  expect_error([&] { tok.encode("ok \xFF", std::nullopt, 0); }, {"not valid UTF-8"});
  expect_error([&] { tok.encode("ok", std::string_view("\xC3"), 0); }, {"text pair", "not valid UTF-8"});
}

TEST(Bpe, SavedTokenizerConfigHasTheModelsLongestInput) {
  auto tok = ww::text::load_tokenizer(kFixtures / "tiny");
  TempDir dir;
  auto model_max_length = [&](const char* folder, int64_t n) {
    tok->save(dir.path() / folder, n);
    return nlohmann::json::parse(std::ifstream(dir.path() / folder / "tokenizer_config.json")).value("model_max_length", 0);
  };
  EXPECT_EQ(model_max_length("model", 64), 64);    // the model's n_positions
  EXPECT_EQ(model_max_length("unknown", 0), 1024);  // GPT-2's, when the model is not known
}

TEST(Bpe, SavedTokenizerLoadsBackTheSame) {
  auto tok = ww::text::load_tokenizer(kFixtures / "tiny");
  TempDir dir;
  tok->save(dir.path(), 0);
  for (const char* name : {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                           "special_tokens_map.json"}) {
    EXPECT_TRUE(fs::exists(dir.path() / name)) << name;
  }
  auto from_json = ww::text::load_tokenizer(dir.path());  // tokenizer.json wins
  auto from_files = ww::text::load_bpe_files(dir.path() / "vocab.json", dir.path() / "merges.txt");
  EXPECT_NE(dynamic_cast<BpeTokenizer*>(from_json.get()), nullptr);
  const std::string text = "Hello there, it's 2024!\n\n  Done <|endoftext|> 日本";
  const auto expected = tok->encode(text, std::nullopt, 0).input_ids;
  EXPECT_EQ(from_json->encode(text, std::nullopt, 0).input_ids, expected);
  EXPECT_EQ(from_files->encode(text, std::nullopt, 0).input_ids, expected);
  EXPECT_EQ(from_json->vocab_size(), tok->vocab_size());
  EXPECT_EQ(read_text(dir.path() / "merges.txt"), read_text(kFixtures / "tiny/merges.txt"));
  auto config = nlohmann::json::parse(read_text(dir.path() / "tokenizer_config.json"));
  EXPECT_EQ(config["tokenizer_class"], "GPT2Tokenizer");
  EXPECT_EQ(config["eos_token"], "<|endoftext|>");
}

TEST(Bpe, LoadErrorsNameTheFileAndProblem) {
  TempDir dir;
  dir.write("vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  dir.write("merges.txt", "#version: 0.2\na b\nab c\n");
  expect_error([&] { ww::text::load_tokenizer(dir.path()); },
               {"merge 2", "\"c\"", "not in the vocabulary"});
  dir.write("merges.txt", "#version: 0.2\na b\nabc\n");
  expect_error([&] { ww::text::load_tokenizer(dir.path()); }, {"merges.txt:3", "two tokens"});
  dir.write("vocab.json", R"({"a": 0, "b": "one"})");
  expect_error([&] { ww::text::load_tokenizer(dir.path()); }, {"vocab.json", "\"b\"", "integer"});
  fs::remove(dir.path() / "merges.txt");
  expect_error([&] { ww::text::load_tokenizer(dir.path()); }, {"no merges.txt"});

  TempDir json_dir;
  json_dir.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [],
      "unk_token": "<unk>"}, "normalizer": null, "pre_tokenizer": {"type": "ByteLevel"}})");
  expect_error([&] { ww::text::load_tokenizer(json_dir.path()); }, {"tokenizer.json", "unk_token"});
  json_dir.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
      "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}})");
  expect_error([&] { ww::text::load_tokenizer(json_dir.path()); }, {"pre_tokenizer must be ByteLevel"});
  json_dir.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1},
      "merges": [["a", "b"]]}, "normalizer": null, "pre_tokenizer": {"type": "ByteLevel"}})");
  expect_error([&] { ww::text::load_tokenizer(json_dir.path()); }, {"merged token \"ab\""});
}

TEST(WordPieceDecode, JoinsPiecesAndCleansUpLikeTokenizers) {
  ww::text::WordPieceConfig c;
  int32_t next = 0;
  for (const char* token : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", ",", "world", "!", "it",
                            "'", "s", "un", "##aff", "##able", ".", "do", "not", "n", "t"}) {
    c.vocab.emplace_back(token, next++);
  }
  c.single_template = ww::text::bert_single_template(2, 3);
  c.pair_template = ww::text::bert_pair_template(2, 3);
  ww::text::WordPieceTokenizer tok(c);
  auto decode = [&](std::string_view text) { return tok.decode(tok.encode(text, std::nullopt, 0).input_ids); };
  EXPECT_EQ(decode("Hello, world!"), "[CLS] hello, world! [SEP]");
  EXPECT_EQ(decode("unaffable."), "[CLS] unaffable. [SEP]");
  // tokenizers cleans each token, so " ' " never forms: "it ' s" stays apart, as HF gives it.
  EXPECT_EQ(decode("it's do not"), "[CLS] it ' s do not [SEP]");
  EXPECT_EQ(tok.decode({}), "");
  EXPECT_EQ(tok.decode({12}), "##aff");  // a first token keeps its prefix, as in HF
  expect_error([&] { tok.decode({99}); }, {"token id 99"});
}
