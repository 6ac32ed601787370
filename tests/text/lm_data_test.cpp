// Language-modelling data: the token cache (round trip, stale, damaged, unwritable), document
// separators, WikiText article splitting, chunked tokenisation equal to whole-text encoding, and
// packing (every token a target exactly once per epoch, shuffling by seed). Uses the committed tiny
// BPE fixture; tiny shakespeare and the real GPT-2 tokenizer when /work/shared/data is there.
#include <gtest/gtest.h>

#include "test_util.h"

#include <fstream>
#include <numeric>
#include <set>
#include <unistd.h>

#include "wattwise/core/error.h"
#include "wattwise/io/file.h"
#include "wattwise/text/tokenizer.h"
#include "wattwise/text/bpe.h"
#include "wattwise/text/lm_data.h"

using namespace ww;
using namespace ww::text;
namespace fs = std::filesystem;

namespace {

const fs::path kTinyBpe = fs::path(WW_SOURCE_DIR) / "tests/fixtures/bpe/tiny";

const BpeTokenizer& tiny_tokenizer() {
  static std::unique_ptr<BpeTokenizer> tok = load_bpe_files(kTinyBpe / "vocab.json", kTinyBpe / "merges.txt");
  return *tok;
}

// A fresh folder per test, removed afterwards.
class LmData : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ww_lm_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "cache");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
  }
  LmDataOptions options() const {
    LmDataOptions o;
    o.cache_dir = dir_ / "cache";
    o.valid_fraction = 0.25;
    return o;
  }
  fs::path dir_;
};

std::vector<int32_t> all_tokens(const LmCorpus& c) {
  std::vector<int32_t> out;
  for (const auto& s : c.splits)
    if (s.name != "test") out.insert(out.end(), s.tokens->begin(), s.tokens->end());
  return out;
}

const std::string kDocA = "The cat sat on the mat.\nIt was a fine day, and the sun was out.\n";
const std::string kDocB = "Of all the things that are, the best is to be here with you.\n";

}  // namespace

TEST_F(LmData, SeparatorBetweenDocumentsOnly) {
  write(dir_ / "docs/a.txt", kDocA);
  write(dir_ / "docs/b.txt", kDocB);
  write(dir_ / "docs/.hidden", "never read");
  LmCorpus c = load_lm_corpus(dir_ / "docs", tiny_tokenizer(), options());
  const BpeTokenizer& tok = tiny_tokenizer();
  EXPECT_EQ(c.separator_id, 1256);
  std::vector<int32_t> expected = tok.encode_sequence(kDocA);
  expected.push_back(1256);
  for (int32_t id : tok.encode_sequence(kDocB)) expected.push_back(id);
  EXPECT_EQ(all_tokens(c), expected);
  EXPECT_EQ(c.splits[0].documents, 2);
  ASSERT_EQ(c.splits.size(), 2u);
  EXPECT_EQ(c.splits[1].name, "valid");
  EXPECT_EQ(c.splits[1].tokens->size(), size_t(double(expected.size()) * 0.25));
  EXPECT_EQ(c.split("validation").name, "valid");
  ww::testing::expect_error([&] { c.split("test"); }, {"no split 'test'", "train, valid"});
}

