#include "wattwise/text/wordpiece.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "wattwise/io/file.h"
#include "wattwise/core/error.h"
#include "wattwise/text/utf8.h"
#include "text/wordpiece_files.h"

namespace ww::text {

namespace {

struct CodepointRange {
  char32_t first, last;
};
#include "text/hf_unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodepointRange (&table)[N], char32_t c) {
  size_t lo = 0, hi = N;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (table[mid].last < c) lo = mid + 1;
    else hi = mid;
  }
  return lo < N && table[lo].first <= c;
}

int category_of(char32_t c) { return utf8proc_category(utf8proc_int32_t(c)); }

// Rust's char::is_whitespace (Unicode White_Space), used by HF's normalizer and pre-tokenizer.
bool is_whitespace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  if (c == 0x85) return true;
  int category = category_of(c);
  return category == UTF8PROC_CATEGORY_ZS || category == UTF8PROC_CATEGORY_ZL ||
         category == UTF8PROC_CATEGORY_ZP;
}

// HF's is_control for non-ASCII code points: categories Cc, Cf, Cs, Co as its tables know them.
bool is_control(char32_t c) {
  int category = category_of(c);
  bool control = category == UTF8PROC_CATEGORY_CC || category == UTF8PROC_CATEGORY_CF ||
                 category == UTF8PROC_CATEGORY_CS || category == UTF8PROC_CATEGORY_CO;
  if (control) return !in_ranges(kHfKeptControls, c);
  return in_ranges(kHfExtraControls, c);
}

bool is_nonspacing_mark(char32_t c) {
  if (category_of(c) == UTF8PROC_CATEGORY_MN) return !in_ranges(kHfKeptNonspacingMarks, c);
  return in_ranges(kHfExtraNonspacingMarks, c);
}

// HF's BertPreTokenizer punctuation for non-ASCII code points (categories Pc..Po).
bool is_punctuation(char32_t c) {
  int category = category_of(c);
  if (category >= UTF8PROC_CATEGORY_PC && category <= UTF8PROC_CATEGORY_PO) {
    return !in_ranges(kHfNotPunctuation, c);
  }
  return in_ranges(kHfExtraPunctuation, c);
}

bool is_ascii_punctuation(unsigned char b) {
  return (b >= 33 && b <= 47) || (b >= 58 && b <= 64) || (b >= 91 && b <= 96) ||
         (b >= 123 && b <= 126);
}

// The CJK ranges of HF's handle_chinese_chars (which differ slightly from Google BERT's).
bool is_chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Rust's char::to_lowercase for one non-ASCII code point other than U+0130.
char32_t lowercase_of(char32_t c) {
  const auto* begin = std::begin(kHfExtraLowercase);
  const auto* end = std::end(kHfExtraLowercase);
  const auto* it = std::lower_bound(begin, end, c, [](const LowercasePair& p, char32_t x) {
    return p.from < x;
  });
  if (it != end && it->from == c) return it->to;
  return char32_t(utf8proc_tolower(utf8proc_int32_t(c)));
}

// Regex \w as the regex crate sees it (letters, marks, digits, connector punctuation, joiners);
// used only for added tokens with single_word.
bool is_word_char(char32_t c) {
  if (c == 0x200C || c == 0x200D) return true;
  int category = category_of(c);
  return (category >= UTF8PROC_CATEGORY_LU && category <= UTF8PROC_CATEGORY_ND) ||
         category == UTF8PROC_CATEGORY_NL || category == UTF8PROC_CATEGORY_PC;
}

char32_t last_char(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + i);
  return decode_utf8(p);
}

char32_t first_char(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  return decode_utf8(p);
}

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

uint64_t hash_bytes(const char* data, size_t size) {
  uint64_t h = kFnvOffset;
  for (size_t i = 0; i < size; ++i) h = (h ^ static_cast<unsigned char>(data[i])) * kFnvPrime;
  return h;
}

