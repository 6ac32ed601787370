#include "wattwise/text/bpe.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "wattwise/core/error.h"
#include "wattwise/io/file.h"
#include "wattwise/text/utf8.h"
#include "wattwise/text/wordpiece.h"  // truncate_longest_first
#include "text/json_read.h"

namespace ww::text {

namespace {

struct BpeClassRange {
  char32_t first, last;
  char cls;  // 'L' or 'N'
};
#include "text/bpe_unicode_tables.inc"

// The classes GPT-2's pattern tells apart: \p{L}, \p{N}, \s and everything else.
enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

// \s as Oniguruma sees it in tokenizers: the Unicode White_Space property.
bool is_white_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

CharClass classify_non_ascii(char32_t c) {
  if (is_white_space(c)) return CharClass::kSpace;
  int category = utf8proc_category(utf8proc_int32_t(c));
  if (category >= UTF8PROC_CATEGORY_LU && category <= UTF8PROC_CATEGORY_LO) return CharClass::kLetter;
  if (category >= UTF8PROC_CATEGORY_ND && category <= UTF8PROC_CATEGORY_NO) return CharClass::kNumber;
  // Newer Unicode letters/numbers that utf8proc does not know yet (unassigned there).
  const auto* begin = std::begin(kHfExtraLettersAndNumbers);
  const auto* end = std::end(kHfExtraLettersAndNumbers);
  const auto* it = std::lower_bound(begin, end, c, [](const BpeClassRange& r, char32_t x) {
    return r.last < x;
  });
  if (it != end && it->first <= c) return it->cls == 'L' ? CharClass::kLetter : CharClass::kNumber;
  return CharClass::kOther;
}

constexpr std::array<CharClass, 128> make_ascii_classes() {
  std::array<CharClass, 128> table{};
  for (int b = 0; b < 128; ++b) {
    if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')) table[b] = CharClass::kLetter;
    else if (b >= '0' && b <= '9') table[b] = CharClass::kNumber;
    else if (b == ' ' || (b >= 0x09 && b <= 0x0D)) table[b] = CharClass::kSpace;
    else table[b] = CharClass::kOther;
  }
  return table;
}
constexpr std::array<CharClass, 128> kAsciiClass = make_ascii_classes();

// Class of the character starting at s[pos]; sets `next` to the byte after it. s is valid UTF-8.
inline CharClass class_at(std::string_view s, size_t pos, size_t& next) {
  const auto b = static_cast<unsigned char>(s[pos]);
  if (b < 0x80) {
    next = pos + 1;
    return kAsciiClass[b];
  }
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + pos);
  const auto* q = p;
  char32_t c = decode_utf8(q);
  next = pos + size_t(q - p);
  return classify_non_ascii(c);
}

// GPT-2's pre-tokenizer pattern, matched by hand. Every character belongs to one alternative, so the
// matches tile the text; on_piece(begin, length) is called for each in order.
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
template <typename OnPiece>
void split_gpt2_pattern(std::string_view s, OnPiece&& on_piece) {
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const char b = s[i];
    if (b == '\'' && i + 1 < n) {  // contractions come first and are case-sensitive
      const char c1 = s[i + 1];
      size_t length = 0;
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        length = 2;
      } else if (i + 2 < n) {
        const char c2 = s[i + 2];
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) length = 3;
      }
      if (length) {
        on_piece(i, length);
        i += length;
        continue;
      }
    }
    const size_t start = i;
    size_t after_first;
    CharClass cls = class_at(s, i, after_first);
    size_t run_end = after_first;  // the end of the first character of the run
    if (b == ' ' && after_first < n) {
      // " ?X+": one ASCII space may lead a run of letters, numbers or other characters.
      size_t after_second;
      CharClass next = class_at(s, after_first, after_second);
      if (next != CharClass::kSpace) {
        cls = next;
        run_end = after_second;
      }
    }
    if (cls != CharClass::kSpace) {
      while (run_end < n) {
        size_t next;
        if (class_at(s, run_end, next) != cls) break;
        run_end = next;
      }
      on_piece(start, run_end - start);
      i = run_end;
      continue;
    }
    // Whitespace: \s+(?!\S) takes the run except its last character when a non-space follows
    // (that character may then lead the next word); a lone space before a non-space is \s+.
    size_t last_begin = start;
    while (run_end < n) {
      size_t next;
      if (class_at(s, run_end, next) != CharClass::kSpace) break;
      last_begin = run_end;
      run_end = next;
    }
    const size_t stop = (run_end == n || last_begin == start) ? run_end : last_begin;
    on_piece(start, stop - start);
    i = stop;
  }
}

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest for 256, 257, ...
std::array<char32_t, 256> make_byte_to_char() {
  std::array<char32_t, 256> table{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = printable ? char32_t(b) : next++;
  }
  return table;
}
const std::array<char32_t, 256>& byte_to_char_table() {
  static const std::array<char32_t, 256> table = make_byte_to_char();
  return table;
}

