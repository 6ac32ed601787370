#include "wattwise/experiment/report.h"

#include "wattwise/experiment/plot.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "wattwise/core/error.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/io/file.h"

namespace ww::experiment {
namespace {

bool has(const ConfigRow& r, const std::string& m) {
  auto it = r.metrics.find(m);
  return r.status == "ok" && it != r.metrics.end() && std::isfinite(it->second);
}


std::string number(double v, const char* format = "%.4g") {
  if (!std::isfinite(v)) return "–";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, v);
  return buffer;
}

// A 2-D scatter over the rows that have both metrics; its own 2-D frontier.
std::optional<ScatterPlot> make_plot(const ResultTable& table, const std::string& axis, const std::string& x_metric,
                                     const std::string& y_metric, Goal x_goal, Goal y_goal, const std::string& title,
                                     const std::string& x_label, const std::string& y_label) {
  ScatterPlot plot;
  plot.title = title;
  plot.x_label = x_label;
  plot.y_label = y_label;
  std::vector<std::vector<Spread>> values;
  std::vector<std::string> names;
  for (const ConfigRow& r : table.rows) {
    if (!has(r, x_metric) || !has(r, y_metric)) continue;
    PlotPoint p;
    p.x = r.metrics.at(x_metric);
    p.y = r.metrics.at(y_metric);
    p.group = axis == "all" ? "all configurations" : axis + "=" + r.knob(axis);
    p.label = r.config;
    p.baseline = r.baseline;
    plot.points.push_back(p);
    values.push_back({r.spread(x_metric), r.spread(y_metric)});
    names.push_back(r.label());
  }
  if (plot.points.empty()) return std::nullopt;
  const std::vector<FrontierPoint> on =
      pareto_frontier_within_spread(values, {{x_metric, x_goal}, {y_metric, y_goal}}, names);
  for (size_t i = 0; i < on.size(); ++i) {
    plot.points[i].on_frontier = on[i].on;
    plot.points[i].tie = on[i].tie();
  }
  return plot;
}

}  // namespace

std::vector<std::pair<std::string, ScatterPlot>> sweep_plots(const ResultTable& table) {
  std::vector<std::pair<std::string, ScatterPlot>> plots;
  std::vector<std::string> axes = table.axes;
  if (axes.empty()) axes.push_back("all");
  bool any_accuracy = false;
  for (const ConfigRow& r : table.rows) any_accuracy = any_accuracy || has(r, "accuracy");
  const std::string quality = any_accuracy ? "accuracy" : "pearson";
  for (const std::string& axis : axes) {
    const std::string by = axis == "all" ? "" : " by " + axis;
    if (auto p = make_plot(table, axis, "joules_per_example", quality, Goal::Minimize, Goal::Maximize,
                           "Energy vs " + quality + by, "energy per example (J)",
                           quality == "accuracy" ? "accuracy (fraction correct)" : "Pearson correlation"))
      plots.emplace_back("energy_accuracy_" + axis, *p);
    if (auto p = make_plot(table, axis, "latency_p50_ms", "joules_per_example", Goal::Minimize, Goal::Minimize,
                           "Energy vs latency" + by, "latency per example, p50 (ms)", "energy per example (J)"))
      plots.emplace_back("energy_latency_" + axis, *p);
  }
  return plots;
}

std::string report_page_start(const std::string& title) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" << markup_escape(title)
    << "</title>\n<style>\n"
       "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:2em;color:#222;max-width:1400px}\n"
       "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}\n"
       "th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}\n"
       "th{background:#f0f0f0}td.k,th.k{text-align:left}\n"
       "tr.frontier td{background:#fdeaea}tr.tie td{background:#fdf5ea}tr.baseline td{font-weight:bold}\n"
       ".good{color:#1a7f37}.bad{color:#b42318}\n"
       "figure{display:inline-block;margin:0.5em;border:1px solid #ddd}\n"
       "figure svg{display:block;width:660px;height:auto}figcaption{font-size:12px;padding:4px;text-align:center}\n"
       "p.note{font-size:13px;color:#555}\n"
       "</style>\n</head>\n<body>\n";
  h << "<h1>" << markup_escape(title) << "</h1>\n";
  return h.str();
}