// Open-addressing hash table from token bytes to id, looked up by string_view with a hash the
// caller computed (WordPiece hashes all prefixes of a word in one pass).
class PieceTable {
 public:
  void build(const std::vector<std::pair<std::string_view, int32_t>>& entries) {
    size_t capacity = 16;
    while (capacity < entries.size() * 2) capacity *= 2;
    slots_.assign(capacity, Slot{});
    bits_ = 0;
    while ((size_t(1) << bits_) < capacity) ++bits_;
    max_key_length_ = 0;
    for (const auto& [key, id] : entries) {
      Slot slot{hash_bytes(key.data(), key.size()), uint32_t(keys_.size()), uint32_t(key.size()),
                id};
      keys_.append(key);
      max_key_length_ = std::max(max_key_length_, key.size());
      size_t index = home(slot.hash);
      while (slots_[index].id >= 0) index = (index + 1) & (capacity - 1);
      slots_[index] = slot;
    }
  }

  int32_t find(std::string_view key, uint64_t hash) const {
    const size_t mask = slots_.size() - 1;
    for (size_t index = home(hash);; index = (index + 1) & mask) {
      const Slot& slot = slots_[index];
      if (slot.id < 0) return -1;
      if (slot.hash == hash && slot.length == key.size() &&
          std::memcmp(keys_.data() + slot.offset, key.data(), key.size()) == 0) {
        return slot.id;
      }
    }
  }
  int32_t find(std::string_view key) const { return find(key, hash_bytes(key.data(), key.size())); }
  size_t max_key_length() const { return max_key_length_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0;
    uint32_t length = 0;
    int32_t id = -1;
  };
  size_t home(uint64_t hash) const { return (hash * 0x9E3779B97F4A7C15ull) >> (64 - bits_); }

  std::vector<Slot> slots_;
  std::string keys_;
  unsigned bits_ = 4;
  size_t max_key_length_ = 0;
};

// Added tokens matched in one kind of text (raw or normalized).
struct AddedPatterns {
  std::vector<AddedToken> tokens;  // content = the pattern to find
  std::array<bool, 256> first_byte{};

  void add(AddedToken token) {
    if (token.content.empty()) return;
    first_byte[static_cast<unsigned char>(token.content[0])] = true;
    tokens.push_back(std::move(token));
  }
  bool empty() const { return tokens.empty(); }
};

enum class CharClass : uint8_t { kWord, kSpace, kPunctuation };


}  // namespace

std::vector<TemplatePiece> bert_single_template(int32_t cls_id, int32_t sep_id) {
  using Kind = TemplatePiece::Kind;
  return {{Kind::kSpecial, {cls_id}, 0}, {Kind::kSequenceA, {}, 0}, {Kind::kSpecial, {sep_id}, 0}};
}

std::vector<TemplatePiece> bert_pair_template(int32_t cls_id, int32_t sep_id) {
  using Kind = TemplatePiece::Kind;
  return {{Kind::kSpecial, {cls_id}, 0},
          {Kind::kSequenceA, {}, 0},
          {Kind::kSpecial, {sep_id}, 0},
          {Kind::kSequenceB, {}, 1},
          {Kind::kSpecial, {sep_id}, 1}};
}

void truncate_longest_first(std::vector<int32_t>& a, std::vector<int32_t>* b, size_t max_tokens) {
  // Mirrors tokenizers' truncate_encodings (strategy longest_first, stride 0, direction right).
  if (max_tokens == 0) {
    a.clear();
    if (b) b->clear();
    return;
  }
  const size_t total = a.size() + (b ? b->size() : 0);
  if (total <= max_tokens) return;
  if (!b) {
    a.resize(max_tokens);
    return;
  }
  size_t n1 = a.size(), n2 = b->size();
  const bool swapped = n1 > n2;  // n1 is the shorter one from here on
  if (swapped) std::swap(n1, n2);
  n2 = n1 > max_tokens ? n1 : std::max(n1, max_tokens - n1);
  if (n1 + n2 > max_tokens) {
    n1 = max_tokens / 2;
    n2 = n1 + max_tokens % 2;
  }
  if (swapped) std::swap(n1, n2);
  if (a.size() > n1) a.resize(n1);
  if (b->size() > n2) b->resize(n2);
}

