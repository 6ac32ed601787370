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

using detail::get_bool;
using detail::get_optional_bool;
using detail::get_string;
using detail::json_type_name;
using detail::parse_json_file;
using detail::read_whole_file;
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

nlohmann::ordered_json vocab_json(const BpeConfig& c) {
  std::vector<std::pair<std::string, int32_t>> sorted = c.vocab;
  std::sort(sorted.begin(), sorted.end(), [](const auto& x, const auto& y) { return x.second < y.second; });
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (const auto& [token, id] : sorted) vocab[token] = id;
  return vocab;
}

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
                {"vocab", vocab_json(c)},
                {"merges", merges}};
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::strict) + "\n";
}

}  // namespace

void BpeTokenizer::save(const std::filesystem::path& dir) const {
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
    j["model_max_length"] = 1024;
    j["clean_up_tokenization_spaces"] = false;  // decode gives back the exact text
    tokenizer_config = j.dump(2) + "\n";
  }
  io::write_file_atomic(dir / "vocab.json", vocab_json(c).dump() + "\n");
  io::write_file_atomic(dir / "merges.txt", merges_txt);
  io::write_file_atomic(dir / "tokenizer.json",
                        c.source_tokenizer_json.empty() ? generate_tokenizer_json(c) : c.source_tokenizer_json);
  io::write_file_atomic(dir / "tokenizer_config.json", tokenizer_config);
  io::write_file_atomic(dir / "special_tokens_map.json", special_map.dump(2) + "\n");
}

// ---- loading ---------------------------------------------------------------------------------

namespace {



int32_t get_id(const nlohmann::json& value, const std::string& where) {
  if (!value.is_number_integer()) fail(where, " must be an integer id, not ", json_type_name(value));
  int64_t id = value.get<int64_t>();
  if (id < 0 || id > INT32_MAX) fail(where, " must be an id between 0 and ", INT32_MAX, ", not ", id);
  return int32_t(id);
}


std::vector<std::pair<std::string, int32_t>> parse_vocab(const nlohmann::json& vocab,
                                                         const std::string& where) {
  if (!vocab.is_object()) fail(where, " must be an object of token -> id");
  std::vector<std::pair<std::string, int32_t>> out;
  out.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    out.emplace_back(it.key(), get_id(it.value(), where + "[\"" + it.key() + "\"]"));
  }
  return out;
}

// "left right" as in merges.txt and older tokenizer.json files.
std::pair<std::string, std::string> split_merge(std::string_view line, const std::string& where) {
  size_t space = line.find(' ');
  if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos ||
      space == 0 || space + 1 == line.size()) {
    fail(where, ": expected two tokens separated by one space, not \"", line, "\"");
  }
  return {std::string(line.substr(0, space)), std::string(line.substr(space + 1))};
}

// A token of tokenizer_config.json: a string or an AddedToken-like object.
std::optional<std::string> config_token(const nlohmann::json& config, const char* key,
                                        const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  fail(where, ".", key, " must be a string or an object with \"content\"");
}

// Added tokens here are matched exactly where they appear; the flags that change that are refused.
BpeAddedToken parse_added_token(const nlohmann::json& j, int32_t id, const std::string& where) {
  if (!j.is_object()) fail(where, " must be an object, not ", json_type_name(j));
  auto content = j.find("content");
  if (content == j.end() || !content->is_string()) fail(where, ".content must be a string");
  for (const char* flag : {"single_word", "lstrip", "rstrip"}) {
    if (get_bool(j, flag, false, where)) {
      fail(where, ".", flag, " is true; byte-level BPE added tokens with ", flag, " are not supported");
    }
  }
  return BpeAddedToken{content->get<std::string>(), id, get_bool(j, "special", false, where)};
}

