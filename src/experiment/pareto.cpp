#include "wattwise/experiment/pareto.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "wattwise/core/error.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/io/file.h"

namespace ww::experiment {

std::string Objective::str() const { return metric + (goal == Goal::Maximize ? ":max" : ":min"); }

std::vector<Objective> parse_objectives(const std::string& text) {
  std::vector<Objective> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t colon = item.rfind(':');
    if (item.empty() || colon == std::string::npos || colon == 0)
      fail("objective '", item, "': expected METRIC:min or METRIC:max (e.g. accuracy:max,joules_per_example:min)");
    Objective o;
    o.metric = item.substr(0, colon);
    const std::string goal = item.substr(colon + 1);
    if (goal == "min") o.goal = Goal::Minimize;
    else if (goal == "max") o.goal = Goal::Maximize;
    else fail("objective '", item, "': the goal must be min or max, not '", goal, "'");
    for (const Objective& seen : out)
      if (seen.metric == o.metric) fail("objective '", o.metric, "' is given twice");
    out.push_back(o);
  }
  if (out.size() < 2) fail("objectives '", text, "': need two or more, e.g. accuracy:max,joules_per_example:min");
  return out;
}

std::vector<bool> pareto_frontier(const std::vector<std::vector<double>>& values,
                                  const std::vector<Objective>& objectives,
                                  const std::vector<std::string>& names) {
  const size_t n = values.size(), k = objectives.size();
  if (names.size() != n) fail("pareto_frontier: ", n, " points but ", names.size(), " names");
  // Everything as "smaller is better".
  std::vector<std::vector<double>> cost(n, std::vector<double>(k));
  for (size_t i = 0; i < n; ++i) {
    if (values[i].size() != k)
      fail("config ", names[i], ": ", values[i].size(), " objective values, expected ", k);
    for (size_t j = 0; j < k; ++j) {
      const double v = values[i][j];
      if (std::isnan(v)) fail("config ", names[i], ": metric ", objectives[j].metric, " is NaN (not available)");
      cost[i][j] = objectives[j].goal == Goal::Maximize ? -v : v;
    }
  }
  // A point can only be dominated by one that sorts before it lexicographically; and a point
  // dominated by a dominated point is dominated by a frontier point too. So, in lexicographic
  // order, comparing each point with the frontier found so far is enough.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cost[a] < cost[b]; });
  auto dominates = [&](size_t a, size_t b) {
    bool strictly = false;
    for (size_t j = 0; j < k; ++j) {
      if (cost[a][j] > cost[b][j]) return false;
      if (cost[a][j] < cost[b][j]) strictly = true;
    }
    return strictly;
  };
  std::vector<bool> on(n, false);
  std::vector<size_t> frontier;
  for (size_t i : order) {
    bool dominated = false;
    for (size_t f : frontier)
      if (dominates(f, i)) {
        dominated = true;
        break;
      }
    if (!dominated) {
      frontier.push_back(i);
      on[i] = true;
    }
  }
  return on;
}