TEST_F(LmData, CacheRoundTripStaleAndDamaged) {
  write(dir_ / "corpus.txt", kDocA + kDocB);
  LmCorpus first = load_lm_corpus(dir_ / "corpus.txt", tiny_tokenizer(), options());
  ASSERT_EQ(first.cache_statuses.size(), 1u);
  EXPECT_EQ(first.cache_statuses[0], CacheStatus::Built);
  const fs::path file = first.cache_files[0];
  ASSERT_TRUE(fs::exists(file)) << file;
  EXPECT_EQ(fs::file_size(file), 64 + 2 * all_tokens(first).size());  // u16 ids for a small vocabulary

  LmCorpus second = load_lm_corpus(dir_ / "corpus.txt", tiny_tokenizer(), options());
  EXPECT_EQ(second.cache_statuses[0], CacheStatus::Reused);
  EXPECT_EQ(all_tokens(second), all_tokens(first));
  EXPECT_TRUE(second.notes.empty());

  // The source changes: stale, rebuilt from the new text.
  write(dir_ / "corpus.txt", kDocB + kDocA + kDocA);
  LmCorpus third = load_lm_corpus(dir_ / "corpus.txt", tiny_tokenizer(), options());
  EXPECT_EQ(third.cache_statuses[0], CacheStatus::RebuiltStale);
  EXPECT_EQ(all_tokens(third), tiny_tokenizer().encode_sequence(kDocB + kDocA + kDocA));
  ASSERT_EQ(third.notes.size(), 1u);
  EXPECT_NE(third.notes[0].find("stale"), std::string::npos) << third.notes[0];

  // A flipped payload byte: damaged, rebuilt (never trusted), with a note.
  std::string bytes = io::read_file(file);
  bytes[70] ^= 0x5A;
  io::write_file_atomic(file, bytes);
  LmCorpus fourth = load_lm_corpus(dir_ / "corpus.txt", tiny_tokenizer(), options());
  EXPECT_EQ(fourth.cache_statuses[0], CacheStatus::RebuiltCorrupt);
  EXPECT_EQ(all_tokens(fourth), all_tokens(third));
  ASSERT_EQ(fourth.notes.size(), 1u);
  EXPECT_NE(fourth.notes[0].find("checksum"), std::string::npos) << fourth.notes[0];

  // Truncated, and not a token file at all: damaged as well.
  bytes = io::read_file(file);
  io::write_file_atomic(file, bytes.substr(0, bytes.size() - 3));
  EXPECT_EQ(load_lm_corpus(dir_ / "corpus.txt", tiny_tokenizer(), options()).cache_statuses[0],
            CacheStatus::RebuiltCorrupt);
  io::write_file_atomic(file, "hello");
  EXPECT_EQ(load_lm_corpus(dir_ / "corpus.txt", tiny_tokenizer(), options()).cache_statuses[0],
            CacheStatus::RebuiltCorrupt);
  EXPECT_EQ(load_lm_corpus(dir_ / "corpus.txt", tiny_tokenizer(), options()).cache_statuses[0], CacheStatus::Reused);
  // No temporary files left behind.
  size_t files = 0;
  for (auto& e : fs::directory_iterator(dir_ / "cache")) (void)e, ++files;
  EXPECT_EQ(files, 1u);
}

TEST_F(LmData, CacheKeyedByTokenizer) {
  const fs::path file = dir_ / "cache/x.tokens";
  TokenCacheKey key{1, 2, 1256, 1257};
  write_token_cache(file, key, {5, 6, 1256, 7}, 2);
  TokenCacheRead ok = read_token_cache(file, key);
  ASSERT_TRUE(ok.tokens);
  EXPECT_EQ(*ok.tokens, (std::vector<int32_t>{5, 6, 1256, 7}));
  EXPECT_EQ(ok.documents, 2);
  TokenCacheKey other = key;
  other.tokenizer_fingerprint = 3;
  TokenCacheRead stale = read_token_cache(file, other);
  EXPECT_FALSE(stale.tokens);
  EXPECT_EQ(stale.status, CacheStatus::RebuiltStale);
  EXPECT_NE(stale.why.find("tokenizer"), std::string::npos);
  // Large vocabularies take 4-byte ids.
  TokenCacheKey wide{1, 2, 0, 70000};
  write_token_cache(file, wide, {69999, 0}, 1);
  EXPECT_EQ(fs::file_size(file), 64u + 8u);
  EXPECT_EQ(*read_token_cache(file, wide).tokens, (std::vector<int32_t>{69999, 0}));
  ww::testing::expect_error([&] { write_token_cache(file, key, {1257}, 1); }, {"x.tokens", "1257", "outside"});
  // The fingerprint sees a different vocabulary.
  BpeConfig c = tiny_tokenizer().config();
  std::swap(c.vocab[10].second, c.vocab[11].second);
  EXPECT_NE(tokenizer_fingerprint(BpeTokenizer(c)), tokenizer_fingerprint(tiny_tokenizer()));
  EXPECT_EQ(tokenizer_fingerprint(BpeTokenizer(tiny_tokenizer().config())), tokenizer_fingerprint(tiny_tokenizer()));
}

