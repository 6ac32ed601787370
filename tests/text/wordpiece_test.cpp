// WordPiece tokenizer, UTF-8 checks and text input files. Parity with Hugging Face on real text is
// checked by tests/cli/tokenizer_parity.sh; these tests pin each step on small inputs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include <unistd.h>
#include <utf8proc.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "wattwise/core/error.h"
#include "wattwise/text/input_file.h"
#include "wattwise/text/tokenize_file.h"
#include "wattwise/text/utf8.h"
#include "wattwise/text/wordpiece.h"

namespace {
struct CodepointRange {
  char32_t first, last;
};
#include "text/hf_unicode_tables.inc"
}  // namespace

using namespace ww::text;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kSmallVocab = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "##affable", "hello",
    ",",     "world", "!",     "#",     "a",      "##a", "é",     "##é",   "cafe",      "中",
    "文",    "the",   "cat",   "sat",   "b",      "##b", "$",     "i",     "x",         "##x",
    "ж",     "##ж"};

WordPieceConfig small_config() {
  WordPieceConfig c;
  for (size_t i = 0; i < kSmallVocab.size(); ++i) c.vocab.emplace_back(kSmallVocab[i], int32_t(i));
  for (const char* special : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    int32_t id = int32_t(std::find(kSmallVocab.begin(), kSmallVocab.end(), special) - kSmallVocab.begin());
    c.added_tokens.push_back(AddedToken{special, id, true, false, false, false, false});
  }
  c.single_template = bert_single_template(2, 3);
  c.pair_template = bert_pair_template(2, 3);
  return c;
}

const WordPieceTokenizer& small() {
  static WordPieceTokenizer tokenizer(small_config(), "small test vocab");
  return tokenizer;
}

int32_t id(const std::string& token) { return *small().token_to_id(token); }

std::vector<int32_t> ids(std::initializer_list<const char*> tokens) {
  std::vector<int32_t> out;
  for (const char* t : tokens) out.push_back(id(t));
  return out;
}

// A fresh temporary folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("ww-test-wordpiece-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
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

using ww::testing::expect_error;

fs::path real_tokenizer_dir() { return fs::path(WW_SHARED_DATA) / "tokenizers/bert-base-uncased"; }

}  // namespace

// ---- UTF-8 -----------------------------------------------------------------------------------

TEST(Utf8, AcceptsValidTextAndRejectsEachKindOfInvalidSequence) {
  EXPECT_FALSE(find_invalid_utf8("plain ascii, é, 中, 🥰, \U0010FFFF"));
  struct Case {
    std::string bytes;
    size_t offset;
    std::string reason;
  };
  const Case cases[] = {
      {"ab\xFF", 2, "never occurs"},
      {"\xC0\x80", 0, "overlong"},
      {"x\xE0\x80\x80", 1, "overlong form, a surrogate or above"},
      {"\xED\xA0\x80", 0, "surrogate"},
      {"\xF4\x90\x80\x80", 0, "above U+10FFFF"},
      {"abc\xE2\x82", 3, "cut off"},
      {"\x80", 0, "continuation byte"},
      {"\xC3(", 0, "not followed by enough continuation bytes"},
  };
  for (const Case& c : cases) {
    auto problem = find_invalid_utf8(c.bytes);
    ASSERT_TRUE(problem) << c.reason;
    EXPECT_EQ(problem->offset, c.offset) << c.reason;
    EXPECT_NE(problem->reason.find(c.reason), std::string::npos) << problem->reason;
  }
}

TEST(Utf8, AgreesWithUtf8procOnRandomBytes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20000; ++trial) {
    std::string bytes(1 + rng() % 6, '\0');
    for (char& b : bytes) b = char(rng() % 4 == 0 ? rng() % 128 : 0x80 + rng() % 128);
    bool valid_utf8proc = true;
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(bytes.data());
    utf8proc_ssize_t left = utf8proc_ssize_t(bytes.size());
    while (left > 0) {
      utf8proc_int32_t c;
      utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
      if (n < 0) {
        valid_utf8proc = false;
        break;
      }
      p += n;
      left -= n;
    }
    EXPECT_EQ(!find_invalid_utf8(bytes), valid_utf8proc) << "bytes of trial " << trial;
  }
}

