#pragma once
// Shared pieces of the data set readers (dataset*.cpp). Readers produce RawDatasets whose labels
// are still text; dataset.cpp resolves labels, cleans text and carves missing splits.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wattwise/text/dataset.h"

namespace ww::text::detail {

struct RawExample {
  std::string text;
  std::optional<std::string> text_pair;
  std::string label;  // as written in the file (a class name, an index, or a number)
  std::string source;
};

struct RawDataset {
  std::string name, format;
  std::map<std::string, std::vector<RawExample>> splits;
  // Fixed by the format (GLUE, IMDB); empty: inferred from the data (generic files).
  std::vector<std::string> label_names;
  bool regression = false;
  std::vector<std::string> notes;
};

// Whole file as bytes; errors name the file.
std::string read_whole_file(const std::filesystem::path& path);

// Offset of the first byte that is not part of valid UTF-8 (no overlongs, surrogates or code points
// past U+10FFFF), or npos.
size_t find_invalid_utf8(std::string_view data);
// Throws "<where>:<line>: invalid UTF-8 ..." when `data` is not valid UTF-8. first_line is the line
// number of data's first byte.
void check_utf8(std::string_view data, const std::string& where, int64_t first_line = 1);
// Same, for a text that is one example (an archive member): the error names `where` only.
void check_utf8_text(std::string_view data, const std::string& where);

std::string_view strip_utf8_bom(std::string_view data);

struct Line {
  std::string_view text;  // without the line break (\n or \r\n)
  int64_t number;         // 1-based
};
std::vector<Line> split_lines(std::string_view data);
std::vector<std::string_view> split_tabs(std::string_view line);

struct CsvRecord {
  std::vector<std::string> fields;
  int64_t line;  // where the record starts
};
// RFC 4180: comma separated, fields optionally in double quotes, "" is a quote inside quotes, line
// breaks allowed inside quotes. Blank lines are skipped.
std::vector<CsvRecord> parse_csv(std::string_view data, const std::string& file);

// Readers. Each throws ww::Error naming the file (and line or member) at fault.
bool is_imdb_folder(const std::filesystem::path& dir, std::filesystem::path* root);
RawDataset read_imdb_folder(const std::filesystem::path& root);
RawDataset read_imdb_archive(const std::filesystem::path& archive);

// The GLUE task a folder holds ("sst2", ...), by folder name or train.tsv's header; nullopt if none.
std::optional<std::string> detect_glue_task(const std::filesystem::path& dir);
RawDataset read_glue_folder(const std::filesystem::path& dir, const std::string& task);

// A generic CSV/TSV/JSONL file (format from the extension).
std::vector<RawExample> read_table_file(const std::filesystem::path& file, const DataOptions& options);
std::string table_format(const std::filesystem::path& file);  // "csv", "tsv", "jsonl" or ""

}  // namespace ww::text::detail