std::string render_report(const ResultTable& table, const std::string& title) {
  std::ostringstream h;
  // Baselines per run: savings are against the baseline of the same run.
  std::map<std::string, const ConfigRow*> baseline_of;
  std::set<std::string> runs;
  size_t ok = 0, frontier = 0, ties = 0;
  for (const ConfigRow& r : table.rows) {
    runs.insert(r.run);
    if (r.baseline) baseline_of[r.run] = &r;
    ok += r.status == "ok";
    frontier += r.on_frontier;
    ties += r.frontier() == "tie";
  }
  const bool many_runs = runs.size() > 1;
  const std::string quality = std::find(table.metrics.begin(), table.metrics.end(), "accuracy") != table.metrics.end()
                                  ? "accuracy"
                                  : "pearson";

  h << report_page_start(title);
  h << "<p id=\"summary\">" << table.rows.size() << " configurations from " << runs.size() << " run"
    << (runs.size() > 1 ? "s" : "") << ": " << ok << " measured, " << table.rows.size() - ok << " skipped, " << frontier
    << " on the Pareto frontier (no other configuration is at least as good on every objective and better on one "
       "by more than the spread measured over repeats)"
    << (ties ? ", " + std::to_string(ties) + (ties == 1 ? " of them a tie" : " of them ties") +
                   " (beaten on the exact values, but only within the measured spread)"
             : std::string())
    << ".</p>\n";

  std::vector<std::string> metric_cols;
  for (const char* m : {"accuracy", "f1", "matthews_correlation", "pearson", "joules_per_example", "latency_p50_ms",
                        "latency_p95_ms", "throughput_per_s", "joules_per_correct", "peak_memory_bytes", "gco2e_per_1000",
                        "training_kwh", "training_seconds"})
    if (std::find(table.metrics.begin(), table.metrics.end(), m) != table.metrics.end()) metric_cols.push_back(m);
  const std::map<std::string, std::string> heading = {
      {"accuracy", "accuracy"}, {"f1", "F1"}, {"matthews_correlation", "MCC"}, {"pearson", "Pearson"},
      {"joules_per_example", "J / example"}, {"latency_p50_ms", "latency p50 (ms/example)"},
      {"latency_p95_ms", "latency p95 (ms/example)"}, {"throughput_per_s", "throughput (examples/s)"},
      {"joules_per_correct", "J / correct"}, {"peak_memory_bytes", "peak memory (MiB)"},
      {"gco2e_per_1000", "gCO2e / 1,000 examples"}, {"training_kwh", "training kWh"}, {"training_seconds", "training s"}};

  auto write_table = [&](const std::string& id, const std::vector<const ConfigRow*>& rows, bool savings) {
    h << "<table id=\"" << id << "\">\n<tr>";
    if (many_runs) h << "<th class=\"k\">run</th>";
    h << "<th class=\"k\">config</th>";
    for (const auto& a : table.axes) h << "<th class=\"k\">" << markup_escape(a) << "</th>";
    h << "<th class=\"k\">status</th><th class=\"k\">frontier</th>";
    for (const auto& m : metric_cols) h << "<th>" << markup_escape(heading.at(m)) << "</th>";
    if (savings) h << "<th>energy saving</th><th>latency saving</th><th>" << quality << " &Delta;</th>";
    h << "<th>J/example spread (min–max)</th></tr>\n";
    for (const ConfigRow* r : rows) {
      h << "<tr class=\"" << (r->on_frontier ? "frontier" : "") << (r->frontier() == "tie" ? " tie" : "")
        << (r->baseline ? " baseline" : "") << "\">";
      if (many_runs) h << "<td class=\"k\">" << markup_escape(std::filesystem::path(r->run).filename().string()) << "</td>";
      h << "<td class=\"k\">" << markup_escape(r->config) << (r->baseline ? " (baseline)" : "") << "</td>";
      for (const auto& a : table.axes) h << "<td class=\"k\">" << markup_escape(r->knob(a)) << "</td>";
      h << "<td class=\"k\">" << markup_escape(r->status) << "</td><td class=\"k\">";
      if (r->frontier() == "tie") {
        std::string with;
        for (size_t i = 0; i < r->tied_with.size(); ++i) with += (i ? ", " : "") + r->tied_with[i];
        h << "&#9734; tie with " << markup_escape(with) << " within the measured spread";
      } else if (r->on_frontier) {
        h << "&#9733;";
      }
      h << "</td>";
      for (const auto& m : metric_cols) {
        if (!has(*r, m)) {
          h << "<td>–</td>";
          continue;
        }
        const double v = r->metrics.at(m);
        h << "<td>" << (m == "peak_memory_bytes" ? number(v / 1048576.0, "%.1f") : number(v)) << "</td>";
      }
      if (savings) {
        auto b = baseline_of.find(r->run);
        const ConfigRow* base = b == baseline_of.end() ? nullptr : b->second;
        auto saving = [&](const std::string& m) {
          if (!base || !has(*r, m) || !has(*base, m) || base->metrics.at(m) == 0) return std::string("<td>–</td>");
          const double s = 100.0 * (1.0 - r->metrics.at(m) / base->metrics.at(m));
          return "<td class=\"" + std::string(s > 0 ? "good" : s < 0 ? "bad" : "") + "\">" + number(s, "%+.1f") + "%</td>";
        };
        h << saving("joules_per_example") << saving("latency_p50_ms");
        if (base && has(*r, quality) && has(*base, quality)) {
          const double d = (r->metrics.at(quality) - base->metrics.at(quality)) * (quality == "accuracy" ? 100.0 : 1.0);
          h << "<td class=\"" << (d > 0 ? "good" : d < 0 ? "bad" : "") << "\">"
            << number(d, quality == "accuracy" ? "%+.2f pts" : "%+.4f") << "</td>";
        } else {
          h << "<td>–</td>";
        }
      }
      if (has(*r, "joules_per_example_min") && has(*r, "joules_per_example_max"))
        h << "<td>" << number(r->metrics.at("joules_per_example_min")) << "–" << number(r->metrics.at("joules_per_example_max")) << "</td>";
      else
        h << "<td>–</td>";
      h << "</tr>\n";
    }
    h << "</table>\n";
  };

  std::vector<const ConfigRow*> baselines, on_frontier, all, skipped;
  for (const ConfigRow& r : table.rows) {
    if (r.baseline) baselines.push_back(&r);
    if (r.on_frontier) on_frontier.push_back(&r);
    if (r.status != "ok") skipped.push_back(&r);
    all.push_back(&r);
  }
  h << "<h2>Baseline</h2>\n<p class=\"note\">The first value of every axis. Savings below are against it "
       "(energy and latency: positive = less than the baseline; "
    << quality << " &Delta;: " << (quality == "accuracy" ? "percentage points" : "difference") << ").</p>\n";
  if (baselines.empty()) h << "<p>No baseline row (training runs have none).</p>\n";
  else write_table("baseline-table", baselines, false);
  h << "<h2>Pareto frontier</h2>\n";
  write_table("frontier-table", on_frontier, true);

  h << "<h2>Plots</h2>\n<div id=\"plots\">\n";
  for (const auto& [stem, plot] : sweep_plots(table))
    h << "<figure class=\"plot\" id=\"plot-" << markup_escape(stem) << "\">\n" << render_svg(plot) << "<figcaption>"
      << markup_escape(stem) << ": frontier ringed and joined in red, baseline a diamond</figcaption></figure>\n";
  h << "</div>\n";

  h << "<h2>All configurations</h2>\n";
  write_table("configs-table", all, true);
  if (!skipped.empty()) {
    h << "<h2>Skipped configurations</h2>\n<table id=\"skipped-table\">\n<tr><th class=\"k\">config</th><th "
         "class=\"k\">reason</th></tr>\n";
    for (const ConfigRow* r : skipped)
      h << "<tr><td class=\"k\">" << markup_escape(r->label()) << "</td><td class=\"k\">" << markup_escape(r->reason) << "</td></tr>\n";
    h << "</table>\n";
  }
  std::set<std::string> provenance;
  for (const ConfigRow& r : table.rows)
    if (!r.energy_provenance.empty()) provenance.insert(r.energy_provenance);
  h << "<h2>Energy provenance</h2>\n<ul id=\"provenance\">\n";
  for (const auto& p : provenance) h << "<li>" << markup_escape(p) << "</li>\n";
  h << "</ul>\n<p class=\"note\">Each configuration's energy is one measurement window over its measured passes "
       "(warm-up excluded); the spread column gives the lowest and highest pass. The frontier compares "
       "energy, latency and throughput within that spread over passes (&#9734;: a tie, on the frontier although "
       "another configuration is better on the exact values, by less than the spread). See docs/ENERGY.md for how "
       "each figure is obtained and docs/SWEEPS.md for every column.</p>\n</body>\n</html>\n";
  return h.str();
}

std::filesystem::path run_report(const ReportOptions& o) {
  if (o.run_dirs.empty()) fail("wattwise report: give one or more run folders");
  ResultTable table = load_runs(o.run_dirs);
  std::filesystem::path out = o.output;
  std::optional<RunDirGuard> new_folder;  // the folder made for several runs' report, removed if writing fails
  if (out.empty()) {
    if (o.run_dirs.size() == 1) {
      out = o.run_dirs[0] / "report.html";
    } else {
      std::filesystem::path dir = create_run_dir(o.runs_dir, "report");
      new_folder.emplace(dir);
      out = dir / "report.html";
    }
  }
  std::string title = "wattwise report: ";
  for (size_t i = 0; i < o.run_dirs.size(); ++i) {
    std::filesystem::path p = std::filesystem::absolute(o.run_dirs[i]).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();  // "runs/x/"
    title += (i ? ", " : "") + p.filename().string();
  }
  io::write_file_atomic(out, render_report(table, title));
  if (new_folder) new_folder->keep();
  std::printf("report: %s\n", out.c_str());
  return out;
}

}  // namespace ww::experiment