std::vector<FrontierPoint> pareto_frontier_within_spread(const std::vector<std::vector<Spread>>& values,
                                                         const std::vector<Objective>& objectives,
                                                         const std::vector<std::string>& names) {
  const size_t n = values.size(), k = objectives.size();
  if (names.size() != n) fail("pareto_frontier_within_spread: ", n, " points but ", names.size(), " names");
  // Everything as "smaller is better": a maximised objective's interval [low, high] becomes
  // [-high, -low].
  std::vector<std::vector<Spread>> cost(n, std::vector<Spread>(k));
  for (size_t i = 0; i < n; ++i) {
    if (values[i].size() != k)
      fail("config ", names[i], ": ", values[i].size(), " objective values, expected ", k);
    for (size_t j = 0; j < k; ++j) {
      const Spread& s = values[i][j];
      if (std::isnan(s.value)) fail("config ", names[i], ": metric ", objectives[j].metric, " is NaN (not available)");
      if (std::isnan(s.low) || std::isnan(s.high) || !(s.low <= s.value && s.value <= s.high))
        fail("config ", names[i], ": metric ", objectives[j].metric, " ", s.value, " lies outside its spread [", s.low,
             ", ", s.high, "]");
      cost[i][j] = objectives[j].goal == Goal::Maximize ? Spread{-s.value, -s.high, -s.low} : s;
    }
  }
  // O(n^2 k): unlike exact dominance, dominance beyond the spread is not transitive (a point can be
  // within the spread of one that is itself clearly beaten), so every pair is compared.
  enum class Relation { None, Exact, BeyondSpread };
  auto relation = [&](size_t a, size_t b) {  // how a dominates b
    bool strictly = false, clearly = true;
    for (size_t j = 0; j < k; ++j) {
      const Spread &x = cost[a][j], &y = cost[b][j];
      if (x.value > y.value) return Relation::None;
      if (x.value < y.value) {
        strictly = true;
        clearly = clearly && x.high < y.low;
      }
    }
    return !strictly ? Relation::None : clearly ? Relation::BeyondSpread : Relation::Exact;
  };
  std::vector<FrontierPoint> out(n);
  for (size_t b = 0; b < n; ++b) {
    out[b].on = true;
    for (size_t a = 0; a < n && out[b].on; ++a) {
      const Relation r = a == b ? Relation::None : relation(a, b);
      if (r == Relation::BeyondSpread) out[b].on = false;
      else if (r == Relation::Exact) out[b].tied_with.push_back(a);
    }
    if (!out[b].on) out[b].tied_with.clear();
  }
  return out;
}

double ConfigRow::metric(const std::string& name) const {
  auto it = metrics.find(name);
  if (it == metrics.end()) fail("config ", label(), ": no metric ", name);
  return it->second;
}

Spread ConfigRow::spread(const std::string& name) const {
  const double v = metric(name);
  auto lo = metrics.find(name + "_min"), hi = metrics.find(name + "_max");
  if (lo == metrics.end() || hi == metrics.end() || std::isnan(lo->second) || std::isnan(hi->second))
    return Spread::exact(v);
  // The value is not always inside the extremes of the repeats (a sweep's energy per example is one
  // window over all passes, the spread its least and most energetic block of passes): the spread
  // covers both.
  return {v, std::min(lo->second, v), std::max(hi->second, v)};
}

std::string ConfigRow::frontier() const { return !on_frontier ? "no" : tied_with.empty() ? "yes" : "tie"; }

std::string ConfigRow::knob(const std::string& axis) const {
  for (const auto& [a, v] : knobs)
    if (a == axis) return v;
  return "";
}

std::string ConfigRow::label() const {
  std::string s = run.empty() ? config : std::filesystem::path(run).filename().string() + "/" + config;
  if (!knobs.empty()) {
    s += " (";
    for (size_t i = 0; i < knobs.size(); ++i) s += (i ? " " : "") + knobs[i].first + "=" + knobs[i].second;
    s += ")";
  }
  return s;
}

void mark_frontier(ResultTable& table, const std::vector<Objective>& objectives) {
  std::vector<std::vector<Spread>> values;
  std::vector<std::string> names;
  std::vector<size_t> index;
  std::set<std::string> runs;
  for (const ConfigRow& row : table.rows) runs.insert(row.run);
  for (size_t i = 0; i < table.rows.size(); ++i) {
    ConfigRow& row = table.rows[i];
    row.on_frontier = false;
    row.tied_with.clear();
    if (row.status != "ok") continue;
    std::vector<Spread> v;
    for (const Objective& o : objectives) v.push_back(row.spread(o.metric));
    values.push_back(v);
    names.push_back(row.label());
    index.push_back(i);
  }
  const std::vector<FrontierPoint> points = pareto_frontier_within_spread(values, objectives, names);
  for (size_t i = 0; i < index.size(); ++i) {
    ConfigRow& row = table.rows[index[i]];
    row.on_frontier = points[i].on;
    for (size_t t : points[i].tied_with) {
      const ConfigRow& other = table.rows[index[t]];
      row.tied_with.push_back(runs.size() > 1 ? std::filesystem::path(other.run).filename().string() + "/" + other.config
                                              : other.config);
    }
  }
}