// ---- normalizer ------------------------------------------------------------------------------

TEST(WordPieceNormalizer, CleansTextLikeHf) {
  // NUL, other controls, U+FFFD and format characters go; \t \n \r and Unicode spaces become ' '.
  EXPECT_EQ(small().normalize(std::string("a\0b\x07" "c\x7F", 6)), "abc");
  EXPECT_EQ(small().normalize("a\tb\nc\rd\x0B" "e\x0C" "f"), "a b c def");
  EXPECT_EQ(small().normalize("x\u00A0y\u3000z\u2028w"), "x y z w");
  EXPECT_EQ(small().normalize("zero\u200Bwidth\uFEFF\uFFFD\u0085"), "zerowidth");
  EXPECT_EQ(small().normalize("\uE000private"), "private");
}

TEST(WordPieceNormalizer, SpacesAroundCjkStripsAccentsLowercases) {
  EXPECT_EQ(small().normalize("中文x"), " 中  文 x");
  EXPECT_EQ(small().normalize("Café ÉCOLE naïve"), "cafe ecole naive");
  EXPECT_EQ(small().normalize("e\u0301\u0323"), "e");
  EXPECT_EQ(small().normalize("\u0130"), "i");          // decomposed to I + U+0307, mark stripped
  EXPECT_EQ(small().normalize("\u212A\u2126"), "k\u03C9");  // Kelvin, Ohm: singleton decompositions
  EXPECT_EQ(small().normalize("\uF900"), " \u8C48 ");    // compatibility ideograph decomposes
  EXPECT_EQ(small().normalize("\uFF21"), "\uFF41");       // full width: no compatibility folding
}

TEST(WordPieceNormalizer, OptionsTurnStepsOff) {
  WordPieceConfig c = small_config();
  c.normalizer.lowercase = false;  // strip_accents unset follows lowercase: off too
  WordPieceTokenizer cased(c);
  EXPECT_EQ(cased.normalize("Café 中"), "Café  中 ");
  c.normalizer.lowercase = true;
  c.normalizer.strip_accents = false;
  c.normalizer.handle_chinese_chars = false;
  c.normalizer.clean_text = false;
  WordPieceTokenizer keep_accents(c);
  EXPECT_EQ(keep_accents.normalize("Café\u0130\t中"), "café" "i\u0307" "\t中");
  c.has_normalizer = false;
  WordPieceTokenizer none(c);
  EXPECT_EQ(none.normalize(std::string("A\0\xC3\x89", 4)), std::string("A\0\xC3\x89", 4));
}

TEST(WordPieceNormalizer, FollowsTokenizersOlderUnicodeTables) {
  // utf8proc (Unicode 15) and tokenizers' tables (older) disagree here; HF's view wins.
  EXPECT_EQ(small().normalize("\u0890"), "\u0890");      // utf8proc: Cf; tokenizers keeps it
  EXPECT_EQ(small().normalize("\u1734"), "");            // utf8proc: Mc; tokenizers strips it
  EXPECT_EQ(small().normalize("\u0898"), "\u0898");      // utf8proc: Mn; tokenizers keeps it
  EXPECT_EQ(small().normalize("\U00011938"), "\U00011938");  // not decomposed by tokenizers
  EXPECT_EQ(small().normalize("\uA7CB"), "\u0264");      // lowercased by Rust, not utf8proc 15
}

TEST(WordPieceNormalizer, TablesMatchTheLinkedUtf8proc) {
  // The exception tables are differences from one utf8proc version; regenerate them
  // (scripts/gen_hf_unicode_tables.py) when the library changes.
  EXPECT_STREQ(utf8proc_unicode_version(), kHfTablesUtf8procVersion);
}

// ---- pre-tokenizer and WordPiece ---------------------------------------------------------------

