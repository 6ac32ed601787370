// Language-modelling data: corpus reading (text files, WikiText raw), tokenisation on several
// threads, the token cache file, and packing into overlapping windows.
#include "wattwise/text/lm_data.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <functional>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "wattwise/core/error.h"
#include "wattwise/core/rng.h"
#include "wattwise/io/file.h"
#include "wattwise/text/bpe.h"
#include "wattwise/text/utf8.h"

namespace ww::text {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'W', 'W', 'T', 'O', 'K', 'E', 'N', '1'};
constexpr uint32_t kCacheVersion = 1;
constexpr size_t kHeaderBytes = 64;
// Bumped when the way sources become token streams changes (article splitting, separators).
constexpr uint64_t kLayoutVersion = 1;

struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  void str(std::string_view s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
  void u64(uint64_t v) { bytes(&v, sizeof v); }
};

// Checksum of the cache payload: FNV-1a over 64-bit words (fast enough for hundreds of MB).
uint64_t payload_checksum(const char* data, size_t n) {
  uint64_t h = 1469598103934665603ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, data + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  for (; i < n; ++i) h = (h ^ static_cast<unsigned char>(data[i])) * 1099511628211ull;
  return h;
}

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <typename T>
T get(const std::string& in, size_t offset) {
  T v;
  std::memcpy(&v, in.data() + offset, sizeof v);
  return v;
}

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  return int(std::max(1u, std::min(8u, std::thread::hardware_concurrency())));
}

bool is_ascii_graphic(char c) { return c > 0x20 && c < 0x7F; }

// Byte offsets where a document may be cut without changing GPT-2's pre-tokenisation: just after a
// '\n' that sits between two visible ASCII characters ("...x\ny..."). There the whitespace piece
// is the '\n' alone whether or not the text continues, and no other piece reaches across it.
std::vector<size_t> cut_points(const std::string& text, size_t target_piece_bytes) {
  std::vector<size_t> cuts{0};
  size_t next = target_piece_bytes;
  while (next < text.size()) {
    size_t i = next;
    while (i < text.size() && !(text[i - 1] == '\n' && i >= 2 && is_ascii_graphic(text[i - 2]) &&
                                is_ascii_graphic(text[i])))
      ++i;
    if (i >= text.size()) break;
    cuts.push_back(i);
    next = i + target_piece_bytes;
  }
  cuts.push_back(text.size());
  return cuts;
}

std::vector<int32_t> encode_piece(const Tokenizer& tokenizer, std::string_view text) {
  if (auto* bpe = dynamic_cast<const BpeTokenizer*>(&tokenizer)) return bpe->encode_sequence(text);
  return tokenizer.encode(text, std::nullopt, 0).input_ids;
}

// Runs fn(i) for i in [0, n) on up to `threads` threads; the first error is rethrown.
template <typename Fn>
void parallel_for(size_t n, int threads, Fn fn) {
  threads = int(std::min<size_t>(size_t(std::max(1, threads)), n));
  if (threads <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (size_t i; !failed && (i = next++) < n;) {
        try {
          fn(i);
        } catch (...) {
          if (!failed.exchange(true)) error = std::current_exception();
        }
      }
    });
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

struct Document {
  std::string text;
  std::string origin;  // file (and article) for error messages
};

