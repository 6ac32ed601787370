#include "wattwise/text/input_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <tuple>

#include "wattwise/core/error.h"
#include "wattwise/text/utf8.h"

namespace ww::text {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) fail("input ", path.string(), " is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open input ", path.string(), ": ", std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) fail("cannot read input ", path.string());
  return buffer.str();
}

// Calls on_line(line_view, line_number) for every line; the last line only if it is not empty.
template <typename OnLine>
void for_each_line(const std::string& text, const std::string& file, OnLine&& on_line) {
  size_t begin = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) begin = 3;  // byte order mark
  size_t line = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    ++line;
    std::string_view view(text.data() + begin, end - begin);
    if (!view.empty() && view.back() == '\r') view.remove_suffix(1);
    if (auto problem = find_invalid_utf8(view)) {
      fail(file, ":", line, ": invalid UTF-8: ", problem->reason, " at byte ", problem->offset,
           " of the line");
    }
    on_line(view, line);
    begin = end + 1;
  }
}

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t'; });
}

std::vector<TextExample> read_jsonl(const std::string& text, const std::string& file, const TextColumns& columns) {
  const std::string text_key = columns.text.empty() ? "text" : columns.text;
  const std::string pair_key = columns.text_pair.empty() ? "text_pair" : columns.text_pair;
  std::vector<TextExample> examples;
  for_each_line(text, file, [&](std::string_view line, size_t number) {
    if (is_blank(line)) return;
    if (line.find_first_not_of(" \t") != std::string_view::npos &&
        line[line.find_first_not_of(" \t")] == '[') {
      fail(file, ":", number, ": expected one JSON object per line (JSON Lines), not a JSON array");
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number like 1e400
      fail(file, ":", number, ": invalid JSON: ", e.what());
    }
    if (!j.is_object()) {
      fail(file, ":", number, ": expected a JSON object with \"", text_key, "\" (one per line), not ",
           j.type_name());
    }
    auto field = j.find(text_key);
    if (field == j.end()) fail(file, ":", number, ": missing \"", text_key, "\"");
    if (!field->is_string())
      fail(file, ":", number, ": \"", text_key, "\" must be a string, not ", field->type_name());
    TextExample example{field->get<std::string>(), std::nullopt, number};
    auto pair = j.find(pair_key);
    if (!columns.text_pair.empty() && pair == j.end()) fail(file, ":", number, ": missing \"", pair_key, "\"");
    if (pair != j.end() && !pair->is_null()) {
      if (!pair->is_string()) {
        fail(file, ":", number, ": \"", pair_key, "\" must be a string or null, not ", pair->type_name());
      }
      example.text_pair = pair->get<std::string>();
    }
    examples.push_back(std::move(example));
  });
  return examples;
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t begin = 0;
  while (true) {
    size_t end = line.find('\t', begin);
    if (end == std::string_view::npos) {
      fields.push_back(line.substr(begin));
      return fields;
    }
    fields.push_back(line.substr(begin, end - begin));
    begin = end + 1;
  }
}

std::vector<TextExample> read_tsv(const std::string& text, const std::string& file, const TextColumns& chosen) {
  std::vector<TextExample> examples;
  bool have_header = false;
  size_t first = 0, second = 0, columns = 0;
  bool pairs = false;
  for_each_line(text, file, [&](std::string_view line, size_t number) {
    if (!have_header) {
      std::vector<std::string_view> names = split_tabs(line);
      auto column = [&](std::string_view name) -> std::optional<size_t> {
        auto it = std::find(names.begin(), names.end(), name);
        if (it == names.end()) return std::nullopt;
        return size_t(it - names.begin());
      };
      auto named = [&](const std::string& name) {
        if (std::optional<size_t> c = column(name)) return *c;
        std::string found;
        for (auto n : names) found += (found.empty() ? "" : ", ") + std::string(n);
        fail(file, ":", number, ": missing column '", name, "' (the header has: ", found, ")");
      };
      if (chosen.any()) {  // the columns the user named, nothing guessed
        first = named(chosen.text.empty() ? "sentence" : chosen.text);
        if (!chosen.text_pair.empty()) second = named(chosen.text_pair), pairs = true;
        columns = names.size();
        have_header = true;
        return;
      }
      const std::pair<const char*, const char*> pair_columns[] = {
          {"sentence1", "sentence2"}, {"question", "sentence"}, {"question1", "question2"}};
      for (const auto& [a, b] : pair_columns) {
        if (column(a) && column(b)) {
          first = *column(a);
          second = *column(b);
          pairs = true;
          break;
        }
      }
      if (!pairs) {
        if (!column("sentence")) {
          std::string found;
          for (auto name : names) found += (found.empty() ? "" : ", ") + std::string(name);
          fail(file, ":", number, ": the header names no text column: expected `sentence`, ",
               "`sentence1`+`sentence2`, `question`+`sentence` or `question1`+`question2`, found: ",
               found);
        }
        first = *column("sentence");
      }
      columns = names.size();
      have_header = true;
      return;
    }
    if (line.empty()) return;
    std::vector<std::string_view> fields = split_tabs(line);
    size_t needed = std::max(first, pairs ? second : first) + 1;
    if (fields.size() < needed) {
      fail(file, ":", number, ": expected ", columns, " tab-separated columns as in the header, found ",
           fields.size());
    }
    TextExample example{std::string(fields[first]), std::nullopt, number};
    if (pairs) example.text_pair = std::string(fields[second]);
    examples.push_back(std::move(example));
  });
  if (!have_header) fail(file, ": empty TSV file (expected a header row)");
  return examples;
}

std::vector<TextExample> read_plain(const std::string& text, const std::string& file) {
  std::vector<TextExample> examples;
  for_each_line(text, file, [&](std::string_view line, size_t number) {
    examples.push_back(TextExample{std::string(line), std::nullopt, number});
  });
  return examples;
}

}  // namespace

std::pair<std::string, std::string> read_stdin_with_format(bool csv_possible) {
  std::ostringstream buffer;
  buffer << std::cin.rdbuf();
  if (std::cin.bad()) fail("cannot read standard input");
  std::string text = buffer.str();
  size_t start = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  const std::string first_line = text.substr(start, text.find('\n', start) - start);
  const size_t first_char = first_line.find_first_not_of(" \t");
  std::string extension = ".txt";
  if (first_char != std::string::npos && first_line[first_char] == '{') extension = ".jsonl";
  else if (first_line.find('\t') != std::string::npos) extension = ".tsv";
  else if (csv_possible && first_line.find(',') != std::string::npos) extension = ".csv";
  return {std::move(text), extension};
}

std::vector<TextExample> read_text_examples(const std::filesystem::path& path, const TextColumns& columns) {
  std::string text, file = path.string(), extension = path.extension().string();
  if (path == "-") {
    std::tie(text, extension) = read_stdin_with_format(/*csv_possible=*/false);
    file = "<stdin>";
  } else {
    text = read_file(path);
  }
  if (extension == ".jsonl" || extension == ".json") return read_jsonl(text, file, columns);
  if (extension == ".tsv") return read_tsv(text, file, columns);
  if (columns.any())
    fail(file, ": plain text (one example per line) has no columns to choose; give a .jsonl or .tsv file");
  return read_plain(text, file);
}

}  // namespace ww::text