TEST(WordPiecePreTokenizer, SplitsOnWhitespaceAndIsolatesPunctuation) {
  using V = std::vector<std::string>;
  EXPECT_EQ(small().pre_tokenize("hello, world!"), (V{"hello", ",", "world", "!"}));
  EXPECT_EQ(small().pre_tokenize("  a$b^c  "), (V{"a", "$", "b", "^", "c"}));  // ASCII symbols too
  EXPECT_EQ(small().pre_tokenize("##ing"), (V{"#", "#", "ing"}));
  EXPECT_EQ(small().pre_tokenize("«x»—y…"), (V{"«", "x", "»", "—", "y", "…"}));
  EXPECT_EQ(small().pre_tokenize("1+1≠3 ©"), (V{"1", "+", "1≠3", "©"}));  // Sm/So are not punctuation
  EXPECT_EQ(small().pre_tokenize(""), V{});
}

TEST(WordPiece, GreedyLongestMatchFirst) {
  std::vector<int32_t> out;
  small().append_wordpiece_ids("unaffable", out);
  EXPECT_EQ(out, ids({"un", "##affable"}));  // not un ##aff ##able
  out.clear();
  small().append_wordpiece_ids("aaa", out);
  EXPECT_EQ(out, ids({"a", "##a", "##a"}));
  out.clear();
  small().append_wordpiece_ids("éé", out);  // pieces end on character boundaries
  EXPECT_EQ(out, ids({"é", "##é"}));
}

TEST(WordPiece, UnknownPartMakesTheWholeWordUnknown) {
  std::vector<int32_t> out;
  small().append_wordpiece_ids("unaffablez", out);
  EXPECT_EQ(out, ids({"[UNK]"}));
  EXPECT_EQ(small().encode_sequence("hello zzz world"), ids({"hello", "[UNK]", "world"}));
}

TEST(WordPiece, WordsOverMaxInputCharsAreUnknown) {
  std::vector<int32_t> out;
  small().append_wordpiece_ids(std::string(100, 'a'), out);
  EXPECT_EQ(out.size(), 100u);
  out.clear();
  small().append_wordpiece_ids(std::string(101, 'a'), out);
  EXPECT_EQ(out, ids({"[UNK]"}));
  // The limit counts characters of the normalized word, not bytes.
  std::string cyrillic;
  for (int i = 0; i < 100; ++i) cyrillic += "ж";  // 200 bytes
  EXPECT_EQ(small().encode_sequence(cyrillic).size(), 100u);
  EXPECT_EQ(small().encode_sequence(cyrillic + "ж"), ids({"[UNK]"}));
  // ... and after normalization: 101 "é" are 101 "e" (unknown here anyway), 100 "Ж" + 100 marks
  // are 100 characters once the marks are stripped.
  std::string marked;
  for (int i = 0; i < 100; ++i) marked += "Ж\u0301";
  EXPECT_EQ(small().encode_sequence(marked).size(), 100u);
}

TEST(WordPiece, SpecialTokensInTextAreMatchedExactly) {
  EXPECT_EQ(small().encode_sequence("x[MASK]x [CLS]"), ids({"x", "[MASK]", "x", "[CLS]"}));
  // "[mask]" is ordinary text: "[", "mask" (unknown here), "]" (unknown here).
  EXPECT_EQ(small().encode_sequence("[mask]"), ids({"[UNK]", "[UNK]", "[UNK]"}));
}