struct WordPieceTokenizer::Impl {
  WordPieceConfig config;
  std::string source;
  PieceTable word_starts;     // every vocab token, for the first piece of a word
  PieceTable continuations;   // tokens with the continuation prefix, keyed without it
  std::vector<std::string> id_to_token;  // "" where an id has no token
  std::vector<bool> id_used;
  std::unordered_map<std::string, int32_t> extra_token_ids;  // added tokens outside the vocab
  int32_t unk_id = 0;
  int32_t pad_id = 0;
  bool strip_accents = true;
  std::array<int16_t, 128> ascii_normalized{};  // byte the normalizer emits, -1 = dropped
  std::array<CharClass, 128> ascii_class{};
  AddedPatterns raw_patterns;
  AddedPatterns normalized_patterns;

  void normalize_into(std::string_view text, std::string& out) const;
  void normalize_char(char32_t c, std::string& out) const;
  void strip_and_lowercase(char32_t c, std::string& out) const;
  void lowercase_into(char32_t c, std::string& out) const;
  template <typename OnWord>
  void pre_tokenize(std::string_view normalized, OnWord&& on_word) const;
  void wordpiece(std::string_view word, std::vector<int32_t>& ids) const;
  template <typename OnPiece>
  void split_added(std::string_view text, const AddedPatterns& patterns, OnPiece&& on_piece) const;
  void encode_sequence(std::string_view text, std::vector<int32_t>& ids) const;
};

// ---- normalizer ----------------------------------------------------------------------------

void WordPieceTokenizer::Impl::normalize_into(std::string_view text, std::string& out) const {
  out.clear();
  out.reserve(text.size() + text.size() / 4 + 8);
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    if (*p < 0x80) {
      int16_t emitted = ascii_normalized[*p++];
      if (emitted >= 0) out.push_back(char(emitted));
      continue;
    }
    normalize_char(decode_utf8(p), out);
  }
}

// One non-ASCII code point through clean_text, handle_chinese_chars, strip_accents, lowercase.
// HF runs each step over the whole string; every step maps code points independently, so running
// them per code point gives the same text, except that NFD also puts runs of combining marks
// (canonical combining class > 0) in canonical order. That is not done here: with accents stripped
// only marks that tokenizers does not count as Mn could survive in a different order, and no token
// of bert-base-uncased holds any character with a nonzero class, so its ids cannot differ.
void WordPieceTokenizer::Impl::normalize_char(char32_t c, std::string& out) const {
  const BertNormalizerOptions& options = config.normalizer;
  if (!config.has_normalizer) {
    append_utf8(out, c);
    return;
  }
  if (options.clean_text) {
    if (c == 0xFFFD || is_control(c)) return;
    if (is_whitespace(c)) {
      out.push_back(' ');
      return;
    }
  }
  if (options.handle_chinese_chars && is_chinese_char(c)) {
    out.push_back(' ');
    strip_and_lowercase(c, out);
    out.push_back(' ');
    return;
  }
  strip_and_lowercase(c, out);
}

