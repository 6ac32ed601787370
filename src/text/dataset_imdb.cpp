// IMDB (Maas et al. 2011) in its distributed layout: aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt,
// from the extracted folder or straight from aclImdb.tar.gz. The archive is streamed through zlib
// and parsed as tar (ustar, GNU long names, pax path records) without extracting anything.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "text/dataset_internal.h"
#include "wattwise/core/error.h"

namespace ww::text::detail {

namespace fs = std::filesystem;

namespace {

// Where an IMDB review lives: its split, label and numeric id (for a stable order).
struct ReviewPath {
  std::string split;  // "train" or "test"
  int label;          // 0 = neg, 1 = pos
  int64_t id;
};

// Recognises ".../<train|test>/<neg|pos>/<id>_<rating>.txt"; anything else (unsup, vocab, feature
// files, urls) is not a labelled review.
std::optional<ReviewPath> parse_review_path(std::string_view path) {
  auto cut_last = [](std::string_view& p) {
    size_t slash = p.rfind('/');
    std::string_view last = slash == std::string_view::npos ? p : p.substr(slash + 1);
    p = slash == std::string_view::npos ? std::string_view() : p.substr(0, slash);
    return last;
  };
  std::string_view rest = path;
  std::string_view file = cut_last(rest);
  std::string_view polarity = cut_last(rest);
  std::string_view split = cut_last(rest);
  if (file.size() < 5 || file.substr(file.size() - 4) != ".txt") return std::nullopt;
  if (polarity != "neg" && polarity != "pos") return std::nullopt;
  if (split != "train" && split != "test") return std::nullopt;
  int64_t id = 0;
  size_t underscore = file.find('_');
  std::string_view digits = file.substr(0, underscore == std::string_view::npos ? 0 : underscore);
  if (digits.empty()) id = -1;
  for (char c : digits) {
    if (c < '0' || c > '9') {
      id = -1;
      break;
    }
    id = id * 10 + (c - '0');
  }
  return ReviewPath{std::string(split), polarity == "pos" ? 1 : 0, id};
}

struct Review {
  ReviewPath where;
  std::string member;  // for the tie-break and messages
  RawExample example;
};

RawDataset assemble(std::vector<Review>& reviews, const std::string& origin) {
  if (reviews.empty())
    fail(origin, ": no reviews found: expected aclImdb/{train,test}/{neg,pos}/*.txt");
  std::sort(reviews.begin(), reviews.end(), [](const Review& a, const Review& b) {
    if (a.where.label != b.where.label) return a.where.label < b.where.label;
    if (a.where.id != b.where.id) return a.where.id < b.where.id;
    return a.member < b.member;
  });
  RawDataset raw;
  raw.name = "imdb";
  raw.format = "imdb";
  raw.label_names = {"neg", "pos"};
  for (Review& review : reviews)
    raw.splits[review.where.split].push_back(std::move(review.example));
  return raw;
}

// ---- tar over zlib -------------------------------------------------------------------------

class GzipReader {
 public:
  explicit GzipReader(const fs::path& path) : name_(path.string()) {
    file_ = gzopen(name_.c_str(), "rb");
    if (!file_) fail(name_, ": cannot open for reading");
    gzbuffer(file_, 1 << 20);
  }
  ~GzipReader() { gzclose(file_); }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  // Reads up to `size` bytes; returns how many were read (fewer only at the end of the data).
  size_t read(char* out, size_t size) {
    size_t total = 0;
    while (total < size) {
      unsigned chunk = unsigned(std::min<size_t>(size - total, 1u << 30));
      int got = gzread(file_, out + total, chunk);
      if (got < 0) {
        int code = 0;
        const char* message = gzerror(file_, &code);
        fail(name_, ": corrupt gzip data (", message ? message : "unknown zlib error", ")");
      }
      if (got == 0) {
        int code = Z_OK;
        gzerror(file_, &code);
        // zlib reports a gzip stream that stops early as Z_BUF_ERROR rather than as a failed read.
        if (code == Z_BUF_ERROR) fail(name_, ": truncated archive (the gzip data ends early)");
        break;
      }
      total += size_t(got);
    }
    return total;
  }
  void skip(uint64_t size) {
    std::array<char, 1 << 16> scratch;
    while (size > 0) {
      size_t chunk = size_t(std::min<uint64_t>(size, scratch.size()));
      if (read(scratch.data(), chunk) != chunk) fail(name_, ": truncated archive");
      size -= chunk;
    }
  }