TEST(WordPiece, AddedTokenStripAndSingleWordOptions) {
  WordPieceConfig c = small_config();
  c.added_tokens.push_back(AddedToken{"cat", id("cat"), false, true, true, true, false});
  WordPieceTokenizer t(c);
  EXPECT_EQ(t.encode_sequence("the  cat  sat"), ids({"the", "cat", "sat"}));
  EXPECT_EQ(t.encode_sequence("xcat"), ids({"[UNK]"}));  // inside a word: not matched
  WordPieceConfig n = small_config();
  n.added_tokens.push_back(AddedToken{"CAFÉ CAT", 100, false, false, false, false, true});
  WordPieceTokenizer normalized(n);  // matched against the normalized text, id outside the vocab
  EXPECT_EQ(normalized.encode_sequence("the Café  Cat"), ids({"the", "cafe", "cat"}));
  EXPECT_EQ(normalized.encode_sequence("the Café Cat"), (std::vector<int32_t>{id("the"), 100}));
  EXPECT_EQ(normalized.vocab_size(), 101);
  EXPECT_EQ(normalized.id_to_token(100), "CAFÉ CAT");
  EXPECT_EQ(normalized.token_to_id("CAFÉ CAT"), 100);
}

// ---- encode: templates and truncation ----------------------------------------------------------

TEST(WordPieceEncode, SingleAndPairTemplates) {
  Encoding single = small().encode("Hello, world!", std::nullopt, 0);
  EXPECT_EQ(single.input_ids, ids({"[CLS]", "hello", ",", "world", "!", "[SEP]"}));
  EXPECT_EQ(single.token_type_ids, std::vector<int32_t>(6, 0));
  EXPECT_EQ(single.attention_mask, std::vector<int32_t>(6, 1));
  Encoding pair = small().encode("the cat", std::string_view("sat"), 0);
  EXPECT_EQ(pair.input_ids, ids({"[CLS]", "the", "cat", "[SEP]", "sat", "[SEP]"}));
  EXPECT_EQ(pair.token_type_ids, (std::vector<int32_t>{0, 0, 0, 0, 1, 1}));
  Encoding empty = small().encode("", std::string_view(""), 0);
  EXPECT_EQ(empty.input_ids, ids({"[CLS]", "[SEP]", "[SEP]"}));
}

TEST(WordPieceEncode, LongestFirstTruncationMatchesTokenizersCases) {
  // The cases of tokenizers' own truncate_encodings_longest_first test (max_length 7).
  struct Case {
    size_t a, b, want_a, want_b;
  };
  const Case cases[] = {{0, 0, 0, 0}, {0, 2, 0, 2}, {0, 4, 0, 4}, {0, 8, 0, 7}, {2, 0, 2, 0},
                        {2, 2, 2, 2}, {2, 4, 2, 4}, {2, 8, 2, 5}, {4, 0, 4, 0}, {4, 2, 4, 2},
                        {4, 4, 3, 4}, {4, 8, 3, 4}, {8, 0, 7, 0}, {8, 2, 5, 2}, {8, 4, 4, 3},
                        {8, 8, 3, 4}};
  for (const Case& c : cases) {
    std::vector<int32_t> a(c.a, 1), b(c.b, 2);
    truncate_longest_first(a, &b, 7);
    EXPECT_EQ(a.size(), c.want_a) << c.a << "+" << c.b;
    EXPECT_EQ(b.size(), c.want_b) << c.a << "+" << c.b;
  }
  std::vector<int32_t> a(5, 1), b(5, 2);
  truncate_longest_first(a, &b, 0);
  EXPECT_TRUE(a.empty() && b.empty());
}

TEST(WordPieceEncode, MaxLengthCountsSpecialTokensAndCutsOnTheRight) {
  Encoding single = small().encode("a b x a b x", std::nullopt, 5);
  EXPECT_EQ(single.input_ids, ids({"[CLS]", "a", "b", "x", "[SEP]"}));
  Encoding pair = small().encode("a a a a a", std::string_view("b b"), 7);
  EXPECT_EQ(pair.input_ids, ids({"[CLS]", "a", "a", "[SEP]", "b", "b", "[SEP]"}));
  EXPECT_EQ(pair.token_type_ids, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1}));
  Encoding fits = small().encode("a", std::nullopt, 512);
  EXPECT_EQ(fits.input_ids.size(), 3u);
  Encoding bare = small().encode("a b", std::nullopt, 2);  // room for the special tokens only
  EXPECT_EQ(bare.input_ids, ids({"[CLS]", "[SEP]"}));
  expect_error([] { small().encode("a", std::string_view("b"), 2); },
               {"max_length 2", "3 special tokens"});
}