// Tokenises documents (pieces of long ones on several threads) and joins them with the separator.
std::vector<int32_t> tokenize_documents(const Tokenizer& tokenizer, const std::vector<Document>& docs,
                                        int32_t separator, int threads, size_t piece_bytes = size_t(1) << 18) {
  struct Piece {
    size_t doc, begin, end;
  };
  std::vector<Piece> pieces;
  for (size_t d = 0; d < docs.size(); ++d) {
    std::vector<size_t> cuts = cut_points(docs[d].text, std::max<size_t>(1, piece_bytes));
    for (size_t c = 0; c + 1 < cuts.size(); ++c) pieces.push_back({d, cuts[c], cuts[c + 1]});
  }
  std::vector<std::vector<int32_t>> ids(pieces.size());
  parallel_for(pieces.size(), threads, [&](size_t i) {
    const Piece& p = pieces[i];
    try {
      ids[i] = encode_piece(tokenizer, std::string_view(docs[p.doc].text).substr(p.begin, p.end - p.begin));
    } catch (const Error& e) {
      fail(docs[p.doc].origin, ": cannot tokenise: ", e.what());
    }
  });
  size_t total = docs.empty() ? 0 : docs.size() - 1;
  for (const auto& v : ids) total += v.size();
  std::vector<int32_t> out;
  out.reserve(total);
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (i > 0 && pieces[i].doc != pieces[i - 1].doc) out.push_back(separator);
    out.insert(out.end(), ids[i].begin(), ids[i].end());
  }
  return out;
}

std::string read_document(const fs::path& file) {
  std::string text = io::read_file(file);
  check_utf8(text, file.string());
  return text;
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

// Sources' fingerprint: what they are (paths, sizes, modification times), not their bytes, so a
// valid cache is recognised without reading the corpus.
uint64_t source_fingerprint(const std::vector<fs::path>& files, const std::string& layout) {
  Fnv f;
  f.u64(kLayoutVersion);
  f.str(layout);
  for (const fs::path& p : files) {
    std::error_code ec;
    fs::path abs = fs::absolute(p, ec);
    f.str((ec ? p : abs).lexically_normal().string());
    f.u64(uint64_t(fs::file_size(p)));
    f.u64(uint64_t(fs::last_write_time(p).time_since_epoch().count()));
  }
  return f.h;
}

std::string hex(uint64_t v, int digits) {
  static const char* d = "0123456789abcdef";
  std::string s(size_t(digits), '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4) s[size_t(i)] = d[v & 15];
  return s;
}

std::string safe_name(std::string name) {
  for (char& c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) c = '_';
  return name.empty() ? "corpus" : name;
}

struct StreamResult {
  std::vector<int32_t> tokens;
  int64_t documents = 0;
};

// One token stream through the cache: read it when valid, else build it with `build` and write it.
StreamResult cached_stream(LmCorpus& corpus, const LmDataOptions& options, const std::string& name,
                           const std::vector<fs::path>& sources, const std::string& layout,
                           const Tokenizer& tokenizer, uint64_t tokenizer_fp,
                           const std::function<std::vector<Document>()>& documents) {
  TokenCacheKey key{tokenizer_fp, source_fingerprint(sources, layout), corpus.separator_id, tokenizer.vocab_size()};
  auto build = [&] {
    std::vector<Document> docs = documents();
    StreamResult r;
    r.documents = int64_t(docs.size());
    r.tokens = tokenize_documents(tokenizer, docs, corpus.separator_id, resolve_threads(options.threads));
    return r;
  };
  if (!options.use_cache) {
    corpus.cache_statuses.push_back(CacheStatus::Disabled);
    corpus.cache_files.emplace_back();
    return build();
  }
  fs::path dir = options.cache_dir.empty() ? default_lm_cache_dir() : options.cache_dir;
  // One file per corpus and tokenizer, so switching tokenizers does not throw a cache away.
  Fnv where;
  where.u64(tokenizer_fp);
  where.str(layout);
  for (const fs::path& p : sources) {
    std::error_code ec;
    where.str(fs::absolute(p, ec).lexically_normal().string());
  }
  fs::path file = dir / (safe_name(name) + "-" + hex(where.h, 16) + ".tokens");
  corpus.cache_files.push_back(file);

  TokenCacheRead read = read_token_cache(file, key);
  if (read.tokens) {
    corpus.cache_statuses.push_back(CacheStatus::Reused);
    return {std::move(*read.tokens), read.documents};
  }
  StreamResult r = build();
  CacheStatus status = read.status;
  if (status == CacheStatus::RebuiltStale)
    corpus.notes.push_back(file.string() + ": token cache is stale (" + read.why + "), rebuilt");
  if (status == CacheStatus::RebuiltCorrupt)
    corpus.notes.push_back(file.string() + ": token cache is damaged (" + read.why + "), rebuilt");
  try {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail(dir.string(), ": cannot create the cache folder (", ec.message(), ")");
    write_token_cache(file, key, r.tokens, r.documents);
  } catch (const Error& e) {
    status = CacheStatus::Unwritable;
    corpus.notes.push_back(std::string("token cache not written, tokens kept in memory: ") + e.what());
  }
  corpus.cache_statuses.push_back(status);
  return r;
}

std::vector<fs::path> text_files_of(const fs::path& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return {path};
  if (!fs::is_directory(path, ec)) fail(path.string(), ": no such file or folder (data for language modelling)");
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string leaf = it->path().filename().string();
    if (!leaf.empty() && leaf[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec)) files.push_back(it->path());
  }
  if (ec) fail(path.string(), ": cannot list the folder (", ec.message(), ")");
  std::sort(files.begin(), files.end());
  if (files.empty()) fail(path.string(), ": the folder holds no text files");
  return files;
}

}  // namespace

