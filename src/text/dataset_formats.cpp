// Readers for text tables: generic CSV/TSV/JSONL files and GLUE task folders, plus the byte-level
// helpers (UTF-8 validation, line and field splitting) every reader shares.
#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "text/dataset_internal.h"
#include "wattwise/core/error.h"
#include "wattwise/io/file.h"
#include "wattwise/text/utf8.h"

namespace ww::text::detail {

namespace fs = std::filesystem;

std::string read_whole_file(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) fail(path.string(), ": is a folder, expected a file");
  return io::read_file(path);
}

size_t find_invalid_utf8(std::string_view s) {
  std::optional<Utf8Problem> problem = text::find_invalid_utf8(s);
  return problem ? problem->offset : std::string_view::npos;
}

static std::string hex_byte(unsigned char b) {
  const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

void check_utf8(std::string_view data, const std::string& where, int64_t first_line) {
  size_t bad = find_invalid_utf8(data);
  if (bad == std::string_view::npos) return;
  int64_t line = first_line + std::count(data.begin(), data.begin() + bad, '\n');
  size_t line_start = data.rfind('\n', bad == 0 ? 0 : bad - 1);
  line_start = (line_start == std::string_view::npos || bad == 0) ? 0 : line_start + 1;
  fail(where, ":", line, ": invalid UTF-8 (byte ", hex_byte(static_cast<unsigned char>(data[bad])),
       " at byte ", bad - line_start + 1, " of the line); the file must be UTF-8 encoded");
}

void check_utf8_text(std::string_view data, const std::string& where) {
  size_t bad = find_invalid_utf8(data);
  if (bad == std::string_view::npos) return;
  fail(where, ": invalid UTF-8 (byte ", hex_byte(static_cast<unsigned char>(data[bad])),
       " at offset ", bad, "); the text must be UTF-8 encoded");
}

std::string_view strip_utf8_bom(std::string_view data) {
  if (data.size() >= 3 && data.substr(0, 3) == "\xEF\xBB\xBF") data.remove_prefix(3);
  return data;
}

std::vector<Line> split_lines(std::string_view data) {
  std::vector<Line> lines;
  int64_t number = 1;
  size_t start = 0;
  while (start < data.size()) {
    size_t end = data.find('\n', start);
    if (end == std::string_view::npos) end = data.size();
    std::string_view text = data.substr(start, end - start);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    lines.push_back({text, number});
    ++number;
    start = end + 1;
  }
  return lines;
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

static bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  });
}