TEST(WordPieceEncode, InvalidUtf8IsAnErrorThatSaysWhere) {
  expect_error([] { small().encode("ok \xFF", std::nullopt, 0); },
               {"text is not valid UTF-8", "at byte 3"});
  expect_error([] { small().encode("ok", std::string_view("\xED\xA0\x80"), 0); },
               {"text pair is not valid UTF-8", "at byte 0"});
}

TEST(WordPieceEncode, VocabQueries) {
  EXPECT_EQ(small().vocab_size(), int32_t(kSmallVocab.size()));
  EXPECT_EQ(small().pad_id(), 0);
  EXPECT_EQ(small().id_to_token(id("##affable")), "##affable");
  EXPECT_FALSE(small().token_to_id("nope"));
  expect_error([] { small().id_to_token(999); }, {"token id 999", "small test vocab"});
  EXPECT_EQ(small().tokenize("Unaffable cat"), (std::vector<std::string>{"un", "##affable", "cat"}));
}

// ---- loading and saving ------------------------------------------------------------------------

TEST(WordPieceLoad, SaveThenLoadGivesTheSameTokenizer) {
  TempDir dir;
  small().save(dir.path() / "saved", 0);
  for (const char* name : {"vocab.txt", "tokenizer.json", "tokenizer_config.json"}) {
    EXPECT_TRUE(fs::exists(dir.path() / "saved" / name)) << name;
  }
  auto from_dir = load_tokenizer(dir.path() / "saved");
  auto from_vocab = load_tokenizer(dir.path() / "saved/vocab.txt");
  for (const char* text : {"Hello, world! unaffable", "x[MASK]y Café 中文", "#$ a a a"}) {
    EXPECT_EQ(from_dir->encode(text, std::string_view("the cat"), 9).input_ids,
              small().encode(text, std::string_view("the cat"), 9).input_ids) << text;
    EXPECT_EQ(from_vocab->encode(text, std::nullopt, 0).input_ids,
              small().encode(text, std::nullopt, 0).input_ids) << text;
  }
}

// Hugging Face's tokenizer truncates at tokenizer_config.json's model_max_length (without one, at
// nothing) and finds its special tokens there: a saved folder has them, whatever it was loaded from.
TEST(WordPieceSave, TokenizerConfigGetsTheLongestInputAndTheSpecialTokensItLacks) {
  TempDir dir;
  fs::create_directories(dir.path() / "plain");
  dir.write("plain/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\n");
  dir.write("plain/tokenizer_config.json", "{\"do_lower_case\": true}");  // as bert-base-uncased's
  load_tokenizer(dir.path() / "plain")->save(dir.path() / "saved", 128);
  const nlohmann::json saved = nlohmann::json::parse(std::ifstream(dir.path() / "saved/tokenizer_config.json"));
  EXPECT_EQ(saved.value("do_lower_case", false), true);
  EXPECT_EQ(saved.value("model_max_length", 0), 128);
  for (const auto& [key, token] : {std::pair{"unk_token", "[UNK]"}, {"pad_token", "[PAD]"}, {"cls_token", "[CLS]"},
                                   {"sep_token", "[SEP]"}, {"mask_token", "[MASK]"}})
    EXPECT_EQ(saved.value(key, ""), token) << key;

  // A file that says all of it is written back byte for byte; its own model_max_length stands.
  fs::create_directories(dir.path() / "full");
  dir.write("full/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\n");
  const std::string full =
      "{\"unk_token\": \"[UNK]\", \"pad_token\": \"[PAD]\", \"cls_token\": \"[CLS]\", \"sep_token\": \"[SEP]\", "
      "\"mask_token\": \"[MASK]\", \"model_max_length\": 77}";
  dir.write("full/tokenizer_config.json", full);
  load_tokenizer(dir.path() / "full")->save(dir.path() / "full_saved", 128);
  std::ifstream in(dir.path() / "full_saved/tokenizer_config.json");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), {}), full);

  // Unknown (0): nothing is made up.
  small().save(dir.path() / "unknown", 0);
  EXPECT_FALSE(nlohmann::json::parse(std::ifstream(dir.path() / "unknown/tokenizer_config.json")).contains("model_max_length"));
}