fs::path default_lm_cache_dir() {
  if (const char* v = std::getenv("WATTWISE_CACHE"); v && *v) return fs::path(v);
  if (const char* v = std::getenv("XDG_CACHE_HOME"); v && *v) return fs::path(v) / "wattwise" / "tokens";
  if (const char* v = std::getenv("HOME"); v && *v) return fs::path(v) / ".cache" / "wattwise" / "tokens";
  return fs::temp_directory_path() / "wattwise-tokens";
}

const char* cache_status_name(CacheStatus status) {
  switch (status) {
    case CacheStatus::Disabled: return "disabled";
    case CacheStatus::Built: return "built";
    case CacheStatus::Reused: return "reused";
    case CacheStatus::RebuiltStale: return "rebuilt (stale)";
    case CacheStatus::RebuiltCorrupt: return "rebuilt (damaged)";
    case CacheStatus::Unwritable: return "not written";
  }
  return "?";
}

bool LmCorpus::has_split(const std::string& name) const {
  std::string key = (name == "validation" || name == "val" || name == "dev") ? "valid" : name;
  for (const auto& s : splits)
    if (s.name == key) return true;
  return false;
}

const LmSplit& LmCorpus::split(const std::string& name) const {
  std::string key = (name == "validation" || name == "val" || name == "dev") ? "valid" : name;
  std::string available;
  for (const auto& s : splits) {
    if (s.name == key) return s;
    available += (available.empty() ? "" : ", ") + s.name;
  }
  fail("language-modelling data has no split '", name, "' (available: ", available, ")");
}

uint64_t tokenizer_fingerprint(const Tokenizer& tokenizer) {
  Fnv f;
  const int32_t n = tokenizer.vocab_size();
  f.u64(uint64_t(n));
  for (int32_t id = 0; id < n; ++id) {
    std::string token;
    try {
      token = tokenizer.id_to_token(id);
    } catch (const Error&) {
      token = "\x01<gap>";  // ids without a token (gaps in a vocabulary)
    }
    f.str(token);
  }
  if (auto* bpe = dynamic_cast<const BpeTokenizer*>(&tokenizer)) {
    const BpeConfig& c = bpe->config();
    f.str("bpe");
    for (const auto& [a, b] : c.merges) f.str(a), f.str(b);
    for (const auto& t : c.added_tokens) f.str(t.content), f.u64(uint64_t(t.id));
    f.u64(c.ignore_merges ? 1 : 0);
  }
  return f.h;
}

int32_t end_of_text_id(const Tokenizer& tokenizer) {
  if (auto id = tokenizer.token_to_id("<|endoftext|>")) return *id;
  fail("the tokenizer has no \"<|endoftext|>\" token to separate documents (language modelling needs GPT-2's "
       "byte-level BPE tokenizer)");
}