namespace {

const std::vector<std::string> kLeading = {"run", "config"};
const std::vector<std::string> kMiddle = {"baseline", "status", "on_frontier", "tied_with"};
const std::vector<std::string> kTrailing = {"energy_provenance", "reason"};

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string format_number(double v) {
  if (std::isnan(v)) return "";
  char buffer[64];
  if (std::floor(v) == v && std::fabs(v) < 1e15) std::snprintf(buffer, sizeof buffer, "%.0f", v);
  else std::snprintf(buffer, sizeof buffer, "%.6g", v);
  return buffer;
}

// RFC 4180 records (quoted fields may hold commas, quotes and newlines); each with its first line.
std::vector<std::pair<size_t, std::vector<std::string>>> parse_csv(const std::string& text,
                                                                  const std::filesystem::path& path) {
  std::vector<std::pair<size_t, std::vector<std::string>>> records;
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false, any = false;
  size_t line = 1, record_line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && field.empty()) {
      quoted = any = true;
    } else if (c == ',') {
      fields.push_back(field);
      field.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) {
        fields.push_back(field);
        records.emplace_back(record_line, fields);
      }
      fields.clear();
      field.clear();
      any = false;
      record_line = ++line;
    } else {
      field += c;
      any = true;
    }
  }
  if (quoted) fail(path.string(), ":", record_line, ": unterminated quoted field");
  if (any || !field.empty()) {
    fields.push_back(field);
    records.emplace_back(record_line, fields);
  }
  return records;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string word;
  while (in >> word) out.push_back(word);
  return out;
}

}  // namespace

void write_pareto_csv(const ResultTable& table, const std::filesystem::path& path) {
  std::ostringstream os;
  std::vector<std::string> header = kLeading;
  header.insert(header.end(), table.axes.begin(), table.axes.end());
  header.insert(header.end(), kMiddle.begin(), kMiddle.end());
  header.insert(header.end(), table.metrics.begin(), table.metrics.end());
  header.insert(header.end(), kTrailing.begin(), kTrailing.end());
  for (size_t i = 0; i < header.size(); ++i) os << (i ? "," : "") << csv_field(header[i]);
  os << "\n";
  for (const ConfigRow& r : table.rows) {
    std::vector<std::string> cells = {r.run, r.config};
    for (const std::string& a : table.axes) cells.push_back(r.knob(a));
    cells.push_back(r.baseline ? "true" : "false");
    cells.push_back(r.status);
    cells.push_back(r.on_frontier ? "true" : "false");
    cells.push_back(join(r.tied_with, " "));
    for (const std::string& m : table.metrics) {
      auto it = r.metrics.find(m);
      cells.push_back(it == r.metrics.end() ? "" : format_number(it->second));
    }
    cells.push_back(r.energy_provenance);
    cells.push_back(r.reason);
    for (size_t i = 0; i < cells.size(); ++i) os << (i ? "," : "") << csv_field(cells[i]);
    os << "\n";
  }
  io::write_file_atomic(path, os.str());
}