TEST(WordPieceLoad, VocabTxtErrorsNameTheFileAndLine) {
  TempDir dir;
  expect_error([&] { load_tokenizer(dir.write("empty.txt", "")); }, {"empty.txt", "empty"});
  expect_error([&] { load_tokenizer(dir.write("dup.txt", "[UNK]\n[CLS]\n[SEP]\na\na\n")); },
               {"dup.txt:5", "\"a\"", "line 4"});
  expect_error([&] { load_tokenizer(dir.write("bad.txt", "[UNK]\n[CLS]\n\xC3\n")); },
               {"bad.txt:3", "invalid UTF-8"});
  expect_error([&] { load_tokenizer(dir.write("nounk.txt", "[CLS]\n[SEP]\na\n")); },
               {"nounk.txt", "[UNK]", "not in the vocabulary"});
  fs::create_directories(dir.path() / "cfg");
  dir.write("cfg/vocab.txt", "[UNK]\n[CLS]\n[SEP]\n");
  dir.write("cfg/tokenizer_config.json", "{\"do_lower_case\": \"yes\"}");
  expect_error([&] { load_tokenizer(dir.path() / "cfg"); },
               {"tokenizer_config.json", "do_lower_case", "true or false"});
}

TEST(WordPieceLoad, TokenizerJsonErrorsNameTheFileAndKey) {
  TempDir dir;
  expect_error([&] { load_tokenizer(dir.write("a.json", "{\"model\": ")); },
               {"a.json", "invalid JSON"});
  expect_error([&] { load_tokenizer(dir.write("b.json", "{\"version\": \"1.0\"}")); },
               {"b.json", "model"});
  // A BPE model goes to the byte-level BPE loader (bpe.h), which needs GPT-2's ByteLevel pre-tokenizer.
  expect_error([&] { load_tokenizer(dir.write("c.json", R"({"model": {"type": "BPE", "vocab": {}, "merges": []}})")); },
               {"c.json", "pre_tokenizer must be ByteLevel"});
  expect_error([&] { ww::text::load_wordpiece_tokenizer_json(dir.path() / "c.json"); },
               {"c.json", "BPE", "only WordPiece"});
  expect_error([&] {
    load_tokenizer(dir.write("d.json", R"({"model": {"type": "WordPiece", "vocab": {"a": "zero"}}})"));
  }, {"d.json", "model.vocab[\"a\"]", "integer"});
  expect_error([&] {
    load_tokenizer(dir.write("e.json", R"({"model": {"type": "WordPiece", "vocab": {"a": 0}},
                                          "pre_tokenizer": {"type": "BertPreTokenizer"}})"));
  }, {"e.json", "unk_token", "[UNK]"});
  expect_error([&] {
    load_tokenizer(dir.write("f.json", R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}},
                                          "pre_tokenizer": {"type": "Whitespace"}})"));
  }, {"f.json", "Whitespace", "BertPreTokenizer"});
  expect_error([&] {
    load_tokenizer(dir.write("g.json", R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}},
        "normalizer": {"type": "BertNormalizer", "lowercase": 1},
        "pre_tokenizer": {"type": "BertPreTokenizer"}})"));
  }, {"g.json", "normalizer.lowercase", "true or false"});
  expect_error([&] { load_tokenizer(dir.path() / "missing"); }, {"missing", "does not exist"});
  expect_error([&] { load_tokenizer(dir.path()); }, {"neither tokenizer.json nor vocab.txt"});
}