TEST_F(LmData, UnwritableCacheFolderKeepsTokensInMemory) {
  write(dir_ / "corpus.txt", kDocA);
  write(dir_ / "blocker", "a file where the cache folder should be");
  LmDataOptions o = options();
  o.cache_dir = dir_ / "blocker/cache";
  LmCorpus c = load_lm_corpus(dir_ / "corpus.txt", tiny_tokenizer(), o);
  EXPECT_EQ(c.cache_statuses[0], CacheStatus::Unwritable);
  ASSERT_EQ(c.notes.size(), 1u);
  EXPECT_NE(c.notes[0].find("blocker"), std::string::npos) << c.notes[0];
  EXPECT_EQ(all_tokens(c), tiny_tokenizer().encode_sequence(kDocA));
}

TEST_F(LmData, Errors) {
  ww::testing::expect_error([&] { load_lm_corpus(dir_ / "missing.txt", tiny_tokenizer(), options()); },
                        {"missing.txt", "no such file"});
  fs::create_directories(dir_ / "empty");
  ww::testing::expect_error([&] { load_lm_corpus(dir_ / "empty", tiny_tokenizer(), options()); }, {"empty", "no text files"});
  write(dir_ / "bad.txt", "fine text\n\xff\xfe more");
  ww::testing::expect_error([&] { load_lm_corpus(dir_ / "bad.txt", tiny_tokenizer(), options()); },
                        {"bad.txt", "not valid UTF-8", "byte 10"});
  write(dir_ / "short.txt", "a");
  ww::testing::expect_error([&] { load_lm_corpus(dir_ / "short.txt", tiny_tokenizer(), options()); },
                        {"short.txt", "too little text"});
  fs::create_directories(dir_ / "wiki");
  write(dir_ / "wiki/wiki.train.raw", " = A = \n text \n");
  LmDataOptions o = options();
  o.format = "wikitext";
  ww::testing::expect_error([&] { load_lm_corpus(dir_ / "wiki", tiny_tokenizer(), o); }, {"wiki.valid.raw"});
  o.format = "csv";
  ww::testing::expect_error([&] { load_lm_corpus(dir_ / "wiki", tiny_tokenizer(), o); }, {"csv", "text, wikitext"});
  o = options();
  o.valid_fraction = 1.0;
  ww::testing::expect_error([&] { load_lm_corpus(dir_ / "wiki", tiny_tokenizer(), o); }, {"valid_fraction"});
}

TEST(LmDataWikitext, SplitsArticlesAtTopLevelHeadings) {
  const std::string text =
      " \n = Alpha = \n \n Alpha text . \n \n = = Section = = \n \n More alpha . \n"
      " \n = Beta = \n \n Beta text . \n = = = Deep = = = \n tail \n";
  std::vector<std::string> a = split_wikitext_articles(text);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0], " \n = Alpha = \n \n Alpha text . \n \n = = Section = = \n \n More alpha . \n \n");
  EXPECT_EQ(a[1], " = Beta = \n \n Beta text . \n = = = Deep = = = \n tail \n");
  EXPECT_EQ(a[0] + a[1], text);  // nothing lost
  EXPECT_EQ(split_wikitext_articles("no heading at all\n").size(), 1u);
  EXPECT_EQ(split_wikitext_articles("intro\n = A = \n").size(), 2u);
  EXPECT_TRUE(split_wikitext_articles(" \n \n").empty());
}

