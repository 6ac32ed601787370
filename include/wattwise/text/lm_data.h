#pragma once
// Data for causal language modelling (GPT-2): text tokenised once into a cached token stream, then
// packed into windows of T tokens and served as shuffled batches.
//
// Sources (load_lm_corpus):
//   text      a file, or a folder whose regular files (recursively, sorted by path, hidden ones
//             skipped) are the documents; one document per file. The last `valid_fraction` of the
//             token stream is the validation split (as nanoGPT splits tiny shakespeare).
//   wikitext  a folder with WikiText's raw files wiki.{train,valid,test}.raw (test optional); each
//             file is split into articles at its top-level headings (a line " = Title = "; the
//             sub-headings " = = Section = = " stay inside their article).
// Documents (files, articles) are joined with a separator token: the tokenizer's "<|endoftext|>"
// (50256 for GPT-2) between consecutive documents, none before the first or after the last.
//
// Token cache: every token stream is written once to <cache_dir>/<name>-<key>.tokens (key: a hash
// of the source paths and the tokenizer's fingerprint) and reused
// while it is valid. The file starts with a fixed header (magic "WWTOKEN1", version, the
// tokenizer's fingerprint, the separator id, the sources' fingerprint (paths, sizes, mtimes), the
// token count and width (u16 when the vocabulary fits, else u32) and a checksum of the payload).
// A cache whose tokenizer or sources changed is stale and rebuilt; a damaged cache (bad magic,
// truncated, checksum mismatch, ids outside the vocabulary) is rebuilt too, never trusted, and the
// result's notes say so. Writes are atomic (temporary file + rename). When the cache folder cannot
// be written, the corpus is used from memory and a note says why.
//
// Packing (LmLoader): window k covers tokens [k*(T-1), k*(T-1)+T) of a split's stream. With the
// Hugging Face convention (labels = input_ids; position t predicts labels[t+1]) consecutive windows
// overlap by one token, so every token but the stream's first is a prediction target exactly once
// per epoch. The last window is padded with the separator id, attention_mask 0 and label -100.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wattwise/core/tensor.h"
#include "wattwise/text/tokenizer.h"

namespace ww::text {

struct LmDataOptions {
  std::string format = "auto";        // text, wikitext or auto (wikitext when wiki.train.raw exists)
  double valid_fraction = 0.1;        // text: share of the tokens at the end used for validation
  std::filesystem::path cache_dir;    // empty: default_lm_cache_dir()
  bool use_cache = true;              // false: tokenise in memory, touch no files
  int threads = 0;                    // tokenisation threads (0: hardware concurrency)
};

// $WATTWISE_CACHE, else $XDG_CACHE_HOME/wattwise/tokens, else ~/.cache/wattwise/tokens.
std::filesystem::path default_lm_cache_dir();

// What happened to one cache file.
enum class CacheStatus { Disabled, Built, Reused, RebuiltStale, RebuiltCorrupt, Unwritable };
const char* cache_status_name(CacheStatus status);

struct LmSplit {
  std::string name;                          // train, valid, test
  std::shared_ptr<const std::vector<int32_t>> tokens;
  int64_t documents = 0;                     // files or articles in it
};

struct LmCorpus {
  std::string format;                        // text or wikitext
  int32_t separator_id = 0;
  std::vector<LmSplit> splits;               // train, valid (and test for wikitext)
  std::vector<std::filesystem::path> cache_files;
  std::vector<CacheStatus> cache_statuses;   // one per cache file
  std::vector<std::string> notes;            // human-readable: rebuilt caches, cache problems