TEST(WordPieceLoad, RealBertBaseUncased) {
  if (!fs::exists(real_tokenizer_dir() / "tokenizer.json")) {
    GTEST_SKIP() << "no " << real_tokenizer_dir() << " (WW_SHARED_DATA)";
  }
  auto from_json = load_tokenizer(real_tokenizer_dir());
  auto from_vocab = load_tokenizer(real_tokenizer_dir() / "vocab.txt");
  EXPECT_EQ(from_json->vocab_size(), 30522);
  EXPECT_EQ(from_json->pad_id(), *from_json->token_to_id("[PAD]"));
  Encoding e = from_json->encode("Hello, World! Unaffable.", std::nullopt, 0);
  std::vector<std::string> tokens;
  for (int32_t i : e.input_ids) tokens.push_back(from_json->id_to_token(i));
  EXPECT_EQ(tokens, (std::vector<std::string>{"[CLS]", "hello", ",", "world", "!", "una", "##ffa",
                                              "##ble", ".", "[SEP]"}));
  EXPECT_EQ(from_vocab->encode("Hello, World! Unaffable.", std::nullopt, 0).input_ids, e.input_ids);
  // Saving keeps tokenizer.json byte for byte.
  TempDir dir;
  from_json->save(dir.path(), 0);
  std::ifstream a(real_tokenizer_dir() / "tokenizer.json"), b(dir.path() / "tokenizer.json");
  std::string original((std::istreambuf_iterator<char>(a)), {}), saved((std::istreambuf_iterator<char>(b)), {});
  EXPECT_EQ(original, saved);
}

// ---- input files and tokenize_file ------------------------------------------------------------

TEST(TextInputFile, PlainTextKeepsEveryLine) {
  TempDir dir;
  auto examples = read_text_examples(dir.write("in.txt", "\xEF\xBB\xBF" "first\r\n\nthird\n"));
  ASSERT_EQ(examples.size(), 3u);
  EXPECT_EQ(examples[0].text, "first");
  EXPECT_EQ(examples[1].text, "");
  EXPECT_EQ(examples[2].text, "third");
  EXPECT_EQ(examples[2].line, 3u);
  expect_error([&] { read_text_examples(dir.write("bad.txt", "ok\nno \xFF\n")); },
               {"bad.txt:2", "invalid UTF-8", "at byte 3"});
}

TEST(TextInputFile, JsonLines) {
  TempDir dir;
  auto examples = read_text_examples(dir.write(
      "in.jsonl", "{\"text\": \"a\", \"label\": 1}\n\n{\"text\": \"b\", \"text_pair\": \"c\"}\n"
                  "{\"text\": \"d\", \"text_pair\": null}\n"));
  ASSERT_EQ(examples.size(), 3u);
  EXPECT_FALSE(examples[0].text_pair);
  EXPECT_EQ(*examples[1].text_pair, "c");
  EXPECT_EQ(examples[1].line, 3u);
  EXPECT_FALSE(examples[2].text_pair);
  expect_error([&] { read_text_examples(dir.write("a.jsonl", "{\"text\": \"a\"}\n{\"text\": \n")); },
               {"a.jsonl:2", "invalid JSON"});
  expect_error([&] { read_text_examples(dir.write("b.jsonl", "{\"txt\": \"a\"}\n")); },
               {"b.jsonl:1", "missing \"text\""});
  expect_error([&] { read_text_examples(dir.write("c.json", "{\"text\": 5}\n")); },
               {"c.json:1", "\"text\" must be a string"});
  expect_error([&] { read_text_examples(dir.write("d.jsonl", "[{\"text\": \"a\"}]\n")); },
               {"d.jsonl:1", "not a JSON array"});
}

TEST(TextInputFile, GlueTsv) {
  TempDir dir;
  auto single = read_text_examples(dir.write("s.tsv", "sentence\tlabel\nit 's good \t1\n"));
  ASSERT_EQ(single.size(), 1u);
  EXPECT_EQ(single[0].text, "it 's good ");
  EXPECT_EQ(single[0].line, 2u);
  auto pairs = read_text_examples(dir.write("p.tsv", "index\tquestion\tsentence\tlabel\n0\tq?\ts.\tx\n"));
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].text, "q?");
  EXPECT_EQ(*pairs[0].text_pair, "s.");
  expect_error([&] { read_text_examples(dir.write("h.tsv", "text\tlabel\na\t1\n")); },
               {"h.tsv:1", "no text column", "found: text, label"});
  expect_error([&] { read_text_examples(dir.write("r.tsv", "sentence1\tsentence2\na\n")); },
               {"r.tsv:2", "expected 2", "found 1"});
}