std::vector<CsvRecord> parse_csv(std::string_view data, const std::string& file) {
  std::vector<CsvRecord> records;
  size_t i = 0;
  const size_t n = data.size();
  int64_t line = 1;
  while (i < n) {
    // A blank line is no record.
    if (data[i] == '\n' || (data[i] == '\r' && i + 1 < n && data[i + 1] == '\n')) {
      i += data[i] == '\r' ? 2 : 1;
      ++line;
      continue;
    }
    CsvRecord record;
    record.line = line;
    bool end_of_record = false;
    while (!end_of_record) {
      std::string field;
      if (i < n && data[i] == '"') {
        int64_t opened_at = line;
        ++i;
        while (true) {
          if (i >= n)
            fail(file, ":", opened_at, ": malformed CSV: quoted field is never closed");
          char c = data[i];
          if (c == '"') {
            if (i + 1 < n && data[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (c == '\n') ++line;
          field += c;
          ++i;
        }
        // After the closing quote: a separator, a line break or the end of the data.
        if (i < n && data[i] != ',' && data[i] != '\n' && data[i] != '\r')
          fail(file, ":", line, ": malformed CSV: unexpected character '", data[i],
               "' after a closing quote (a quote inside a quoted field is written \"\")");
      } else {
        // Unquoted: up to the next separator or line break. A stray quote is kept literally.
        while (i < n && data[i] != ',' && data[i] != '\n' && data[i] != '\r') field += data[i++];
      }
      record.fields.push_back(std::move(field));
      if (i >= n) {
        end_of_record = true;
      } else if (data[i] == ',') {
        ++i;
      } else if (data[i] == '\r' && i + 1 < n && data[i + 1] == '\n') {
        i += 2;
        ++line;
        end_of_record = true;
      } else if (data[i] == '\n') {
        ++i;
        ++line;
        end_of_record = true;
      } else {  // a lone \r ends the field: treat it as part of the line break
        ++i;
        if (i < n && data[i] == '\n') ++i;
        ++line;
        end_of_record = true;
      }
    }
    records.push_back(std::move(record));
  }
  return records;
}

std::string table_format(const fs::path& file) {
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".csv") return "csv";
  if (ext == ".tsv" || ext == ".tab") return "tsv";
  if (ext == ".jsonl" || ext == ".ndjson") return "jsonl";
  return "";
}

static std::string join(const std::vector<std::string>& items, const char* separator = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += separator;
    out += items[i];
  }
  return out;
}

// Rows of a CSV or TSV file: the header first. Blank lines are skipped.
static std::vector<CsvRecord> read_rows(std::string_view body, const std::string& name,
                                        const std::string& format) {
  if (format == "csv") return parse_csv(body, name);
  std::vector<CsvRecord> rows;
  for (const Line& line : split_lines(body)) {
    if (is_blank(line.text)) continue;
    CsvRecord record;
    record.line = line.number;
    for (std::string_view field : split_tabs(line.text)) record.fields.emplace_back(field);
    rows.push_back(std::move(record));
  }
  return rows;
}

// How a user chooses the column: the training key, and eval's flag.
static const char* option_for(const DataOptions& options, const std::string& column) {
  if (column == options.text_column) return "data.text_column (eval: --text-column)";
  if (column == options.text_pair_column) return "data.text_pair_column (eval: --text-pair-column)";
  return "data.label_column (eval: --label-column)";
}

static std::vector<RawExample> read_csv_or_tsv(std::string_view body, const std::string& name,
                                               const std::string& format,
                                               const DataOptions& options) {
  std::vector<CsvRecord> rows = read_rows(body, name, format);
  if (rows.empty()) fail(name, ": empty file (no header, no examples)");
  const CsvRecord& header = rows[0];
  auto column = [&](const std::string& wanted) -> size_t {
    auto it = std::find(header.fields.begin(), header.fields.end(), wanted);
    if (it == header.fields.end())
      fail(name, ":", header.line, ": missing column '", wanted, "' (the header has: ",
           join(header.fields), "); choose the column with ", option_for(options, wanted));
    return size_t(it - header.fields.begin());
  };
  size_t text_index = column(options.text_column);
  std::optional<size_t> pair_index;
  if (!options.text_pair_column.empty()) pair_index = column(options.text_pair_column);
  size_t label_index = column(options.label_column);
  if (rows.size() == 1) fail(name, ": no examples after the header");

  std::vector<RawExample> examples;
  examples.reserve(rows.size() - 1);
  for (size_t r = 1; r < rows.size(); ++r) {
    CsvRecord& row = rows[r];
    if (row.fields.size() != header.fields.size())
      fail(name, ":", row.line, ": expected ", header.fields.size(), " ",
           format == "csv" ? "comma" : "tab", "-separated fields as in the header, found ",
           row.fields.size());
    RawExample example;
    example.source = name + ":" + std::to_string(row.line);
    example.text = std::move(row.fields[text_index]);
    if (pair_index) example.text_pair = std::move(row.fields[*pair_index]);
    example.label = std::move(row.fields[label_index]);
    if (is_blank(example.label))
      fail(example.source, ": empty label in column '", options.label_column, "'");
    examples.push_back(std::move(example));
  }
  return examples;
}

static std::string short_json_error(const std::exception& e) {
  // nlohmann prefixes "[json.exception.parse_error.101] "; the rest is the useful part.
  std::string what = e.what();
  size_t bracket = what.find("] ");
  return bracket == std::string::npos ? what : what.substr(bracket + 2);
}

static std::vector<RawExample> read_jsonl(std::string_view body, const std::string& name,
                                          const DataOptions& options) {
  std::vector<RawExample> examples;
  for (const Line& line : split_lines(body)) {
    if (is_blank(line.text)) continue;
    std::string where = name + ":" + std::to_string(line.number);
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(line.text);
    } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number like 1e400
      fail(where, ": malformed JSON: ", short_json_error(e));
    }
    if (!object.is_object())
      fail(where, ": expected one JSON object per line, found a ", object.type_name());
    auto get = [&](const std::string& key) -> const nlohmann::json& {
      auto it = object.find(key);
      if (it == object.end()) {
        std::vector<std::string> keys;
        for (auto& item : object.items()) keys.push_back(item.key());
        fail(where, ": missing key '", key, "' (the object has: ", join(keys), "); choose it with ",
             option_for(options, key));
      }
      return *it;
    };
    auto get_text = [&](const std::string& key) -> std::string {
      const nlohmann::json& value = get(key);
      if (!value.is_string())
        fail(where, ": key '", key, "' must be a string, found a ", value.type_name());
      return value.get<std::string>();
    };
    RawExample example;
    example.source = where;
    example.text = get_text(options.text_column);
    if (!options.text_pair_column.empty()) example.text_pair = get_text(options.text_pair_column);
    const nlohmann::json& label = get(options.label_column);
    if (label.is_string()) {
      example.label = label.get<std::string>();
    } else if (label.is_boolean()) {
      example.label = label.get<bool>() ? "1" : "0";
    } else if (label.is_number()) {
      example.label = label.dump();
    } else {
      fail(where, ": key '", options.label_column, "' must be a string or a number, found a ",
           label.type_name());
    }
    if (is_blank(example.label))
      fail(where, ": empty label in key '", options.label_column, "'");
    examples.push_back(std::move(example));
  }
  if (examples.empty()) fail(name, ": empty file (no JSON lines)");
  return examples;
}