// pad_token and added_tokens_decoder of a tokenizer_config.json, into `c`.
void apply_tokenizer_config(const std::filesystem::path& path, BpeConfig& c, bool take_added_tokens) {
  c.tokenizer_config_json = read_whole_file(path, "tokenizer config");
  nlohmann::json config = parse_json_file(path, c.tokenizer_config_json);
  const std::string where = path.string();
  if (!config.is_object()) fail(where, ": expected a JSON object, not ", json_type_name(config));
  c.pad_token = config_token(config, "pad_token", where);
  if (!take_added_tokens) return;
  auto decoder = config.find("added_tokens_decoder");
  if (decoder == config.end() || !decoder->is_object()) return;
  c.added_tokens.clear();
  for (auto it = decoder->begin(); it != decoder->end(); ++it) {
    const std::string at = where + ": added_tokens_decoder[\"" + it.key() + "\"]";
    int32_t id = 0;
    try {
      size_t used = 0;
      long value = std::stol(it.key(), &used);
      if (used != it.key().size() || value < 0 || value > INT32_MAX) throw std::invalid_argument("id");
      id = int32_t(value);
    } catch (const std::exception&) {
      fail(at, ": the key must be a token id");
    }
    c.added_tokens.push_back(parse_added_token(it.value(), id, at));
  }
}

}  // namespace

std::string tokenizer_json_model_type(const std::filesystem::path& path) {
  std::string text = read_whole_file(path, "tokenizer file");
  nlohmann::json j = parse_json_file(path, text);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) return "";
  const nlohmann::json& model = j["model"];
  if (model.contains("type") && model["type"].is_string()) return model["type"].get<std::string>();
  return model.contains("merges") ? "BPE" : "";  // older files omit the type
}

std::unique_ptr<BpeTokenizer> load_bpe_files(
    const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt,
    const std::optional<std::filesystem::path>& tokenizer_config_json) {
  BpeConfig c;
  {
    std::string text = read_whole_file(vocab_json, "vocabulary");
    c.vocab = parse_vocab(parse_json_file(vocab_json, text), vocab_json.string());
  }
  std::string text = read_whole_file(merges_txt, "merges");
  size_t line_number = 0, begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    ++line_number;
    std::string_view line(text.data() + begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    begin = end + 1;
    if (line.rfind("#version", 0) == 0) continue;
    const std::string where = merges_txt.string() + ":" + std::to_string(line_number);
    if (auto problem = find_invalid_utf8(line)) {
      fail(where, ": invalid UTF-8: ", problem->reason, " at byte ", problem->offset);
    }
    c.merges.push_back(split_merge(line, where));
  }
  // GPT2TokenizerFast makes <|endoftext|> its bos/eos/unk token, an added special token.
  for (const auto& [token, id] : c.vocab) {
    if (token == "<|endoftext|>") c.added_tokens.push_back({token, id, true});
  }
  std::string source = vocab_json.string() + " + " + merges_txt.string();
  if (tokenizer_config_json) {
    apply_tokenizer_config(*tokenizer_config_json, c, /*take_added_tokens=*/true);
    source += " + " + tokenizer_config_json->string();
  }
  return std::make_unique<BpeTokenizer>(std::move(c), source);
}