TEST(TextInputFile, ColumnsChosenByName) {
  TempDir dir;
  const ww::text::TextColumns review{"review", ""}, pair{"q", "a"};
  auto jsonl = read_text_examples(dir.write("in.jsonl", "{\"review\": \"good\", \"text\": \"ignored\"}\n"), review);
  ASSERT_EQ(jsonl.size(), 1u);
  EXPECT_EQ(jsonl[0].text, "good");
  auto tsv = read_text_examples(dir.write("in.tsv", "id\tq\ta\n1\tfirst?\tsecond.\n"), pair);
  ASSERT_EQ(tsv.size(), 1u);
  EXPECT_EQ(tsv[0].text, "first?");
  EXPECT_EQ(*tsv[0].text_pair, "second.");
  expect_error([&] { read_text_examples(dir.write("m.jsonl", "{\"text\": \"x\"}\n"), review); },
               {"m.jsonl:1", "missing \"review\""});
  expect_error([&] { read_text_examples(dir.write("p.jsonl", "{\"q\": \"x\"}\n"), pair); },
               {"p.jsonl:1", "missing \"a\""});
  expect_error([&] { read_text_examples(dir.write("h.tsv", "id\ttext\n1\tx\n"), review); },
               {"h.tsv:1", "missing column 'review'", "id, text"});
  expect_error([&] { read_text_examples(dir.write("plain.txt", "x\n"), review); }, {"plain.txt", "no columns to choose"});
}

TEST(TokenizeFile, WritesOneLinePerExampleAndNothingOnError) {
  TempDir dir;
  small().save(dir.path() / "tok", 0);
  TokenizeOptions options;
  options.tokenizer = dir.path() / "tok";
  options.input = dir.write("in.jsonl", "{\"text\": \"the cat\"}\n{\"text\": \"a\", \"text_pair\": \"b b b\"}\n");
  options.output = dir.path() / "out.jsonl";
  options.max_length = 5;
  TokenizeSummary summary = tokenize_file(options);
  EXPECT_EQ(summary.examples, 2u);
  EXPECT_EQ(summary.pairs, 1u);
  EXPECT_EQ(summary.truncated, 1u);
  std::ifstream in(options.output);
  std::string line1, line2;
  std::getline(in, line1);
  std::getline(in, line2);
  auto join = [](const std::vector<int32_t>& v) {
    std::string s;
    for (int32_t x : v) {
      if (!s.empty()) s += ',';
      s += std::to_string(x);
    }
    return s;
  };
  EXPECT_EQ(line1, "{\"input_ids\":[" + join(ids({"[CLS]", "the", "cat", "[SEP]"})) + "]}");
  EXPECT_EQ(line2, "{\"input_ids\":[" + join(ids({"[CLS]", "a", "[SEP]", "b", "[SEP]"})) +
                       "],\"token_type_ids\":[0,0,0,1,1]}");
  // A bad line makes the whole run fail with file:line, and the output stays as it was.
  options.input = dir.write("bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"a\"}\n{\"text\" 1}\n");
  expect_error([&] { tokenize_file(options); }, {"bad.jsonl:3"});
  std::ifstream again(options.output);
  std::string first_line;
  std::getline(again, first_line);
  EXPECT_EQ(first_line, line1);
  options.input = dir.write("pair.jsonl", "{\"text\": \"a\", \"text_pair\": \"b\"}\n");
  options.max_length = 2;
  expect_error([&] { tokenize_file(options); }, {"pair.jsonl:1", "max_length 2"});
}