std::vector<std::string> split_wikitext_articles(const std::string& text) {
  auto is_title = [](std::string_view line) {
    size_t b = line.find_first_not_of(" \t\r\n");
    size_t e = line.find_last_not_of(" \t\r\n");
    if (b == std::string_view::npos) return false;
    std::string_view t = line.substr(b, e - b + 1);
    // "= Title =" with one '=' each side; "= = Section = =" is a sub-heading.
    return t.size() >= 5 && t.substr(0, 2) == "= " && t.substr(t.size() - 2) == " =" && t[2] != '=' &&
           t[t.size() - 3] != '=';
  };
  std::vector<std::string> articles;
  size_t start = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    size_t next = end == std::string::npos ? text.size() : end + 1;
    if (pos > start && is_title(std::string_view(text).substr(pos, next - pos))) {
      std::string article = text.substr(start, pos - start);
      // Blank lines before the first heading belong to the first article (nothing is dropped).
      if (!is_blank(article)) {
        articles.push_back(std::move(article));
        start = pos;
      }
    }
    pos = next;
  }
  std::string last = text.substr(start);
  if (!is_blank(last)) articles.push_back(std::move(last));
  return articles;
}

std::vector<int32_t> tokenize_document(const Tokenizer& tokenizer, const std::string& text, int threads,
                                       size_t piece_bytes) {
  return tokenize_documents(tokenizer, {Document{text, "text"}}, 0, threads, piece_bytes);
}

void write_token_cache(const fs::path& file, const TokenCacheKey& key, const std::vector<int32_t>& tokens,
                       int64_t documents) {
  const uint32_t width = key.vocab_size <= 65536 ? 2 : 4;
  std::string payload;
  payload.resize(tokens.size() * width);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= key.vocab_size)
      fail(file.string(), ": token id ", tokens[i], " is outside the vocabulary of ", key.vocab_size);
    if (width == 2) {
      uint16_t v = uint16_t(tokens[i]);
      std::memcpy(payload.data() + 2 * i, &v, 2);
    } else {
      uint32_t v = uint32_t(tokens[i]);
      std::memcpy(payload.data() + 4 * i, &v, 4);
    }
  }
  std::string header(kMagic, sizeof kMagic);
  put<uint32_t>(header, kCacheVersion);
  put<uint32_t>(header, width);
  put<uint64_t>(header, key.tokenizer_fingerprint);
  put<uint64_t>(header, key.source_fingerprint);
  put<int32_t>(header, key.separator_id);
  put<int32_t>(header, key.vocab_size);
  put<uint64_t>(header, uint64_t(tokens.size()));
  put<uint64_t>(header, uint64_t(documents));
  put<uint64_t>(header, payload_checksum(payload.data(), payload.size()));
  WW_CHECK(header.size() == kHeaderBytes, "token cache header is ", header.size(), " bytes");
  io::AtomicFileWriter out(file);
  out.write(header);
  out.write(payload);
  out.commit();
}