std::vector<RawExample> read_table_file(const fs::path& file, const DataOptions& options) {
  std::string format = table_format(file);
  if (format.empty())
    fail(file.string(), ": unknown data file type '", file.extension().string(),
         "' (expected .csv, .tsv or .jsonl)");
  std::string name = file.string();
  std::string data = read_whole_file(file);
  check_utf8(data, name);
  std::string_view body = strip_utf8_bom(data);
  if (is_blank(body)) fail(name, ": empty file (no header, no examples)");
  if (format == "jsonl") return read_jsonl(body, name, options);
  return read_csv_or_tsv(body, name, format, options);
}

// ---------------------------------------------------------------------------------------------
// GLUE. Each task's train/dev TSV layout as distributed by the GLUE download script: tab separated,
// no quoting, a header row (except CoLA). Labels are the GLUE/Hugging Face `datasets` label sets.

namespace {

struct GlueTask {
  std::string name;                      // "sst2"
  std::string display;                   // "SST-2"
  std::vector<std::string> header_start; // leading header columns that identify the task; empty: CoLA
  std::string text_column, pair_column, label_column;  // by name (CoLA: unused)
  std::vector<std::string> label_names;  // empty: regression
  std::vector<std::string> dev_splits;   // file stems holding labelled dev data
  std::vector<std::string> test_files;   // unlabelled files we do not load
  bool skip_malformed_rows = false;      // QQP's train.tsv has a few rows with missing fields
};

const std::vector<GlueTask>& glue_tasks() {
  static const std::vector<GlueTask> tasks = {
      {"cola", "CoLA", {}, "", "", "", {"unacceptable", "acceptable"}, {"dev"}, {"test"}},
      {"sst2", "SST-2", {"sentence", "label"}, "sentence", "", "label", {"negative", "positive"},
       {"dev"}, {"test"}},
      {"mrpc", "MRPC", {"Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"}, "#1 String",
       "#2 String", "Quality", {"not_equivalent", "equivalent"}, {"dev"}, {"test"}},
      {"qqp", "QQP", {"id", "qid1", "qid2", "question1", "question2", "is_duplicate"}, "question1",
       "question2", "is_duplicate", {"not_duplicate", "duplicate"}, {"dev"}, {"test"}, true},
      {"qnli", "QNLI", {"index", "question", "sentence", "label"}, "question", "sentence", "label",
       {"entailment", "not_entailment"}, {"dev"}, {"test"}},
      {"rte", "RTE", {"index", "sentence1", "sentence2", "label"}, "sentence1", "sentence2", "label",
       {"entailment", "not_entailment"}, {"dev"}, {"test"}},
      {"wnli", "WNLI", {"index", "sentence1", "sentence2", "label"}, "sentence1", "sentence2",
       "label", {"not_entailment", "entailment"}, {"dev"}, {"test"}},
      {"mnli", "MNLI", {"index", "promptID", "pairID", "genre"}, "sentence1", "sentence2",
       "gold_label", {"entailment", "neutral", "contradiction"}, {"dev_matched", "dev_mismatched"},
       {"test_matched", "test_mismatched"}},
      {"stsb", "STS-B",
       {"index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
        "sentence2", "score"},
       "sentence1", "sentence2", "score", {}, {"dev"}, {"test"}},
  };
  return tasks;
}

const GlueTask* find_task(const std::string& name) {
  for (const GlueTask& task : glue_tasks())
    if (task.name == name) return &task;
  return nullptr;
}

std::string normalise_name(std::string name) {
  std::string out;
  for (unsigned char c : name)
    if (std::isalnum(c)) out += char(std::tolower(c));
  return out;
}

std::vector<std::string> first_lines(const fs::path& file, int count) {
  std::ifstream in(file, std::ios::binary);
  std::vector<std::string> lines;
  std::string line;
  while (int(lines.size()) < count && std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lines.empty()) line = std::string(strip_utf8_bom(line));
    lines.push_back(line);
  }
  return lines;
}