void WordPieceTokenizer::Impl::strip_and_lowercase(char32_t c, std::string& out) const {
  if (!strip_accents) {
    lowercase_into(c, out);
    return;
  }
  utf8proc_int32_t parts[16];
  utf8proc_ssize_t count = 1;
  parts[0] = utf8proc_int32_t(c);
  if (!in_ranges(kHfNotDecomposed, c)) {
    int boundclass = 0;
    count = utf8proc_decompose_char(utf8proc_int32_t(c), parts, 16, UTF8PROC_DECOMPOSE, &boundclass);
    if (count < 1 || count > 16) {  // cannot happen for canonical decompositions; keep c whole
      count = 1;
      parts[0] = utf8proc_int32_t(c);
    }
  }
  for (utf8proc_ssize_t i = 0; i < count; ++i) {
    char32_t part = char32_t(parts[i]);
    if (part >= 0x80 && is_nonspacing_mark(part)) continue;
    lowercase_into(part, out);
  }
}

void WordPieceTokenizer::Impl::lowercase_into(char32_t c, std::string& out) const {
  if (c < 0x80) {
    char b = char(c);
    if (config.normalizer.lowercase && b >= 'A' && b <= 'Z') b = char(b - 'A' + 'a');
    out.push_back(b);
    return;
  }
  if (!config.normalizer.lowercase) {
    append_utf8(out, c);
  } else if (c == 0x130) {  // the one unconditional multi-character lowercase mapping
    out.append("i\xCC\x87");
  } else {
    append_utf8(out, lowercase_of(c));
  }
}

// ---- pre-tokenizer and WordPiece -----------------------------------------------------------

template <typename OnWord>
void WordPieceTokenizer::Impl::pre_tokenize(std::string_view s, OnWord&& on_word) const {
  const auto* begin = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = begin + s.size();
  const unsigned char* word_begin = nullptr;
  for (const unsigned char* p = begin; p < end;) {
    const unsigned char* char_begin = p;
    CharClass cls;
    if (*p < 0x80) {
      cls = ascii_class[*p++];
    } else {
      char32_t c = decode_utf8(p);
      cls = is_whitespace(c) ? CharClass::kSpace
                             : (is_punctuation(c) ? CharClass::kPunctuation : CharClass::kWord);
    }
    if (cls == CharClass::kWord) {
      if (!word_begin) word_begin = char_begin;
      continue;
    }
    if (word_begin) {
      on_word(std::string_view(reinterpret_cast<const char*>(word_begin), char_begin - word_begin));
      word_begin = nullptr;
    }
    if (cls == CharClass::kPunctuation) {
      on_word(std::string_view(reinterpret_cast<const char*>(char_begin), p - char_begin));
    }
  }
  if (word_begin) {
    on_word(std::string_view(reinterpret_cast<const char*>(word_begin), end - word_begin));
  }
}

void WordPieceTokenizer::Impl::wordpiece(std::string_view word, std::vector<int32_t>& ids) const {
  const size_t n = word.size();
  size_t chars = 0;
  for (char b : word) chars += (static_cast<unsigned char>(b) & 0xC0) != 0x80;
  if (chars > size_t(std::max(config.max_input_chars_per_word, 0))) {
    ids.push_back(unk_id);
    return;
  }
  const size_t first_piece = ids.size();
  constexpr size_t kHashedPrefixes = 64;
  std::array<uint64_t, kHashedPrefixes + 1> prefix_hash;
  size_t start = 0;
  while (start < n) {
    const PieceTable& table = start == 0 ? word_starts : continuations;
    const size_t longest = std::min(n - start, table.max_key_length());
    // prefix_hash[k] = hash of word[start, start + k), all in one pass.
    const size_t hashed = std::min(longest, kHashedPrefixes);
    uint64_t h = kFnvOffset;
    for (size_t k = 0; k < hashed; ++k) {
      h = (h ^ static_cast<unsigned char>(word[start + k])) * kFnvPrime;
      prefix_hash[k + 1] = h;
    }
    int32_t found = -1;
    size_t length = longest;
    for (; length > 0; --length) {
      const size_t stop = start + length;
      if (stop < n && (static_cast<unsigned char>(word[stop]) & 0xC0) == 0x80) continue;
      std::string_view piece = word.substr(start, length);
      found = length <= kHashedPrefixes ? table.find(piece, prefix_hash[length]) : table.find(piece);
      if (found >= 0) break;
    }
    if (found < 0) {  // some part of the word matches nothing: the whole word is unknown
      ids.resize(first_piece);
      ids.push_back(unk_id);
      return;
    }
    ids.push_back(found);
    start += length;
  }
}