std::string bytes_to_token(std::string_view bytes) {
  std::string out;
  for (char b : bytes) append_utf8(out, byte_to_char_table()[static_cast<unsigned char>(b)]);
  return out;
}

// Token text (byte-level alphabet) back to the bytes it stands for. A character outside the
// alphabet (possible in hand-made vocabularies) stands for its own UTF-8 bytes.
std::string token_to_bytes(std::string_view token) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(token.data());
  const auto* end = p + token.size();
  while (p < end) {
    char32_t c = decode_utf8(p);
    const auto& table = byte_to_char_table();
    int byte = -1;
    if (c < 0x100 && table[c] == c) byte = int(c);
    else if (c >= 256 && c < 256 + 68) {
      for (int b = 0; b < 256; ++b) {
        if (table[b] == c) {
          byte = b;
          break;
        }
      }
    }
    if (byte >= 0) out.push_back(char(byte));
    else append_utf8(out, c);
  }
  return out;
}

// Open-addressing map from a pair of ids to the merge's (rank, new id).
class MergeTable {
 public:
  struct Merge {
    int32_t rank = -1;
    int32_t new_id = -1;
  };
  void build(size_t count) {
    size_t capacity = 16;
    while (capacity < count * 2) capacity *= 2;
    keys_.assign(capacity, kEmpty);
    values_.assign(capacity, Merge{});
    mask_ = capacity - 1;
  }
  // A later merge of the same pair replaces the earlier one (as tokenizers' HashMap collect does).
  void insert(int32_t a, int32_t b, Merge merge) {
    const uint64_t key = pack(a, b);
    size_t index = home(key);
    while (keys_[index] != kEmpty && keys_[index] != key) index = (index + 1) & mask_;
    keys_[index] = key;
    values_[index] = merge;
  }
  const Merge* find(int32_t a, int32_t b) const {
    const uint64_t key = pack(a, b);
    for (size_t index = home(key);; index = (index + 1) & mask_) {
      if (keys_[index] == key) return &values_[index];
      if (keys_[index] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  size_t home(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> 17) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<Merge> values_;
  size_t mask_ = 0;
};

std::atomic<uint64_t> next_tokenizer_serial{1};

struct TransparentHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Ids of pieces already seen, per thread (so encode() needs no lock). Belongs to one tokenizer at
// a time (by serial number) and is emptied when full, which keeps it bounded.
struct PieceCache {
  static constexpr size_t kMaxEntries = 1 << 16;
  static constexpr size_t kMaxPieceBytes = 64;  // longer pieces are rare; not worth the memory
  uint64_t owner = 0;
  std::unordered_map<std::string, std::vector<int32_t>, TransparentHash, std::equal_to<>> entries;
};

PieceCache& thread_cache(uint64_t owner) {
  thread_local PieceCache cache;
  if (cache.owner != owner) {
    cache.entries.clear();
    cache.owner = owner;
  }
  return cache;
}


}  // namespace

char32_t bpe_byte_to_char(uint8_t b) { return byte_to_char_table()[b]; }

struct BpeTokenizer::Impl {
  BpeConfig config;
  std::string source;
  uint64_t serial = 0;
  std::unordered_map<std::string, int32_t, TransparentHash, std::equal_to<>> token_ids;  // + added
  std::vector<std::string> id_to_token;  // "" where an id has no token
  std::vector<bool> id_used;
  std::vector<std::string> id_bytes;     // what decode() emits for each id
  std::array<int32_t, 256> byte_ids{};   // id of each single-byte token, -1 when missing
  MergeTable merges;
  std::vector<BpeAddedToken> added;      // sorted by content, for matching
  std::array<bool, 256> added_first_byte{};
  int32_t pad_id = 0;

  void bpe(std::string_view piece, std::vector<int32_t>& ids) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& ids) const;
  void encode_sequence(std::string_view text, std::vector<int32_t>& ids) const;
  template <typename OnSegment>
  void split_added(std::string_view text, OnSegment&& on_segment) const;
};

// tokenizers' Word::merge_all: the pair with the lowest rank merges first, the leftmost among equal
// ranks; merging creates new pairs with the neighbours. Bytes whose token is missing are dropped
// (tokenizers does the same when the model has no unk_token).
void BpeTokenizer::Impl::bpe(std::string_view piece, std::vector<int32_t>& ids) const {
  if (config.ignore_merges) {
    auto it = token_ids.find(bytes_to_token(piece));
    if (it != token_ids.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // indices, -1 at the ends
    bool alive;
  };
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  for (char b : piece) {
    int32_t id = byte_ids[static_cast<unsigned char>(b)];
    if (id < 0) continue;
    int32_t index = int32_t(symbols.size());
    symbols.push_back({id, index - 1, index + 1, true});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    int32_t rank, pos, new_id;
    bool operator<(const Candidate& other) const {  // for a max-heap: lowest rank, then lowest pos
      if (rank != other.rank) return rank > other.rank;
      return pos > other.pos;
    }
  };
  thread_local std::vector<Candidate> heap;
  heap.clear();
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const auto* m = merges.find(symbols[i].id, symbols[i + 1].id)) {
      heap.push_back({m->rank, int32_t(i), m->new_id});
    }
  }
  std::make_heap(heap.begin(), heap.end());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const auto* current = merges.find(left.id, right.id);
    if (!current || current->new_id != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const auto* m = merges.find(symbols[left.prev].id, left.id)) {
        heap.push_back({m->rank, left.prev, m->new_id});
        std::push_heap(heap.begin(), heap.end());
      }
    }
    if (left.next >= 0) {
      if (const auto* m = merges.find(left.id, symbols[left.next].id)) {
        heap.push_back({m->rank, top.pos, m->new_id});
        std::push_heap(heap.begin(), heap.end());
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.alive) ids.push_back(s.id);
  }
}