bool starts_with_columns(const std::vector<std::string_view>& fields,
                         const std::vector<std::string>& wanted) {
  if (fields.size() < wanted.size()) return false;
  for (size_t i = 0; i < wanted.size(); ++i)
    if (fields[i] != wanted[i]) return false;
  return true;
}

bool is_cola_row(const std::vector<std::string_view>& fields) {
  return fields.size() == 4 && (fields[1] == "0" || fields[1] == "1");
}

}  // namespace

std::optional<std::string> detect_glue_task(const fs::path& dir) {
  fs::path normal = fs::absolute(dir).lexically_normal();
  std::string folder = normal.filename().string();
  if (folder.empty()) folder = normal.parent_path().filename().string();
  std::string key = normalise_name(folder);
  std::error_code ec;
  bool has_tsv = fs::exists(dir / "train.tsv", ec) || fs::exists(dir / "dev.tsv", ec) ||
                 fs::exists(dir / "dev_matched.tsv", ec);
  if (!has_tsv) return std::nullopt;
  if (find_task(key)) return key;
  if (key == "sst") return std::string("sst2");

  fs::path probe = fs::exists(dir / "train.tsv", ec) ? dir / "train.tsv"
                   : fs::exists(dir / "dev.tsv", ec) ? dir / "dev.tsv"
                                                     : dir / "dev_matched.tsv";
  std::vector<std::string> lines = first_lines(probe, 2);
  if (lines.empty()) return std::nullopt;
  std::vector<std::string_view> header = split_tabs(lines[0]);
  if (is_cola_row(header)) return std::string("cola");
  for (const GlueTask& task : glue_tasks()) {
    if (task.header_start.empty() || !starts_with_columns(header, task.header_start)) continue;
    if (task.name == "rte" || task.name == "wnli") {
      // Same header; WNLI writes labels as 0/1, RTE as words.
      if (lines.size() < 2) return std::string("rte");
      std::vector<std::string_view> row = split_tabs(lines[1]);
      bool numeric = !row.empty() && (row.back() == "0" || row.back() == "1");
      return std::string(numeric ? "wnli" : "rte");
    }
    return task.name;
  }
  return std::nullopt;
}