 private:
  std::string name_;
  gzFile file_;
};

// Octal (NUL/space terminated) or GNU base-256 number field.
uint64_t tar_number(const char* field, size_t size, const std::string& where) {
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(field);
  if (bytes[0] & 0x80) {
    uint64_t value = bytes[0] & 0x7F;
    for (size_t i = 1; i < size; ++i) value = (value << 8) | bytes[i];
    return value;
  }
  uint64_t value = 0;
  size_t i = 0;
  while (i < size && field[i] == ' ') ++i;
  for (; i < size && field[i] >= '0' && field[i] <= '7'; ++i) value = value * 8 + (field[i] - '0');
  if (i < size && field[i] != '\0' && field[i] != ' ')
    fail(where, ": not a tar archive or corrupt header (bad number field)");
  return value;
}

std::string tar_string(const char* field, size_t size) {
  return std::string(field, strnlen(field, size));
}

// The "path" record of a pax extended header ("<len> path=<value>\n" records).
std::optional<std::string> pax_path(const std::string& records) {
  size_t pos = 0;
  std::optional<std::string> path;
  while (pos < records.size()) {
    size_t space = records.find(' ', pos);
    if (space == std::string::npos) break;
    size_t length = std::strtoull(records.c_str() + pos, nullptr, 10);
    if (length == 0 || pos + length > records.size()) break;
    std::string record = records.substr(space + 1, pos + length - space - 2);  // drop '\n'
    if (record.rfind("path=", 0) == 0) path = record.substr(5);
    pos += length;
  }
  return path;
}

}  // namespace

bool is_imdb_folder(const fs::path& dir, fs::path* root) {
  std::error_code ec;
  for (const fs::path& candidate : {dir, dir / "aclImdb"}) {
    if (fs::is_directory(candidate / "train" / "pos", ec) ||
        fs::is_directory(candidate / "test" / "pos", ec)) {
      if (root) *root = candidate;
      return true;
    }
  }
  return false;
}

RawDataset read_imdb_folder(const fs::path& root) {
  std::vector<Review> reviews;
  std::error_code ec;
  for (const char* split : {"train", "test"}) {
    for (const char* polarity : {"neg", "pos"}) {
      fs::path folder = root / split / polarity;
      if (!fs::is_directory(folder, ec)) continue;
      for (const fs::directory_entry& entry : fs::directory_iterator(folder)) {
        if (!entry.is_regular_file()) continue;
        std::string relative = std::string(split) + "/" + polarity + "/" +
                               entry.path().filename().string();
        std::optional<ReviewPath> where = parse_review_path(relative);
        if (!where) continue;
        Review review{*where, relative, {}};
        review.example.source = entry.path().string();
        review.example.text = read_whole_file(entry.path());
        check_utf8_text(review.example.text, review.example.source);
        review.example.label = where->label ? "pos" : "neg";
        reviews.push_back(std::move(review));
      }
    }
  }
  return assemble(reviews, root.string());
}

RawDataset read_imdb_archive(const fs::path& archive) {
  const std::string name = archive.string();
  GzipReader reader(archive);
  std::vector<Review> reviews;
  std::optional<std::string> long_name;  // from a GNU 'L' or pax 'x' entry, for the next member
  std::array<char, 512> header;
  uint64_t offset = 0;
  int zero_blocks = 0;
  while (true) {
    size_t got = reader.read(header.data(), header.size());
    if (got == 0 && offset == 0) fail(name, ": empty archive");
    if (got == 0) break;  // end of data at a member boundary: tolerate missing end blocks
    if (got != header.size())
      fail(name, ": truncated archive (tar header at byte ", offset, " is cut short)");
    std::string where = name + " (tar header at byte " + std::to_string(offset) + ")";
    offset += header.size();
    if (std::all_of(header.begin(), header.end(), [](char c) { return c == 0; })) {
      if (++zero_blocks == 2) break;
      continue;
    }
    zero_blocks = 0;

    uint64_t checksum = tar_number(&header[148], 8, where);
    uint64_t sum = 0;
    for (size_t i = 0; i < header.size(); ++i)
      sum += (i >= 148 && i < 156) ? uint8_t(' ') : uint8_t(header[i]);
    if (sum != checksum) fail(where, ": not a tar archive or corrupt header (checksum mismatch)");

    uint64_t size = tar_number(&header[124], 12, where);
    char type = header[156];
    uint64_t padded = (size + 511) / 512 * 512;

    if (type == 'L' || type == 'x') {  // the next member's full name
      std::string payload(size_t(size), '\0');
      if (reader.read(payload.data(), payload.size()) != payload.size())
        fail(where, ": truncated archive");
      reader.skip(padded - size);
      offset += padded;
      if (type == 'L') {
        long_name = tar_string(payload.data(), payload.size());
      } else if (std::optional<std::string> path = pax_path(payload)) {
        long_name = *path;
      }
      continue;
    }

    std::string member;
    if (long_name) {
      member = *long_name;
      long_name.reset();
    } else {
      member = tar_string(&header[0], 100);
      bool ustar = std::memcmp(&header[257], "ustar", 5) == 0;
      std::string prefix = ustar ? tar_string(&header[345], 155) : std::string();
      if (!prefix.empty()) member = prefix + "/" + member;
    }

    bool regular = type == '0' || type == '\0' || type == '7';
    std::optional<ReviewPath> review_path;
    if (regular) review_path = parse_review_path(member);
    if (!review_path) {
      reader.skip(padded);
      offset += padded;
      continue;
    }
    Review review{*review_path, member, {}};
    review.example.source = name + ":" + member;
    review.example.text.resize(size_t(size));
    if (reader.read(review.example.text.data(), size_t(size)) != size)
      fail(name, ": truncated archive (member ", member, " ends past the end of the data)");
    reader.skip(padded - size);
    offset += padded;
    check_utf8_text(review.example.text, review.example.source);
    review.example.label = review_path->label ? "pos" : "neg";
    reviews.push_back(std::move(review));
  }
  return assemble(reviews, name);
}

}  // namespace ww::text::detail
