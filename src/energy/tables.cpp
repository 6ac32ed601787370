#include "wattwise/energy/tables.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "wattwise/core/error.h"

namespace ww::energy {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view text) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return std::string(text.substr(begin, end - begin));
}

double parse_number(const std::string& text, const std::string& what, size_t line) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size())
    fail(what, " row ", line, ": '", text, "' is not a number");
  return value;
}

std::vector<CpuTdpEntry> parse_tdp_table(std::string_view text, const std::string& what) {
  std::vector<CpuTdpEntry> entries;
  const auto rows = parse_csv(text, what);
  if (rows.empty() || rows[0].size() < 2 || rows[0][0] != "model" || rows[0][1] != "tdp_w")
    fail(what, ": expected a header 'model,tdp_w,source'");
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].size() < 2) fail(what, " row ", i, ": expected model,tdp_w[,source]");
    CpuTdpEntry entry;
    entry.model = rows[i][0];
    entry.tdp_w = parse_number(rows[i][1], what, i);
    if (entry.tdp_w <= 0) fail(what, " row ", i, ": TDP must be positive, got ", rows[i][1]);
    entry.source = rows[i].size() > 2 ? rows[i][2] : what;
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::optional<CpuTdpEntry> best_match(const std::vector<CpuTdpEntry>& table,
                                      const std::string& normalized_model) {
  const CpuTdpEntry* best = nullptr;
  size_t best_length = 0;
  for (const auto& entry : table) {
    const std::string name = normalize_cpu_model(entry.model);
    if (name.empty()) continue;
    if (name == normalized_model) return entry;
    // Whole-word containment: "amd epyc 7543" in "amd epyc 7543 32-core" but not in "... 7543p".
    for (size_t at = normalized_model.find(name); at != std::string::npos;
         at = normalized_model.find(name, at + 1)) {
      const bool starts = at == 0 || normalized_model[at - 1] == ' ';
      const size_t after = at + name.size();
      const bool ends = after == normalized_model.size() || normalized_model[after] == ' ';
      if (starts && ends && name.size() > best_length) {
        best = &entry;
        best_length = name.size();
      }
    }
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}

}  // namespace

std::vector<std::vector<std::string>> parse_csv(std::string_view text, const std::string& what) {
  std::vector<std::vector<std::string>> rows;
  size_t pos = 0;
  size_t line_number = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty() || line.front() == '#') continue;
    std::vector<std::string> fields;
    std::string field;
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (quoted) {
        if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
          field += '"';
          ++i;
        } else if (c == '"') {
          quoted = false;
        } else {
          field += c;
        }
      } else if (c == '"') {
        quoted = true;
      } else if (c == ',') {
        fields.push_back(field);
        field.clear();
      } else {
        field += c;
      }
    }
    if (quoted) fail(what, " line ", line_number, ": unterminated quoted field");
    fields.push_back(field);
    rows.push_back(std::move(fields));
  }
  return rows;
}

std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\n\r") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string normalize_cpu_model(std::string_view model) {
  std::string text = lower(model);
  // Drop the clock suffix ("@ 2.00GHz") and vendor marks.
  if (const size_t at = text.find('@'); at != std::string::npos) text.resize(at);
  for (const char* mark : {"(r)", "(tm)", "\xc2\xae", "\xe2\x84\xa2"}) {
    for (size_t at = text.find(mark); at != std::string::npos; at = text.find(mark))
      text.replace(at, std::string(mark).size(), " ");
  }
  // Split into words, dropping filler words and "NN-core".
  std::istringstream words(text);
  std::string word, out;
  while (words >> word) {
    if (word == "cpu" || word == "processor" || word == "processors") continue;
    if (word.size() > 5 && word.ends_with("-core")) continue;
    if (!out.empty()) out += ' ';
    out += word;
  }
  return out;
}

const std::vector<CpuTdpEntry>& cpu_tdp_table() {
  static const std::vector<CpuTdpEntry> table =
      parse_tdp_table(embedded_cpu_tdp_csv(), "resources/cpu_tdp.csv");
  return table;
}

std::optional<CpuTdpEntry> lookup_cpu_tdp(const std::string& cpu_model,
                                          const std::string& user_table_path) {
  const std::string normalized = normalize_cpu_model(cpu_model);
  if (normalized.empty()) return std::nullopt;
  if (!user_table_path.empty()) {
    std::ifstream in(user_table_path);
    if (!in) fail("CPU TDP table ", user_table_path, ": cannot be opened");
    std::stringstream text;
    text << in.rdbuf();
    if (auto hit = best_match(parse_tdp_table(text.str(), user_table_path), normalized)) return hit;
  }
  return best_match(cpu_tdp_table(), normalized);
}

const std::vector<GridIntensityEntry>& grid_intensity_table() {
  static const std::vector<GridIntensityEntry> table = [] {
    const std::string what = "resources/grid_intensity.csv";
    const auto rows = parse_csv(embedded_grid_intensity_csv(), what);
    if (rows.empty() || rows[0] != std::vector<std::string>{"code", "name", "gco2e_per_kwh",
                                                             "year", "source"})
      fail(what, ": expected a header 'code,name,gco2e_per_kwh,year,source'");
    std::vector<GridIntensityEntry> entries;
    for (size_t i = 1; i < rows.size(); ++i) {
      if (rows[i].size() != 5) fail(what, " row ", i, ": expected 5 fields");
      GridIntensityEntry entry;
      entry.code = rows[i][0];
      entry.name = rows[i][1];
      entry.g_per_kwh = parse_number(rows[i][2], what, i);
      entry.year = static_cast<int>(parse_number(rows[i][3], what, i));
      entry.source = rows[i][4];
      entries.push_back(std::move(entry));
    }
    return entries;
  }();
  return table;
}

std::optional<GridIntensityEntry> lookup_grid_intensity(const std::string& code_or_name) {
  const std::string key = lower(trim(code_or_name));
  for (const auto& entry : grid_intensity_table())
    if (lower(entry.code) == key || lower(entry.name) == key) return entry;
  return std::nullopt;
}

}  // namespace ww::energy