void BpeTokenizer::Impl::encode_piece(std::string_view piece, std::vector<int32_t>& ids) const {
  if (piece.size() > PieceCache::kMaxPieceBytes) {
    bpe(piece, ids);
    return;
  }
  PieceCache& cache = thread_cache(serial);
  auto it = cache.entries.find(piece);
  if (it != cache.entries.end()) {
    ids.insert(ids.end(), it->second.begin(), it->second.end());
    return;
  }
  const size_t first = ids.size();
  bpe(piece, ids);
  if (cache.entries.size() >= PieceCache::kMaxEntries) cache.entries.clear();
  cache.entries.emplace(std::string(piece), std::vector<int32_t>(ids.begin() + first, ids.end()));
}

// Splits around added tokens the way tokenizers' AddedVocabulary does (leftmost, longest match);
// on_segment(text, id) gets id -1 for the text between matches.
template <typename OnSegment>
void BpeTokenizer::Impl::split_added(std::string_view text, OnSegment&& on_segment) const {
  if (added.empty()) {
    on_segment(text, -1);
    return;
  }
  size_t segment_begin = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (!added_first_byte[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    const BpeAddedToken* best = nullptr;
    for (const BpeAddedToken& token : added) {
      if (token.content.size() <= text.size() - i &&
          (!best || token.content.size() > best->content.size()) &&
          text.compare(i, token.content.size(), token.content) == 0) {
        best = &token;
      }
    }
    if (!best) {
      ++i;
      continue;
    }
    if (segment_begin < i) on_segment(text.substr(segment_begin, i - segment_begin), -1);
    on_segment(text.substr(i, best->content.size()), best->id);
    i += best->content.size();
    segment_begin = i;
  }
  if (segment_begin < text.size()) on_segment(text.substr(segment_begin), -1);
}

void BpeTokenizer::Impl::encode_sequence(std::string_view text, std::vector<int32_t>& ids) const {
  split_added(text, [&](std::string_view segment, int32_t id) {
    if (id >= 0) {
      ids.push_back(id);
      return;
    }
    split_gpt2_pattern(segment, [&](size_t begin, size_t length) {
      encode_piece(segment.substr(begin, length), ids);
    });
  });
}

// ---- construction ----------------------------------------------------------------------------

BpeTokenizer::BpeTokenizer(BpeConfig config, std::string source) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.config = std::move(config);
  m.source = std::move(source);
  m.serial = next_tokenizer_serial.fetch_add(1);
  BpeConfig& c = m.config;
  if (c.vocab.empty()) fail(m.source, ": the vocabulary is empty");

  int32_t max_id = -1;
  std::string_view max_id_token;
  for (const auto& [token, id] : c.vocab) {
    if (id < 0) fail(m.source, ": token \"", token, "\" has negative id ", id);
    if (id > max_id) max_id = id, max_id_token = token;
  }
  for (const BpeAddedToken& token : c.added_tokens) {
    if (token.id < 0) fail(m.source, ": added token \"", token.content, "\" has negative id ", token.id);
    if (token.id > max_id) max_id = token.id, max_id_token = token.content;
  }
  check_token_ids_dense(max_id, max_id_token, c.vocab.size() + c.added_tokens.size(), m.source);
  m.id_to_token.assign(size_t(max_id) + 1, std::string());
  m.id_used.assign(size_t(max_id) + 1, false);
  m.id_bytes.assign(size_t(max_id) + 1, std::string());
  m.token_ids.reserve(c.vocab.size() + c.added_tokens.size());
  for (const auto& [token, id] : c.vocab) {
    check_utf8(token, m.source + ": vocabulary token with id " + std::to_string(id));
    if (auto [it, inserted] = m.token_ids.emplace(token, id); !inserted) {
      fail(m.source, ": token \"", token, "\" appears twice (ids ", it->second, " and ", id, ")");
    }
    if (m.id_used[id]) {
      fail(m.source, ": id ", id, " is used by both \"", m.id_to_token[id], "\" and \"", token, "\"");
    }
    m.id_used[id] = true;
    m.id_to_token[id] = token;
    m.id_bytes[id] = token_to_bytes(token);
  }
  for (int b = 0; b < 256; ++b) {
    std::string token;
    append_utf8(token, bpe_byte_to_char(uint8_t(b)));
    auto it = m.token_ids.find(token);
    m.byte_ids[b] = it == m.token_ids.end() ? -1 : it->second;
  }

  m.merges.build(c.merges.size());
  for (size_t rank = 0; rank < c.merges.size(); ++rank) {
    const std::string& left = c.merges[rank].first;  // not a structured binding: clang 14
    const std::string& right = c.merges[rank].second;  // cannot capture those in a lambda
    auto id_of = [&](const std::string& token, const char* what) {
      auto it = m.token_ids.find(token);
      if (it == m.token_ids.end()) {
        fail(m.source, ": merge ", rank + 1, " (\"", left, " ", right, "\"): the ", what, " \"",
             token, "\" is not in the vocabulary");
      }
      return it->second;
    };
    int32_t a = id_of(left, "left part");
    int32_t b = id_of(right, "right part");
    int32_t merged = id_of(left + right, "merged token");
    m.merges.insert(a, b, {int32_t(rank), merged});
  }

  for (const BpeAddedToken& token : c.added_tokens) {
    check_utf8(token.content, m.source + ": added token with id " + std::to_string(token.id));
    if (token.content.empty()) fail(m.source, ": added token with id ", token.id, " is empty");
    if (m.id_used[token.id] && m.id_to_token[token.id] != token.content) {
      fail(m.source, ": added token \"", token.content, "\" has id ", token.id, ", which is \"",
           m.id_to_token[token.id], "\" in the vocabulary");
    }
    if (!m.id_used[token.id]) {
      m.id_used[token.id] = true;
      m.id_to_token[token.id] = token.content;
      m.token_ids.emplace(token.content, token.id);
    }
    m.id_bytes[token.id] = token.content;  // added tokens decode to their text as typed
    m.added.push_back(token);
    m.added_first_byte[static_cast<unsigned char>(token.content[0])] = true;
  }

  std::optional<int32_t> pad;
  if (c.pad_token) {
    auto it = m.token_ids.find(*c.pad_token);
    if (it == m.token_ids.end()) fail(m.source, ": pad_token \"", *c.pad_token, "\" is not in the vocabulary");
    pad = it->second;
  } else if (auto it = m.token_ids.find("<|endoftext|>"); it != m.token_ids.end()) {
    pad = it->second;
  }
  m.pad_id = pad.value_or(0);
}