ResultTable read_pareto_csv(const std::filesystem::path& path) {
  auto records = parse_csv(io::read_file(path), path);
  if (records.empty()) fail(path.string(), ": empty file (expected a pareto.csv header)");
  const std::vector<std::string>& header = records[0].second;
  auto column = [&](const std::string& name) -> size_t {
    auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) fail(path.string(), ":1: missing column '", name, "'");
    return size_t(it - header.begin());
  };
  const size_t config_col = column("config"), baseline_col = column("baseline");
  const size_t on_col = column("on_frontier"), provenance_col = column("energy_provenance");
  // tied_with follows on_frontier; a pareto.csv written before it existed has none (and no ties).
  const bool has_ties = on_col + 1 < header.size() && header[on_col + 1] == "tied_with";
  const size_t first_metric = on_col + (has_ties ? 2 : 1);
  ResultTable table;
  for (size_t c = config_col + 1; c < baseline_col; ++c) table.axes.push_back(header[c]);
  for (size_t c = first_metric; c < provenance_col; ++c) table.metrics.push_back(header[c]);
  const size_t run_col = column("run"), status_col = column("status"), reason_col = column("reason");
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& [line, cells] = records[r];
    if (cells.size() != header.size())
      fail(path.string(), ":", line, ": ", cells.size(), " fields, expected ", header.size());
    ConfigRow row;
    row.run = cells[run_col];
    row.config = cells[config_col];
    for (size_t c = config_col + 1; c < baseline_col; ++c) row.knobs.emplace_back(header[c], cells[c]);
    row.baseline = cells[baseline_col] == "true";
    row.status = cells[status_col];
    row.on_frontier = cells[on_col] == "true";
    if (has_ties) row.tied_with = split_words(cells[on_col + 1]);
    for (size_t c = first_metric; c < provenance_col; ++c) {
      if (cells[c].empty()) continue;
      char* end = nullptr;
      const double v = std::strtod(cells[c].c_str(), &end);
      if (*end != '\0') fail(path.string(), ":", line, ": column ", header[c], ": '", cells[c], "' is not a number");
      row.metrics[header[c]] = v;
    }
    row.energy_provenance = cells[provenance_col];
    row.reason = cells[reason_col];
    table.rows.push_back(std::move(row));
  }
  return table;
}

std::string format_table(const ResultTable& table, const std::vector<const ConfigRow*>& rows,
                         const std::vector<std::string>& metrics) {
  std::set<std::string> runs;
  bool any_tie = false;
  for (const ConfigRow* r : rows) {
    runs.insert(r->run);
    any_tie = any_tie || r->frontier() == "tie";
  }
  std::vector<std::string> header;
  if (runs.size() > 1) header.push_back("run");
  header.push_back("config");
  header.insert(header.end(), table.axes.begin(), table.axes.end());
  header.insert(header.end(), metrics.begin(), metrics.end());
  if (any_tie) header.push_back("frontier");
  std::vector<std::vector<std::string>> cells = {header};
  for (const ConfigRow* r : rows) {
    std::vector<std::string> line;
    if (runs.size() > 1) line.push_back(std::filesystem::path(r->run).filename().string());
    line.push_back(r->config + (r->baseline ? "*" : ""));
    for (const std::string& a : table.axes) line.push_back(r->knob(a).empty() ? "-" : r->knob(a));
    for (const std::string& m : metrics) {
      auto it = r->metrics.find(m);
      char buffer[64] = "-";
      if (it != r->metrics.end() && !std::isnan(it->second)) std::snprintf(buffer, sizeof buffer, "%.4g", it->second);
      line.push_back(buffer);
    }
    if (any_tie) line.push_back(r->frontier() == "tie" ? "tie with " + join(r->tied_with, " ") : r->frontier());
    cells.push_back(line);
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& line : cells)
    for (size_t i = 0; i < line.size(); ++i) width[i] = std::max(width[i], line[i].size());
  std::ostringstream os;
  for (const auto& line : cells) {
    for (size_t i = 0; i < line.size(); ++i)
      os << (i ? "  " : "") << line[i] << std::string(width[i] - line[i].size(), ' ');
    os << "\n";
  }
  return os.str();
}

std::string tie_note(size_t ties) {
  if (ties == 0) return "";
  return ", " + std::to_string(ties) + (ties == 1 ? " of them a tie" : " of them ties") + " within the measured spread";
}