std::unique_ptr<BpeTokenizer> load_bpe_tokenizer_json(
    const std::filesystem::path& path,
    const std::optional<std::filesystem::path>& tokenizer_config_json) {
  const std::string file = path.string();
  std::string text = read_whole_file(path, "tokenizer file");
  nlohmann::json j = parse_json_file(path, text);
  if (!j.is_object()) fail(file, ": expected a JSON object, not ", json_type_name(j));
  BpeConfig c;
  c.source_tokenizer_json = std::move(text);

  const nlohmann::json model = j.value("model", nlohmann::json());
  if (!model.is_object()) fail(file, ": missing \"model\" object");
  const std::string where = file + ": model";
  if (model.contains("type") && model["type"] != "BPE") {
    fail(where, ".type is ", model["type"].dump(), "; expected \"BPE\"");
  }
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0)) {
    fail(where, ".dropout is ", model["dropout"].dump(), "; BPE dropout is not supported (use null)");
  }
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    fail(where, ".unk_token is ", model["unk_token"].dump(),
         "; only byte-level BPE without an unknown token (GPT-2 style, null) is supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && model[key] != "") {
      fail(where, ".", key, " is ", model[key].dump(), "; only \"\" or null is supported");
    }
  }
  if (get_bool(model, "byte_fallback", false, where)) fail(where, ".byte_fallback is not supported");
  c.ignore_merges = get_bool(model, "ignore_merges", false, where);
  c.vocab = parse_vocab(model.value("vocab", nlohmann::json()), where + ".vocab");
  const nlohmann::json merges = model.value("merges", nlohmann::json());
  if (!merges.is_array()) fail(where, ".merges must be an array");
  c.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string at = where + ".merges[" + std::to_string(i) + "]";
    const nlohmann::json& m = merges[i];
    if (m.is_string()) {
      c.merges.push_back(split_merge(m.get<std::string>(), at));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      c.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail(at, " must be \"left right\" or [\"left\", \"right\"]");
    }
  }

  const nlohmann::json normalizer = j.value("normalizer", nlohmann::json());
  if (!normalizer.is_null()) fail(file, ": normalizer must be null for a byte-level BPE tokenizer");
  const nlohmann::json pre = j.value("pre_tokenizer", nlohmann::json());
  if (!pre.is_object() || pre.value("type", std::string()) != "ByteLevel") {
    fail(file, ": pre_tokenizer must be ByteLevel (GPT-2 style), not ", pre.dump());
  }
  if (get_bool(pre, "add_prefix_space", false, file + ": pre_tokenizer")) {
    fail(file, ": pre_tokenizer.add_prefix_space true is not supported (GPT-2 uses false)");
  }
  if (!get_bool(pre, "use_regex", true, file + ": pre_tokenizer")) {
    fail(file, ": pre_tokenizer.use_regex false is not supported (GPT-2 uses true)");
  }

  const nlohmann::json post = j.value("post_processor", nlohmann::json());
  if (!post.is_null()) {
    const std::string ptype = post.is_object() ? post.value("type", std::string()) : std::string();
    if (ptype == "TemplateProcessing") {
      // Only templates without special tokens: "A" and "A B" (as GPT2TokenizerFast writes them).
      auto check = [&](const char* key, size_t pieces) {
        const nlohmann::json t = post.value(key, nlohmann::json());
        bool ok = t.is_array() && t.size() == pieces;
        for (size_t i = 0; ok && i < t.size(); ++i) {
          ok = t[i].contains("Sequence") && t[i]["Sequence"].value("id", "") == (i == 0 ? "A" : "B");
        }
        if (!ok) {
          fail(file, ": post_processor.", key, " must be the plain sequence",
               pieces == 1 ? " A" : "s A B", " (special tokens are not supported for byte-level BPE)");
        }
        return t;
      };
      check("single", 1);
      const nlohmann::json pair = check("pair", 2);
      c.pair_type_id = int32_t(pair[1]["Sequence"].value("type_id", 0));
    } else if (ptype != "ByteLevel") {
      fail(file, ": post_processor.type is \"", ptype, "\"; only ByteLevel, a TemplateProcessing without "
           "special tokens, or null is supported");
    }
  }
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    const nlohmann::json& added = j["added_tokens"];
    if (!added.is_array()) fail(file, ": added_tokens must be an array");
    for (size_t i = 0; i < added.size(); ++i) {
      const std::string at = file + ": added_tokens[" + std::to_string(i) + "]";
      if (!added[i].is_object() || !added[i].contains("id")) fail(at, ".id is missing");
      c.added_tokens.push_back(parse_added_token(added[i], get_id(added[i]["id"], at + ".id"), at));
    }
  }
  std::string source = file;
  if (tokenizer_config_json) {
    apply_tokenizer_config(*tokenizer_config_json, c, /*take_added_tokens=*/false);
    source += " + " + tokenizer_config_json->string();
  }
  return std::make_unique<BpeTokenizer>(std::move(c), source);
}

}  // namespace ww::text