BpeTokenizer::~BpeTokenizer() = default;

const BpeConfig& BpeTokenizer::config() const { return impl_->config; }

std::vector<std::string> BpeTokenizer::pre_tokenize(std::string_view text) const {
  check_utf8(text, "text");
  std::vector<std::string> pieces;
  split_gpt2_pattern(text, [&](size_t begin, size_t length) { pieces.emplace_back(text.substr(begin, length)); });
  return pieces;
}

std::vector<int32_t> BpeTokenizer::encode_sequence(std::string_view text) const {
  check_utf8(text, "text");
  std::vector<int32_t> ids;
  impl_->encode_sequence(text, ids);
  return ids;
}

Encoding BpeTokenizer::encode(std::string_view text, std::optional<std::string_view> text_pair,
                              int max_length) const {
  check_utf8(text, "text");
  if (text_pair) check_utf8(*text_pair, "text pair");
  if (max_length < 0) fail("max_length must be 0 (no truncation) or positive, not ", max_length);
  Encoding encoding;
  std::vector<int32_t>& a = encoding.input_ids;
  a.reserve(text.size() / 3 + 4);
  impl_->encode_sequence(text, a);
  std::vector<int32_t> b;
  if (text_pair) impl_->encode_sequence(*text_pair, b);
  if (max_length > 0) truncate_longest_first(a, text_pair ? &b : nullptr, size_t(max_length));
  encoding.token_type_ids.assign(a.size(), 0);
  if (text_pair) {
    a.insert(a.end(), b.begin(), b.end());
    encoding.token_type_ids.resize(a.size(), impl_->config.pair_type_id);
  }
  encoding.attention_mask.assign(a.size(), 1);
  return encoding;
}