// Splits `text` around added tokens the way HF's AddedVocabulary::find_matches does (leftmost-
// longest, non-overlapping), calling on_piece(piece, id) with id -1 for text between matches.
template <typename OnPiece>
void WordPieceTokenizer::Impl::split_added(std::string_view text, const AddedPatterns& patterns,
                                           OnPiece&& on_piece) const {
  if (patterns.empty()) {
    on_piece(text, -1);
    return;
  }
  const size_t n = text.size();
  size_t piece_begin = 0;
  size_t i = 0;
  while (i < n) {
    if (!patterns.first_byte[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    const AddedToken* best = nullptr;
    for (const AddedToken& token : patterns.tokens) {
      if (token.content.size() <= n - i && (!best || token.content.size() > best->content.size()) &&
          text.compare(i, token.content.size(), token.content) == 0) {
        best = &token;
      }
    }
    if (!best) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + best->content.size();
    i = stop;
    if (best->single_word) {
      bool space_before = start == 0 || !is_word_char(last_char(text.substr(0, start)));
      bool space_after = stop == n || !is_word_char(first_char(text.substr(stop)));
      if (!space_before || !space_after) continue;
    }
    if (best->lstrip) {
      size_t new_start = start;
      while (new_start > piece_begin) {
        size_t prev = new_start - 1;
        while (prev > 0 && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
        if (!is_whitespace(first_char(text.substr(prev)))) break;
        new_start = prev;
      }
      start = new_start;
    }
    if (best->rstrip) {
      while (stop < n) {
        const auto* p = reinterpret_cast<const unsigned char*>(text.data() + stop);
        const auto* q = p;
        if (!is_whitespace(decode_utf8(q))) break;
        stop += size_t(q - p);
      }
      i = stop;
    }
    if (piece_begin < start) on_piece(text.substr(piece_begin, start - piece_begin), -1);
    on_piece(text.substr(start, stop - start), best->id);
    piece_begin = stop;
  }
  if (piece_begin < n || n == 0) on_piece(text.substr(piece_begin), -1);
}

void WordPieceTokenizer::Impl::encode_sequence(std::string_view text,
                                               std::vector<int32_t>& ids) const {
  std::string normalized;
  auto words_to_ids = [&](std::string_view piece, int32_t id) {
    if (id >= 0) {
      ids.push_back(id);
      return;
    }
    pre_tokenize(piece, [&](std::string_view word) { wordpiece(word, ids); });
  };
  split_added(text, raw_patterns, [&](std::string_view piece, int32_t id) {
    if (id >= 0) {
      ids.push_back(id);
      return;
    }
    normalize_into(piece, normalized);
    split_added(normalized, normalized_patterns, words_to_ids);
  });
}

// ---- construction ----------------------------------------------------------------------------

WordPieceTokenizer::WordPieceTokenizer(WordPieceConfig config, std::string source)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.config = std::move(config);
  m.source = std::move(source);
  WordPieceConfig& c = m.config;
  if (c.vocab.empty()) fail(m.source, ": the vocabulary is empty");
  if (c.continuing_subword_prefix.empty()) {
    fail(m.source, ": continuing_subword_prefix must not be empty");
  }

  int32_t max_id = -1;
  std::string_view max_id_token;
  for (const auto& [token, id] : c.vocab) {
    if (id < 0) fail(m.source, ": token \"", token, "\" has negative id ", id);
    if (id > max_id) max_id = id, max_id_token = token;
  }
  for (const AddedToken& token : c.added_tokens) {
    if (token.id < 0) fail(m.source, ": added token \"", token.content, "\" has negative id ", token.id);
    if (token.id > max_id) max_id = token.id, max_id_token = token.content;
  }
  check_token_ids_dense(max_id, max_id_token, c.vocab.size() + c.added_tokens.size(), m.source);
  m.id_to_token.assign(size_t(max_id) + 1, std::string());
  m.id_used.assign(size_t(max_id) + 1, false);

  std::vector<std::pair<std::string_view, int32_t>> starts, continuations;
  starts.reserve(c.vocab.size());
  std::unordered_map<std::string_view, int32_t> seen;
  seen.reserve(c.vocab.size());
  for (const auto& [token, id] : c.vocab) {
    check_utf8(token, m.source + ": vocabulary token with id " + std::to_string(id));
    if (auto [it, inserted] = seen.emplace(token, id); !inserted) {
      fail(m.source, ": token \"", token, "\" appears twice (ids ", it->second, " and ", id, ")");
    }
    if (m.id_used[id]) {
      fail(m.source, ": id ", id, " is used by both \"", m.id_to_token[id], "\" and \"", token, "\"");
    }
    m.id_used[id] = true;
    m.id_to_token[id] = token;
    starts.emplace_back(token, id);
    std::string_view view = token;
    if (view.size() > c.continuing_subword_prefix.size() &&
        view.substr(0, c.continuing_subword_prefix.size()) == c.continuing_subword_prefix) {
      continuations.emplace_back(view.substr(c.continuing_subword_prefix.size()), id);
    }
  }
  m.word_starts.build(starts);
  m.continuations.build(continuations);

  auto unk = m.word_starts.find(c.unk_token);
  if (unk < 0) fail(m.source, ": unk_token \"", c.unk_token, "\" is not in the vocabulary");
  m.unk_id = unk;

  for (const AddedToken& token : c.added_tokens) {
    check_utf8(token.content, m.source + ": added token with id " + std::to_string(token.id));
    if (m.id_used[token.id] && m.id_to_token[token.id] != token.content) {
      fail(m.source, ": added token \"", token.content, "\" has id ", token.id, ", which is \"",
           m.id_to_token[token.id], "\" in the vocabulary");
    }
    if (!m.id_used[token.id]) {
      m.id_used[token.id] = true;
      m.id_to_token[token.id] = token.content;
      m.extra_token_ids[token.content] = token.id;
    }
  }
  for (const auto* templ : {&c.single_template, &c.pair_template}) {
    for (const TemplatePiece& piece : *templ) {
      for (int32_t id : piece.ids) {
        if (id < 0 || id > max_id || !m.id_used[id]) {
          fail(m.source, ": post-processor special token id ", id, " is not in the vocabulary");
        }
      }
    }
  }
  auto pad = token_to_id(c.pad_token);
  m.pad_id = pad ? *pad : 0;

  m.strip_accents = c.has_normalizer && c.normalizer.strip_accents.value_or(c.normalizer.lowercase);

  for (int b = 0; b < 128; ++b) {
    int16_t emitted = int16_t(b);
    if (c.has_normalizer) {
      if (c.normalizer.clean_text) {
        bool control = b < 0x20 || b == 0x7F;
        if (b == '\t' || b == '\n' || b == '\r') emitted = ' ';
        else if (control) emitted = -1;  // includes NUL and \v, \f (Cc before whitespace in HF)
      }
      if (c.normalizer.lowercase && b >= 'A' && b <= 'Z') emitted = int16_t(b - 'A' + 'a');
    }
    m.ascii_normalized[b] = emitted;
    bool space = b == ' ' || (b >= 0x09 && b <= 0x0D);
    m.ascii_class[b] = space ? CharClass::kSpace
                             : (is_ascii_punctuation((unsigned char)b) ? CharClass::kPunctuation
                                                                       : CharClass::kWord);
  }

  for (const AddedToken& token : c.added_tokens) {
    if (!token.normalized) {
      m.raw_patterns.add(token);
    } else {
      AddedToken pattern = token;
      m.normalize_into(token.content, pattern.content);
      m.normalized_patterns.add(std::move(pattern));
    }
  }
}

WordPieceTokenizer::~WordPieceTokenizer() = default;

const WordPieceConfig& WordPieceTokenizer::config() const { return impl_->config; }

std::string WordPieceTokenizer::normalize(std::string_view text) const {
  check_utf8(text, "text");
  std::string out;
  impl_->normalize_into(text, out);
  return out;
}

std::vector<std::string> WordPieceTokenizer::pre_tokenize(std::string_view normalized) const {
  check_utf8(normalized, "text");
  std::vector<std::string> words;
  impl_->pre_tokenize(normalized, [&](std::string_view word) { words.emplace_back(word); });
  return words;
}

void WordPieceTokenizer::append_wordpiece_ids(std::string_view word,
                                              std::vector<int32_t>& ids) const {
  check_utf8(word, "word");
  impl_->wordpiece(word, ids);
}

std::vector<int32_t> WordPieceTokenizer::encode_sequence(std::string_view text) const {
  check_utf8(text, "text");
  std::vector<int32_t> ids;
  impl_->encode_sequence(text, ids);
  return ids;
}

Encoding WordPieceTokenizer::encode(std::string_view text,
                                    std::optional<std::string_view> text_pair,
                                    int max_length) const {
  check_utf8(text, "text");
  if (text_pair) check_utf8(*text_pair, "text pair");
  std::vector<int32_t> a, b;
  a.reserve(text.size() / 4 + 4);
  impl_->encode_sequence(text, a);
  if (text_pair) impl_->encode_sequence(*text_pair, b);

  const auto& templ = text_pair ? impl_->config.pair_template : impl_->config.single_template;
  if (max_length > 0) {
    size_t special = 0;
    for (const TemplatePiece& piece : templ) special += piece.ids.size();
    if (size_t(max_length) < special) {
      fail("max_length ", max_length, " is less than the ", special, " special tokens ",
           text_pair ? "a text pair" : "a text", " needs");
    }
    truncate_longest_first(a, text_pair ? &b : nullptr, size_t(max_length) - special);
  }

  Encoding encoding;
  size_t total = a.size() + b.size() + 4;
  encoding.input_ids.reserve(total);
  encoding.token_type_ids.reserve(total);
  auto append = [&](const std::vector<int32_t>& ids, int32_t type_id) {
    encoding.input_ids.insert(encoding.input_ids.end(), ids.begin(), ids.end());
    encoding.token_type_ids.insert(encoding.token_type_ids.end(), ids.size(), type_id);
  };
  for (const TemplatePiece& piece : templ) {
    switch (piece.kind) {
      case TemplatePiece::Kind::kSpecial: append(piece.ids, piece.type_id); break;
      case TemplatePiece::Kind::kSequenceA: append(a, piece.type_id); break;
      case TemplatePiece::Kind::kSequenceB:
        if (text_pair) append(b, piece.type_id);
        break;
    }
  }
  encoding.attention_mask.assign(encoding.input_ids.size(), 1);
  return encoding;
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> tokens;
  for (int32_t id : encode_sequence(text)) tokens.push_back(impl_->id_to_token[id]);
  return tokens;
}

std::string WordPieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  // The replacements of tokenizers' decoders::wordpiece::cleanup, in its order.
  static const std::pair<std::string_view, std::string_view> kCleanup[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},          {" ,", ","},     {" ' ", "'"},   {" n't", "n't"},
      {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  const std::string& prefix = impl_->config.continuing_subword_prefix;
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || size_t(id) >= impl_->id_used.size() || !impl_->id_used[id]) {
      id_to_token(id);  // throws: the id is not in the vocabulary
    }
    const std::string& stored = impl_->id_to_token[size_t(id)];
    std::string token;
    if (i == 0) {
      token = stored;
    } else if (stored.compare(0, prefix.size(), prefix) == 0) {
      token = stored.substr(prefix.size());
    } else {
      token = " ";
      token += stored;
    }
    for (const auto& [from, to] : kCleanup) {
      for (size_t at = token.find(from); at != std::string::npos; at = token.find(from, at + to.size())) {
        token.replace(at, from.size(), to);
      }
    }
    out += token;
  }
  return out;
}