static std::vector<RawExample> read_glue_file(const fs::path& file, const GlueTask& task,
                                              std::vector<std::string>& notes) {
  std::string name = file.string();
  std::string data = read_whole_file(file);
  check_utf8(data, name);
  std::string_view body = strip_utf8_bom(data);
  std::vector<Line> lines = split_lines(body);
  while (!lines.empty() && is_blank(lines.back().text)) lines.pop_back();
  if (lines.empty()) fail(name, ": empty file (no examples)");

  std::vector<RawExample> examples;
  auto add = [&](const Line& line, std::string_view text, std::optional<std::string_view> pair,
                 std::string_view label) {
    RawExample example;
    example.source = name + ":" + std::to_string(line.number);
    if (label.empty()) fail(example.source, ": empty label");
    example.text = std::string(text);
    if (pair) example.text_pair = std::string(*pair);
    example.label = std::string(label);
    examples.push_back(std::move(example));
  };

  if (task.header_start.empty()) {
    // CoLA: no header; columns source, label, original mark, sentence.
    for (const Line& line : lines) {
      if (is_blank(line.text)) continue;
      std::vector<std::string_view> fields = split_tabs(line.text);
      if (fields.size() != 4)
        fail(name, ":", line.number, ": expected 4 tab-separated fields as in CoLA (source, label, "
             "mark, sentence), found ", fields.size());
      add(line, fields[3], std::nullopt, fields[1]);
    }
    if (examples.empty()) fail(name, ": empty file (no examples)");
    return examples;
  }

  std::vector<std::string_view> header = split_tabs(lines[0].text);
  if (!starts_with_columns(header, task.header_start)) {
    std::string found(lines[0].text.substr(0, 200));
    std::replace(found.begin(), found.end(), '\t', ' ');
    fail(name, ":1: not a ", task.display, " file: the header should start with ",
         join(task.header_start, " | "), "; found '", found, "'");
  }
  auto column = [&](const std::string& wanted) -> size_t {
    auto it = std::find(header.begin(), header.end(), wanted);
    if (it == header.end()) fail(name, ":1: missing column '", wanted, "' in the ", task.display, " header");
    return size_t(it - header.begin());
  };
  size_t text_index = column(task.text_column);
  std::optional<size_t> pair_index;
  if (!task.pair_column.empty()) pair_index = column(task.pair_column);
  size_t label_index = column(task.label_column);

  int64_t skipped = 0, first_skipped = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const Line& line = lines[i];
    if (is_blank(line.text)) continue;
    std::vector<std::string_view> fields = split_tabs(line.text);
    if (fields.size() != header.size()) {
      if (task.skip_malformed_rows) {
        if (skipped++ == 0) first_skipped = line.number;
        continue;
      }
      fail(name, ":", line.number, ": expected ", header.size(),
           " tab-separated fields as in the header, found ", fields.size());
    }
    std::optional<std::string_view> pair;
    if (pair_index) pair = fields[*pair_index];
    add(line, fields[text_index], pair, fields[label_index]);
  }
  if (skipped)
    notes.push_back(name + ": skipped " + std::to_string(skipped) +
                    " malformed rows with the wrong number of fields (first at line " +
                    std::to_string(first_skipped) + "), as the GLUE reference loaders do");
  if (examples.empty()) fail(name, ": has a header but no examples");
  return examples;
}

RawDataset read_glue_folder(const fs::path& dir, const std::string& task_name) {
  const GlueTask* task = find_task(task_name);
  if (!task) fail("unknown GLUE task '", task_name, "'");
  RawDataset raw;
  raw.name = task->name;
  raw.format = "glue";
  raw.label_names = task->label_names;
  raw.regression = task->label_names.empty();
  std::error_code ec;
  std::vector<std::string> stems = {"train"};
  stems.insert(stems.end(), task->dev_splits.begin(), task->dev_splits.end());
  for (const std::string& stem : stems) {
    fs::path file = dir / (stem + ".tsv");
    if (!fs::exists(file, ec)) continue;
    raw.splits[stem] = read_glue_file(file, *task, raw.notes);
  }
  if (raw.splits.empty())
    fail(dir.string(), ": a ", task->display, " folder needs train.tsv or ",
         join(task->dev_splits, ".tsv or "), ".tsv");
  for (const std::string& stem : task->test_files)
    if (fs::exists(dir / (stem + ".tsv"), ec))
      raw.notes.push_back(stem + ".tsv not loaded: GLUE withholds its labels");
  return raw;
}

}  // namespace ww::text::detail