TEST_F(LmData, WikitextFolderHasItsThreeSplits) {
  write(dir_ / "wt/wiki.train.raw", " \n = One = \n \n First article . \n \n = Two = \n \n Second . \n");
  write(dir_ / "wt/wiki.valid.raw", " \n = Three = \n \n Valid text . \n");
  write(dir_ / "wt/wiki.test.raw", " \n = Four = \n \n Test text . \n");
  LmCorpus c = load_lm_corpus(dir_ / "wt", tiny_tokenizer(), options());  // format auto
  EXPECT_EQ(c.format, "wikitext");
  ASSERT_EQ(c.splits.size(), 3u);
  EXPECT_EQ(c.splits[0].documents, 2);
  const auto& train = *c.split("train").tokens;
  EXPECT_EQ(std::count(train.begin(), train.end(), 1256), 1);
  std::vector<int32_t> expected = tiny_tokenizer().encode_sequence(" \n = One = \n \n First article . \n \n");
  expected.push_back(1256);
  for (int32_t id : tiny_tokenizer().encode_sequence(" = Two = \n \n Second . \n")) expected.push_back(id);
  EXPECT_EQ(train, expected);
  EXPECT_EQ(*c.split("test").tokens, tiny_tokenizer().encode_sequence(" \n = Four = \n \n Test text . \n"));
  EXPECT_EQ(c.cache_files.size(), 3u);
  LmCorpus again = load_lm_corpus(dir_ / "wt", tiny_tokenizer(), options());
  for (CacheStatus s : again.cache_statuses) EXPECT_EQ(s, CacheStatus::Reused);
}

TEST(LmDataPacking, EveryTokenIsATargetExactlyOncePerEpoch) {
  for (int64_t n : {2, 3, 17, 64, 65, 100}) {
    for (int64_t T : {2, 4, 16}) {
      auto tokens = std::make_shared<std::vector<int32_t>>(size_t(n));
      std::iota(tokens->begin(), tokens->end(), 0);  // token value = its position
      LmLoaderOptions o;
      o.block_size = T;
      o.batch_size = 3;
      o.seed = 7;
      LmLoader loader(tokens, o, /*epoch=*/1, /*pad_id=*/-5);
      EXPECT_EQ(loader.num_windows(), lm_window_count(n, T));
      std::vector<int> targeted(size_t(n), 0);
      int64_t batches = 0, targets = 0;
      while (auto b = loader.next()) {
        ++batches;
        ASSERT_EQ(b->input_ids.shape(), (Shape{b->batch, T}));
        const int32_t* ids = b->input_ids.data<int32_t>();
        const int32_t* labels = b->labels.data<int32_t>();
        const int32_t* mask = b->attention_mask.data<int32_t>();
        for (int64_t r = 0; r < b->batch; ++r)
          for (int64_t t = 0; t < T; ++t) {
            const int64_t i = r * T + t;
            if (mask[i]) {
              EXPECT_EQ(labels[i], ids[i]);  // HF convention: labels = input_ids
              if (t > 0) ++targeted[size_t(ids[i])];
            } else {
              EXPECT_EQ(labels[i], -100);
              EXPECT_EQ(ids[i], -5);
            }
            if (t > 0) {
              EXPECT_LE(mask[i], mask[i - 1]);  // padding only at the end of a window
            }
          }
        targets += b->target_tokens;
      }
      EXPECT_EQ(batches, loader.num_batches());
      EXPECT_EQ(targets, n - 1) << "n=" << n << " T=" << T;
      EXPECT_EQ(targeted[0], 0);
      for (int64_t i = 1; i < n; ++i) EXPECT_EQ(targeted[size_t(i)], 1) << "token " << i << " n=" << n << " T=" << T;
    }
  }
  auto one = std::make_shared<std::vector<int32_t>>(1, 0);
  EXPECT_EQ(LmLoader(one, {}, 0, 0).num_windows(), 0);
  ww::testing::expect_error([] { lm_window_count(10, 1); }, {"block size", "at least 2"});
}