int32_t WordPieceTokenizer::vocab_size() const { return int32_t(impl_->id_to_token.size()); }

int32_t WordPieceTokenizer::pad_id() const { return impl_->pad_id; }

std::optional<int32_t> WordPieceTokenizer::token_to_id(std::string_view token) const {
  int32_t id = impl_->word_starts.find(token);
  if (id >= 0) return id;
  auto it = impl_->extra_token_ids.find(std::string(token));
  if (it != impl_->extra_token_ids.end()) return it->second;
  return std::nullopt;
}

std::string WordPieceTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->id_to_token.size() || !impl_->id_used[id]) {
    fail("token id ", id, " is not in the vocabulary of ", impl_->source, " (", vocab_size(),
         " ids)");
  }
  return impl_->id_to_token[id];
}

void WordPieceTokenizer::save(const std::filesystem::path& dir, int64_t model_max_length) const {
  const WordPieceConfig& c = impl_->config;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) fail("cannot create tokenizer folder ", dir.string(), ": ", error.message());

  std::string vocab_txt;
  for (size_t id = 0; id < impl_->id_to_token.size(); ++id) {
    if (!impl_->id_used[id]) {
      fail("cannot save ", (dir / "vocab.txt").string(), ": id ", id,
           " has no token (vocab.txt needs ids 0..N-1 without gaps)");
    }
    vocab_txt += impl_->id_to_token[id];
    vocab_txt += '\n';
  }
  std::string tokenizer_json =
      c.source_tokenizer_json.empty() ? generate_tokenizer_json(c, *this) : c.source_tokenizer_json;
  // The file this tokenizer came with is written back as it was, completed with what Hugging Face
  // needs from it (the special tokens, the longest input) where it lacks them; else one is made.
  std::string tokenizer_config = c.tokenizer_config_json;
  nlohmann::ordered_json j = tokenizer_config.empty() ? nlohmann::ordered_json::object()
                                                      : nlohmann::ordered_json::parse(tokenizer_config);
  const size_t keys_before = j.size();
  if (tokenizer_config.empty()) {
    j["tokenizer_class"] = "BertTokenizer";
    j["do_lower_case"] = c.has_normalizer && c.normalizer.lowercase;
    j["tokenize_chinese_chars"] = c.has_normalizer && c.normalizer.handle_chinese_chars;
    j["strip_accents"] = c.normalizer.strip_accents ? nlohmann::ordered_json(*c.normalizer.strip_accents)
                                                    : nlohmann::ordered_json(nullptr);
  }
  if (!j.contains("unk_token")) j["unk_token"] = c.unk_token;
  if (!j.contains("pad_token")) j["pad_token"] = c.pad_token;
  for (const auto& [key, name] : {std::pair{"cls_token", "[CLS]"}, {"sep_token", "[SEP]"}, {"mask_token", "[MASK]"}})
    if (!j.contains(key) && token_to_id(name)) j[key] = name;
  if (!j.contains("model_max_length") && model_max_length > 0) j["model_max_length"] = model_max_length;
  if (tokenizer_config.empty() || j.size() != keys_before) tokenizer_config = j.dump(2) + "\n";
  io::write_file_atomic(dir / "vocab.txt", vocab_txt);
  io::write_file_atomic(dir / "tokenizer.json", tokenizer_json);
  io::write_file_atomic(dir / "tokenizer_config.json", tokenizer_config);
}

}  // namespace ww::text