TokenCacheRead read_token_cache(const fs::path& file, const TokenCacheKey& key) {
  TokenCacheRead r;
  std::error_code ec;
  if (!fs::exists(file, ec)) return r;  // Built
  std::string bytes;
  try {
    bytes = io::read_file(file);
  } catch (const Error& e) {
    r.status = CacheStatus::RebuiltCorrupt;
    r.why = e.what();
    return r;
  }
  auto corrupt = [&](std::string why) {
    r.status = CacheStatus::RebuiltCorrupt;
    r.why = std::move(why);
    return r;
  };
  auto stale = [&](std::string why) {
    r.status = CacheStatus::RebuiltStale;
    r.why = std::move(why);
    return r;
  };
  if (bytes.size() < kHeaderBytes) return corrupt("shorter than its header");
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) return corrupt("not a wattwise token file");
  if (get<uint32_t>(bytes, 8) != kCacheVersion) return stale("format version " + std::to_string(get<uint32_t>(bytes, 8)));
  const uint32_t width = get<uint32_t>(bytes, 12);
  if (width != 2 && width != 4) return corrupt("token width " + std::to_string(width));
  if (get<uint64_t>(bytes, 16) != key.tokenizer_fingerprint) return stale("made with another tokenizer");
  if (get<uint64_t>(bytes, 24) != key.source_fingerprint) return stale("the source files changed");
  if (get<int32_t>(bytes, 32) != key.separator_id || get<int32_t>(bytes, 36) != key.vocab_size)
    return stale("another separator or vocabulary size");
  const uint64_t count = get<uint64_t>(bytes, 40);
  const uint64_t documents = get<uint64_t>(bytes, 48);
  if (count > (bytes.size() - kHeaderBytes) / width || bytes.size() != kHeaderBytes + count * width)
    return corrupt("holds " + std::to_string(bytes.size() - kHeaderBytes) + " payload bytes, the header says " +
                   std::to_string(count) + " tokens of " + std::to_string(width) + " bytes");
  if (payload_checksum(bytes.data() + kHeaderBytes, count * width) != get<uint64_t>(bytes, 56))
    return corrupt("checksum mismatch");
  std::vector<int32_t> tokens(count);
  for (uint64_t i = 0; i < count; ++i) {
    int64_t id = width == 2 ? int64_t(get<uint16_t>(bytes, kHeaderBytes + 2 * i))
                            : int64_t(get<uint32_t>(bytes, kHeaderBytes + 4 * i));
    if (id >= key.vocab_size) return corrupt("token id " + std::to_string(id) + " outside the vocabulary");
    tokens[i] = int32_t(id);
  }
  r.tokens = std::move(tokens);
  r.documents = int64_t(documents);
  r.status = CacheStatus::Reused;
  return r;
}

LmCorpus load_lm_corpus(const fs::path& path, const Tokenizer& tokenizer, const LmDataOptions& options) {
  if (!(options.valid_fraction >= 0 && options.valid_fraction < 1))
    fail("valid_fraction must be in [0, 1), got ", options.valid_fraction);
  std::string format = options.format;
  std::error_code ec;
  if (format == "auto") format = fs::is_regular_file(path / "wiki.train.raw", ec) ? "wikitext" : "text";
  if (format != "text" && format != "wikitext") fail("data format '", options.format, "': expected text, wikitext or auto");

  LmCorpus corpus;
  corpus.format = format;
  corpus.separator_id = end_of_text_id(tokenizer);
  const uint64_t tokenizer_fp = tokenizer_fingerprint(tokenizer);

  if (format == "wikitext") {
    if (!fs::is_directory(path, ec)) fail(path.string(), ": wikitext data must be a folder with wiki.train.raw");
    for (const char* split : {"train", "valid", "test"}) {
      fs::path file = path / (std::string("wiki.") + split + ".raw");
      if (!fs::is_regular_file(file, ec)) {
        if (std::string(split) == "test") continue;
        fail(path.string(), ": wikitext data needs ", file.filename().string(), " (found no such file)");
      }
      StreamResult s = cached_stream(corpus, options, path.filename().string() + "-" + split, {file}, "wikitext",
                                     tokenizer, tokenizer_fp, [&] {
                                       std::vector<Document> docs;
                                       size_t n = 0;
                                       for (auto& a : split_wikitext_articles(read_document(file)))
                                         docs.push_back({std::move(a), file.string() + " article " + std::to_string(++n)});
                                       return docs;
                                     });
      if (s.tokens.empty()) fail(file.string(), ": holds no text");
      corpus.splits.push_back({split, std::make_shared<const std::vector<int32_t>>(std::move(s.tokens)), s.documents});
    }
    return corpus;
  }

  std::vector<fs::path> files = text_files_of(path);
  std::string name = path.filename().string();
  if (name.empty()) name = path.parent_path().filename().string();
  StreamResult s = cached_stream(corpus, options, name, files, "text", tokenizer, tokenizer_fp, [&] {
    std::vector<Document> docs;
    for (const fs::path& f : files) {
      std::string text = read_document(f);
      if (!is_blank(text)) docs.push_back({std::move(text), f.string()});
    }
    return docs;
  });
  if (s.tokens.size() < 2) fail(path.string(), ": holds too little text to model (", s.tokens.size(), " tokens)");
  const size_t valid = size_t(double(s.tokens.size()) * options.valid_fraction);
  if (options.valid_fraction > 0 && valid < 2)
    fail(path.string(), ": ", s.tokens.size(), " tokens leave no validation split at valid_fraction ",
         options.valid_fraction);
  const size_t train = s.tokens.size() - valid;
  corpus.splits.push_back({"train", std::make_shared<const std::vector<int32_t>>(s.tokens.begin(), s.tokens.begin() + train),
                           s.documents});
  if (valid > 0)
    corpus.splits.push_back(
        {"valid", std::make_shared<const std::vector<int32_t>>(s.tokens.begin() + train, s.tokens.end()), 0});
  return corpus;
}