ResultTable load_run_results(const std::filesystem::path& run_dir) {
  if (std::filesystem::exists(run_dir / "pareto.csv")) {
    ResultTable t = read_pareto_csv(run_dir / "pareto.csv");
    for (ConfigRow& r : t.rows)
      if (r.run.empty()) r.run = run_dir.string();
    return t;
  }
  if (!std::filesystem::exists(run_dir / "metrics.json"))
    fail(run_dir.string(), ": neither pareto.csv (a sweep run) nor metrics.json (a training run)");
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(io::read_file(run_dir / "metrics.json"));
  } catch (const nlohmann::json::exception& e) {
    fail((run_dir / "metrics.json").string(), ": not valid JSON (", e.what(), ")");
  }
  if (!m.contains("train") || !m.contains("energy"))
    fail((run_dir / "metrics.json").string(), ": not a training run (no \"train\" section) and no pareto.csv beside it");
  ResultTable t;
  t.metrics = {"accuracy", "f1", "training_kwh", "training_joules", "training_gco2e", "training_seconds"};
  ConfigRow row;
  row.run = run_dir.string();
  row.config = "train";
  const nlohmann::json& scores = !m["eval"].is_null() ? m["eval"] : m["test"];
  if (scores.is_object()) {
    if (scores.contains("accuracy") && scores["accuracy"].is_number()) row.metrics["accuracy"] = scores["accuracy"];
    if (scores.contains("f1") && scores["f1"].is_number()) row.metrics["f1"] = scores["f1"];
  }
  const nlohmann::json& phases = m["energy"]["phases"];
  const nlohmann::json& window = phases.contains("training") ? phases["training"] : m["energy"]["total"];
  row.metrics["training_kwh"] = window.value("kwh", std::nan(""));
  row.metrics["training_joules"] = window.value("energy_j", std::nan(""));
  row.metrics["training_gco2e"] = window.value("gco2e", std::nan(""));
  row.metrics["training_seconds"] = m["train"].value("seconds", std::nan(""));
  bool measured = false;
  for (const auto& s : window.value("sources", nlohmann::json::array())) measured = measured || s.value("measured", false);
  row.energy_provenance = measured ? "measured (in part)" : "estimated";
  t.rows.push_back(row);
  return t;
}

ResultTable load_runs(const std::vector<std::filesystem::path>& run_dirs) {
  ResultTable all;
  for (const auto& dir : run_dirs) {
    ResultTable t = load_run_results(dir);
    for (const auto& a : t.axes)
      if (!contains(all.axes, a)) all.axes.push_back(a);
    for (const auto& m : t.metrics)
      if (!contains(all.metrics, m)) all.metrics.push_back(m);
    for (auto& r : t.rows) all.rows.push_back(std::move(r));
  }
  return all;
}

std::filesystem::path run_pareto(const ParetoOptions& o) {
  if (o.run_dirs.empty()) fail("wattwise pareto: give one or more run folders");
  ResultTable all = load_runs(o.run_dirs);
  bool any_training = false;
  for (const ConfigRow& r : all.rows) any_training = any_training || r.config == "train";
  std::string objective_text = o.objectives;
  if (objective_text.empty())
    objective_text = any_training ? "accuracy:max,training_kwh:min" : "accuracy:max,joules_per_example:min,latency_p50_ms:min";
  const std::vector<Objective> objectives = parse_objectives(objective_text);
  for (const Objective& ob : objectives)
    if (!contains(all.metrics, ob.metric)) {
      std::string known;
      for (const auto& m : all.metrics) known += (known.empty() ? "" : ", ") + m;
      fail("objective ", ob.metric, ": no such metric in these runs (they have: ", known, ")");
    }
  mark_frontier(all, objectives);
  std::filesystem::path out = create_run_dir(o.runs_dir, "pareto");
  RunDirGuard out_guard(out);  // a failed write leaves no empty folder
  write_pareto_csv(all, out / "pareto.csv");
  out_guard.keep();
  std::vector<const ConfigRow*> frontier;
  size_t ties = 0;
  for (const ConfigRow& r : all.rows) {
    if (r.on_frontier) frontier.push_back(&r);
    ties += r.frontier() == "tie";
  }
  std::vector<std::string> shown;
  for (const Objective& ob : objectives) shown.push_back(ob.metric);
  std::printf("Pareto frontier over %s (%zu of %zu configurations%s):\n%s", objective_text.c_str(), frontier.size(),
              all.rows.size(), tie_note(ties).c_str(), format_table(all, frontier, shown).c_str());
  std::printf("pareto.csv: %s\n", (out / "pareto.csv").c_str());
  return out;
}

}  // namespace ww::experiment