std::vector<std::string> BpeTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> tokens;
  for (int32_t id : encode_sequence(text)) tokens.push_back(impl_->id_to_token[id]);
  return tokens;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || size_t(id) >= impl_->id_used.size() || !impl_->id_used[id]) {
      fail("cannot decode token id ", id, ": not in the vocabulary of ", impl_->source, " (",
           vocab_size(), " ids)");
    }
    out += impl_->id_bytes[id];
  }
  return out;
}

int32_t BpeTokenizer::vocab_size() const { return int32_t(impl_->id_to_token.size()); }

int32_t BpeTokenizer::pad_id() const { return impl_->pad_id; }

std::optional<int32_t> BpeTokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->token_ids.find(token);
  if (it == impl_->token_ids.end()) return std::nullopt;
  return it->second;
}

std::string BpeTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->id_to_token.size() || !impl_->id_used[id]) {
    fail("token id ", id, " is not in the vocabulary of ", impl_->source, " (", vocab_size(), " ids)");
  }
  return impl_->id_to_token[id];
}

// ---- saving ----------------------------------------------------------------------------------

namespace {

nlohmann::ordered_json added_token_json(const BpeAddedToken& token) {
  return {{"id", token.id},         {"content", token.content}, {"single_word", false},
          {"lstrip", false},        {"rstrip", false},          {"normalized", false},
          {"special", token.special}};
}

// A tokenizer.json as tokenizers writes for GPT-2.
std::string generate_tokenizer_json(const BpeConfig& c) {
  nlohmann::ordered_json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = nlohmann::ordered_json::array();
  for (const BpeAddedToken& token : c.added_tokens) j["added_tokens"].push_back(added_token_json(token));
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                        {"use_regex", true}};
  j["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false},
                         {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
                  {"use_regex", true}};
  nlohmann::ordered_json merges = nlohmann::ordered_json::array();
  for (const auto& [left, right] : c.merges) merges.push_back({left, right});
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", c.ignore_merges},
                {"vocab", detail::vocab_object(c.vocab)},
                {"merges", merges}};
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::strict) + "\n";
}

}  // namespace