  // The split by name ("validation"/"val"/"dev" mean "valid"); error lists those available.
  const LmSplit& split(const std::string& name) const;
  bool has_split(const std::string& name) const;
};

// Reads, tokenises (or loads from the cache) and splits a corpus. Errors name the path and what is
// wrong (missing files, no documents, a tokenizer without "<|endoftext|>", invalid UTF-8 with the
// file and byte offset).
LmCorpus load_lm_corpus(const std::filesystem::path& path, const Tokenizer& tokenizer,
                        const LmDataOptions& options = {});

// A number that changes whenever the tokenizer would give different ids: its vocabulary (and, for
// byte-level BPE, its merges and added tokens).
uint64_t tokenizer_fingerprint(const Tokenizer& tokenizer);

// The id of "<|endoftext|>" in the tokenizer; error naming the tokenizer otherwise.
int32_t end_of_text_id(const Tokenizer& tokenizer);

// WikiText raw text split into articles at its top-level headings; the articles joined give the
// text back (blank lines before the first heading open the first article, other text before it is an
// article of its own; a blank text has no articles).
std::vector<std::string> split_wikitext_articles(const std::string& text);

// Tokenises one document exactly as tokenizer.encode(text) would, in pieces cut only where the
// GPT-2 pre-tokenizer is known to cut anyway (so long texts can be encoded on several threads);
// pieces are about `piece_bytes` long.
std::vector<int32_t> tokenize_document(const Tokenizer& tokenizer, const std::string& text, int threads = 1,
                                       size_t piece_bytes = size_t(1) << 18);

// ---- the token cache file (exposed for tests and tools) --------------------------------------------
struct TokenCacheKey {
  uint64_t tokenizer_fingerprint = 0;
  uint64_t source_fingerprint = 0;
  int32_t separator_id = 0;
  int32_t vocab_size = 0;
};
void write_token_cache(const std::filesystem::path& file, const TokenCacheKey& key,
                       const std::vector<int32_t>& tokens, int64_t documents);
// The tokens when the file is a valid cache for `key`; nullopt with `status` RebuiltStale (other
// key) or RebuiltCorrupt (damaged, `why` says how) otherwise, or Built when it does not exist.
struct TokenCacheRead {
  std::optional<std::vector<int32_t>> tokens;
  int64_t documents = 0;
  CacheStatus status = CacheStatus::Built;
  std::string why;
};
TokenCacheRead read_token_cache(const std::filesystem::path& file, const TokenCacheKey& key);

// ---- packing into batches ----------------------------------------------------------------------------
struct LmBatch {
  Tensor input_ids;       // i32 [B, T] on the CPU
  Tensor attention_mask;  // i32 [B, T]: 0 on the padding of the last window
  Tensor labels;          // i32 [B, T]: input_ids, -100 on padding
  int64_t batch = 0;
  int64_t seq_len = 0;
  int64_t target_tokens = 0;  // positions scored (labels[t+1] != -100 for t < T-1)
  int64_t input_tokens = 0;   // real (unpadded) tokens fed in
};

struct LmLoaderOptions {
  int64_t block_size = 1024;  // T
  int64_t batch_size = 8;     // windows per batch (the last batch of an epoch may hold fewer)
  bool shuffle = true;        // window order permuted by (seed, epoch)
  uint64_t seed = 42;
  int64_t max_windows = 0;    // use only the first N windows (0: all), before shuffling
};

// Number of windows of length T a stream of n tokens packs into (0 when n < 2).
int64_t lm_window_count(int64_t num_tokens, int64_t block_size);

class LmLoader {
 public:
  LmLoader(std::shared_ptr<const std::vector<int32_t>> tokens, const LmLoaderOptions& options,
           uint64_t epoch, int32_t pad_id);
  int64_t num_windows() const { return int64_t(order_.size()); }
  int64_t num_batches() const;
  // The window order of this epoch (window indices).
  const std::vector<int64_t>& order() const { return order_; }
  std::optional<LmBatch> next();

 private:
  std::shared_ptr<const std::vector<int32_t>> tokens_;
  LmLoaderOptions options_;
  int32_t pad_id_;
  std::vector<int64_t> order_;
  size_t position_ = 0;
};

}  // namespace ww::text