// ---- packing --------------------------------------------------------------------------------------

int64_t lm_window_count(int64_t num_tokens, int64_t block_size) {
  if (block_size < 2) fail("block size must be at least 2, got ", block_size);
  if (num_tokens < 2) return 0;
  return (num_tokens - 1 + block_size - 2) / (block_size - 1);
}

LmLoader::LmLoader(std::shared_ptr<const std::vector<int32_t>> tokens, const LmLoaderOptions& options,
                   uint64_t epoch, int32_t pad_id)
    : tokens_(std::move(tokens)), options_(options), pad_id_(pad_id) {
  WW_CHECK(tokens_ != nullptr, "LmLoader needs a token stream");
  if (options_.batch_size <= 0) fail("batch size must be positive, got ", options_.batch_size);
  int64_t n = lm_window_count(int64_t(tokens_->size()), options_.block_size);
  if (options_.max_windows > 0) n = std::min(n, options_.max_windows);
  order_.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) order_[size_t(i)] = i;
  if (options_.shuffle) {
    Rng rng(options_.seed, 0x4c4d000000000000ull + epoch);  // one stream per epoch
    for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng.below(i)]);
  }
}

int64_t LmLoader::num_batches() const {
  return (num_windows() + options_.batch_size - 1) / options_.batch_size;
}

std::optional<LmBatch> LmLoader::next() {
  if (position_ >= order_.size()) return std::nullopt;
  const int64_t T = options_.block_size;
  const int64_t B = std::min<int64_t>(options_.batch_size, int64_t(order_.size() - position_));
  const int64_t n = int64_t(tokens_->size());
  LmBatch b;
  b.batch = B;
  b.seq_len = T;
  b.input_ids = Tensor::empty({B, T}, DType::I32);
  b.attention_mask = Tensor::empty({B, T}, DType::I32);
  b.labels = Tensor::empty({B, T}, DType::I32);
  int32_t* ids = b.input_ids.data<int32_t>();
  int32_t* mask = b.attention_mask.data<int32_t>();
  int32_t* labels = b.labels.data<int32_t>();
  for (int64_t r = 0; r < B; ++r) {
    const int64_t start = order_[position_++] * (T - 1);
    const int64_t real = std::min(T, n - start);
    for (int64_t t = 0; t < T; ++t) {
      const bool in = t < real;
      const int32_t id = in ? (*tokens_)[size_t(start + t)] : pad_id_;
      ids[r * T + t] = id;
      mask[r * T + t] = in ? 1 : 0;
      labels[r * T + t] = in ? id : -100;
    }
    b.input_tokens += real;
    b.target_tokens += real - 1;
  }
  return b;
}

}  // namespace ww::text