void BpeTokenizer::save(const std::filesystem::path& dir, int64_t model_max_length) const {
  const BpeConfig& c = impl_->config;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) fail("cannot create tokenizer folder ", dir.string(), ": ", error.message());

  std::string merges_txt = "#version: 0.2\n";
  for (const auto& [left, right] : c.merges) {
    merges_txt += left;
    merges_txt += ' ';
    merges_txt += right;
    merges_txt += '\n';
  }
  const std::optional<int32_t> eos = token_to_id("<|endoftext|>");
  nlohmann::ordered_json special_map = nlohmann::ordered_json::object();
  if (eos) {
    for (const char* key : {"bos_token", "eos_token", "unk_token"}) special_map[key] = "<|endoftext|>";
  }
  if (c.pad_token) special_map["pad_token"] = *c.pad_token;

  std::string tokenizer_config = c.tokenizer_config_json;
  if (tokenizer_config.empty()) {
    nlohmann::ordered_json j;
    j["tokenizer_class"] = "GPT2Tokenizer";
    j["add_prefix_space"] = false;
    nlohmann::ordered_json decoder = nlohmann::ordered_json::object();
    for (const BpeAddedToken& token : c.added_tokens) {
      nlohmann::ordered_json entry = added_token_json(token);
      entry.erase("id");
      decoder[std::to_string(token.id)] = entry;
    }
    j["added_tokens_decoder"] = decoder;
    for (auto it = special_map.begin(); it != special_map.end(); ++it) j[it.key()] = it.value();
    j["model_max_length"] = model_max_length > 0 ? model_max_length : 1024;  // GPT-2's positions
    j["clean_up_tokenization_spaces"] = false;  // decode gives back the exact text
    tokenizer_config = j.dump(2) + "\n";
  } else if (model_max_length > 0) {
    // The file this tokenizer came with, completed with the longest input where it gives none.
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(tokenizer_config);
    if (j.is_object() && !j.contains("model_max_length")) {
      j["model_max_length"] = model_max_length;
      tokenizer_config = j.dump(2) + "\n";
    }
  }
  io::write_file_atomic(dir / "vocab.json", detail::vocab_object(c.vocab).dump() + "\n");
  io::write_file_atomic(dir / "merges.txt", merges_txt);
  io::write_file_atomic(dir / "tokenizer.json",
                        c.source_tokenizer_json.empty() ? generate_tokenizer_json(c) : c.source_tokenizer_json);
  io::write_file_atomic(dir / "tokenizer_config.json", tokenizer_config);
  io::write_file_atomic(dir / "special_tokens_map.json", special_map.dump(2) + "\n");
}

}  // namespace ww::text
