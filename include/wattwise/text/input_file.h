#pragma once
// Text examples read from a user's file, for `wattwise tokenize` and data loading.
//
// The format follows the file name:
//   .jsonl / .json  JSON Lines: one object per line with a string "text" and optionally a string
//                   "text_pair" (null or absent: single text); other members are ignored; blank
//                   lines are skipped.
//   .tsv            GLUE-style tab-separated values without quoting: a header row naming the
//                   columns, then one example per row. Single texts come from a `sentence` column;
//                   pairs from `sentence1`+`sentence2`, `question`+`sentence` or
//                   `question1`+`question2` (first match wins), unless TextColumns names them.
//                   Blank lines are skipped.
//   anything else   plain text, one example per line. Every line is an example, empty lines too,
//                   so output line N belongs to input line N (a final newline ends the last line;
//                   it does not start an empty one).
// A trailing "\r" is removed from every line and a UTF-8 byte order mark at the start of the file
// is skipped. Invalid UTF-8, malformed JSON, a missing field or column: ww::Error naming file:line.
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ww::text {

struct TextExample {
  std::string text;
  std::optional<std::string> text_pair;
  size_t line = 0;  // 1-based line of the input file the example came from
};

// Which fields (JSONL) or columns (TSV) hold the text and the second text of a pair; empty: the
// defaults above (JSONL "text" and "text_pair"; TSV by the GLUE names). A plain-text file has no
// columns to choose (naming one is an error).
struct TextColumns {
  std::string text;
  std::string text_pair;
  bool any() const { return !text.empty() || !text_pair.empty(); }
};

// `path` "-": standard input, its format told by its first line (a JSON object: JSON Lines; a tab:
// TSV; else plain text), "<stdin>" in errors.
std::vector<TextExample> read_text_examples(const std::filesystem::path& path, const TextColumns& columns = {});
// The whole of standard input, and the file extension its first line suggests (".jsonl", ".tsv",
// ".csv" when `csv_possible` and the first line has a comma, else ".txt").
std::pair<std::string, std::string> read_stdin_with_format(bool csv_possible);

}  // namespace ww::text