TEST(LmDataPacking, ShuffleDeterministicBySeedAndEpoch) {
  auto tokens = std::make_shared<std::vector<int32_t>>(1000, 1);
  LmLoaderOptions o;
  o.block_size = 8;
  o.seed = 11;
  auto order = [&](uint64_t seed, uint64_t epoch) {
    LmLoaderOptions x = o;
    x.seed = seed;
    return LmLoader(tokens, x, epoch, 0).order();
  };
  EXPECT_EQ(order(11, 0), order(11, 0));
  EXPECT_NE(order(11, 0), order(11, 1));
  EXPECT_NE(order(11, 0), order(12, 0));
  std::vector<int64_t> sorted = order(11, 3);
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> all(sorted.size());
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(sorted, all);  // a permutation
  o.shuffle = false;
  EXPECT_EQ(LmLoader(tokens, o, 5, 0).order(), all);
  o.max_windows = 10;
  EXPECT_EQ(LmLoader(tokens, o, 5, 0).num_windows(), 10);
}

// Cutting a long text at safe newlines and encoding the pieces on threads gives encode()'s ids.
TEST(LmDataTokenize, ChunkedEqualsWholeOnTinyFixture) {
  std::string text;
  for (int i = 0; i < 4000; ++i)
    text += "Line " + std::to_string(i) + ": the cat's hat\n" + (i % 7 == 0 ? "  \n\n" : "") + (i % 5 == 0 ? " x\n" : "");
  const std::vector<int32_t> whole = tiny_tokenizer().encode_sequence(text);
  for (size_t piece_bytes : {size_t(1), size_t(64), size_t(4096), size_t(1) << 20})
    EXPECT_EQ(tokenize_document(tiny_tokenizer(), text, 4, piece_bytes), whole) << piece_bytes;
  // Unsafe cuts (inside a whitespace run before a newline) would change the ids: the check bites.
  const std::string tricky = "a \nb";
  EXPECT_EQ(tiny_tokenizer().pre_tokenize(tricky), (std::vector<std::string>{"a", " ", "\n", "b"}));
  EXPECT_EQ(tiny_tokenizer().pre_tokenize("a \n"), (std::vector<std::string>{"a", " \n"}));
  EXPECT_EQ(tokenize_document(tiny_tokenizer(), tricky, 2, 1), tiny_tokenizer().encode_sequence(tricky));
}

TEST(LmDataShared, TinyShakespeareWithGpt2Tokenizer) {
  const fs::path data = fs::path(WW_SHARED_DATA);
  const fs::path text_file = data / "tinyshakespeare/input.txt";
  const fs::path tok_dir = data / "tokenizers/gpt2";
  if (!fs::exists(text_file) || !fs::exists(tok_dir)) GTEST_SKIP() << "no " << text_file << " or " << tok_dir;
  std::unique_ptr<Tokenizer> tok = load_tokenizer(tok_dir);
  const std::string text = io::read_file(text_file);
  const auto& bpe = dynamic_cast<const BpeTokenizer&>(*tok);
  const std::vector<int32_t> whole = bpe.encode_sequence(text);
  EXPECT_EQ(tokenize_document(*tok, text, 2, 4096), whole);
  EXPECT_GT(whole.size(), 300000u);  // about 338k GPT-2 tokens
  const fs::path cache = fs::temp_directory_path() / ("ww_lm_shakespeare_" + std::to_string(::getpid()));
  LmDataOptions o;
  o.cache_dir = cache;
  LmCorpus c = load_lm_corpus(text_file, *tok, o);
  EXPECT_EQ(c.separator_id, 50256);
  EXPECT_EQ(all_tokens(c), whole);
  EXPECT_EQ(c.split("valid").tokens->size(), size_t(double(whole.size()) * 0.1));
  EXPECT_EQ(load_lm_corpus(text_file, *tok, o).cache_statuses[0], CacheStatus::Reused);
  fs::remove_all(cache);
}
