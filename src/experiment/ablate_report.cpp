// report.html of an ablation: one self-contained page (the plot inline as SVG, no scripts) with the
// changes against the baseline, the energy ranking, the quality–energy plot and every run.
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "wattwise/experiment/ablate.h"
#include "wattwise/experiment/plot.h"
#include "wattwise/experiment/report.h"

namespace ww::experiment {

namespace {

std::string number(double v, const char* format = "%.4g") {
  if (!std::isfinite(v)) return "–";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, v);
  return buffer;
}

double get(const std::map<std::string, double>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? std::nan("") : it->second;
}

// A difference from the baseline, coloured by whether it is an improvement: `lower_is_better` for
// time, energy and memory. Shown with its relative size (or its interval, for the quality).
std::string delta_cell(const ArmSummary& a, const std::string& name, bool lower_is_better, double unit_scale,
                       const char* format, bool interval) {
  const double mean = get(a.columns, name + "_mean");
  if (!std::isfinite(mean)) return "<td>–</td>";
  const double better = lower_is_better ? -mean : mean;
  std::string text = number(mean * unit_scale, format);
  if (interval) {
    const double lo = get(a.columns, name + "_ci_low"), hi = get(a.columns, name + "_ci_high");
    if (std::isfinite(lo)) text += " [" + number(lo * unit_scale, format) + ", " + number(hi * unit_scale, format) + "]";
  } else {
    const double rel = get(a.columns, name + "_rel");
    if (std::isfinite(rel)) text += " (" + number(100 * rel, "%+.1f") + "%)";
  }
  const double n = get(a.columns, name + "_n");
  if (std::isfinite(n) && n != double(a.seeds)) text += " n=" + number(n, "%.0f");
  return "<td class=\"" + std::string(better > 0 ? "good" : better < 0 ? "bad" : "") + "\">" + text + "</td>";
}

// ★ on the frontier, ☆ a tie (named), nothing off it.
std::string frontier_cell(const ArmSummary& a) {
  if (a.frontier() != "tie") return a.on_frontier ? "&#9733;" : "";
  std::string with;
  for (size_t i = 0; i < a.tied_with.size(); ++i) with += (i ? ", " : "") + a.tied_with[i];
  return "&#9734; tie with " + markup_escape(with) + " within the spread over seeds";
}

}  // namespace

ScatterPlot ablation_plot(const AblationSpec& spec, const AblationSummary& summary) {
  ScatterPlot plot;
  plot.title = spec.metric + " vs energy per training run";
  plot.x_label = "energy per training run (J), mean over seeds";
  plot.y_label = spec.metric + " on the evaluation split, mean over seeds";
  for (const ArmSummary& a : summary.arms) {
    const double x = get(a.columns, "energy_j_mean"), y = get(a.columns, spec.metric + "_mean");
    if (!std::isfinite(x) || !std::isfinite(y)) continue;
    PlotPoint p;
    p.x = x;
    p.y = y;
    p.group = a.name;
    p.label = a.name;
    p.baseline = a.baseline;
    p.on_frontier = a.on_frontier;
    p.tie = a.frontier() == "tie";
    plot.points.push_back(p);
  }
  return plot;
}

std::string render_ablation_report(const AblationSpec& spec, const AblationSummary& summary,
                                   const std::vector<AblationRun>& runs, const std::filesystem::path& dir) {
  const std::string& metric = spec.metric;
  const bool lower_better_quality = !higher_is_better(metric);
  const double point = metric_point(metric);
  const std::string title = "wattwise ablate: " + dir.filename().string();
  std::ostringstream h;
  h << report_page_start(title);
  std::string seeds;
  for (int64_t s : spec.seeds) seeds += (seeds.empty() ? "" : ", ") + std::to_string(s);
  h << "<p id=\"summary\">" << spec.arms.size() - 1 << " change" << (spec.arms.size() > 2 ? "s" : "")
    << " against the baseline, each over seeds " << seeds << " (" << runs.size() << " training runs). Quality: "
    << markup_escape(metric) << " on the evaluation split (the best checkpoint's); "
    << (spec.target.empty() ? "no target" : "target " + markup_escape(spec.target) + " (every run trains to its end)")
    << ". Differences are against the baseline, paired by seed: the mean with its 95% Student-t interval over "
       "seeds; " << markup_escape(metric) << " in points (" << (point == 1 ? "its own unit" : "0.01") << ").</p>\n";

  h << "<h2>Changes against the baseline</h2>\n<table id=\"changes-table\">\n<tr><th class=\"k\">change</th>"
       "<th class=\"k\">sets</th><th>seeds</th><th>"
    << markup_escape(metric) << " mean (min–max)</th><th>&Delta;" << markup_escape(metric)
    << " (points) [95% CI]</th><th>&Delta;time to target (s)</th><th>&Delta;energy to target (J)</th><th>energy (J)</th>"
       "<th>&Delta;energy (J)</th><th>&Delta;peak memory (MiB)</th><th>&Delta;throughput (/s)</th><th>MFU</th>"
       "<th>kWh</th><th>gCO2e</th><th>target reached</th><th>frontier</th></tr>\n";
  for (const ArmSummary& a : summary.arms) {
    h << "<tr class=\"" << (a.on_frontier ? "frontier" : "") << (a.frontier() == "tie" ? " tie" : "")
      << (a.baseline ? " baseline" : "") << "\">";
    h << "<td class=\"k\">" << markup_escape(a.name) << "</td><td class=\"k\">" << markup_escape(a.sets) << "</td>";
    h << "<td>" << a.seeds << "</td><td>" << number(get(a.columns, metric + "_mean")) << " ("
      << number(get(a.columns, metric + "_min")) << "–" << number(get(a.columns, metric + "_max")) << ")</td>";
    h << delta_cell(a, "delta_" + metric + "_pts", lower_better_quality, 1, "%+.2f", true)
      << delta_cell(a, "delta_time_to_target_s", true, 1, "%+.3g", false)
      << delta_cell(a, "delta_energy_to_target_j", true, 1, "%+.4g", false)
      << "<td>" << number(get(a.columns, "energy_j_mean")) << "</td>"
      << delta_cell(a, "delta_energy_j", true, 1, "%+.4g", false)
      << delta_cell(a, "delta_peak_memory_bytes", true, 1.0 / 1048576.0, "%+.1f", false)
      << delta_cell(a, "delta_throughput_per_s", false, 1, "%+.4g", false);
    h << "<td>" << number(get(a.columns, "mfu_mean"), "%.3f") << "</td><td>" << number(get(a.columns, "kwh_mean"), "%.3g")
      << "</td><td>" << number(get(a.columns, "gco2e_mean"), "%.3g") << "</td><td>"
      << (spec.target.empty() ? "–" : number(get(a.columns, "target_reached"), "%.0f") + "/" + std::to_string(a.seeds))
      << "</td><td class=\"k\">" << frontier_cell(a) << "</td></tr>\n";
  }
  h << "</table>\n";

  h << "<h2>Energy saved at &le; " << number(spec.tolerance, "%g") << " points " << markup_escape(metric)
    << " loss</h2>\n<p class=\"note\">Changes whose mean &Delta;" << markup_escape(metric) << " is at most "
    << number(spec.tolerance, "%g") << " points worse than the baseline's, by the energy of a whole training run "
       "they save (mean over seeds, paired).</p>\n";
  if (summary.ranked.empty()) {
    h << "<p id=\"ranked-none\">No change stays within the tolerance.</p>\n";
  } else {
    h << "<table id=\"ranked-table\">\n<tr><th>rank</th><th class=\"k\">change</th><th>energy saved</th><th>&Delta;"
      << markup_escape(metric) << " (points) [95% CI]</th><th>&Delta;energy to target (J)</th>"
      << "<th>&Delta;time to target (s)</th></tr>\n";
    for (size_t place = 0; place < summary.ranked.size(); ++place) {
      const ArmSummary& a = summary.arms[summary.ranked[place]];
      const double saved = get(a.columns, "energy_saved_pct");
      h << "<tr><td>" << place + 1 << "</td><td class=\"k\">" << markup_escape(a.name) << "</td><td class=\""
        << (saved > 0 ? "good" : saved < 0 ? "bad" : "") << "\">" << number(saved, "%+.1f") << "%</td>"
        << delta_cell(a, "delta_" + metric + "_pts", lower_better_quality, 1, "%+.2f", true)
        << delta_cell(a, "delta_energy_to_target_j", true, 1, "%+.4g", false)
        << delta_cell(a, "delta_time_to_target_s", true, 1, "%+.3g", false) << "</tr>\n";
    }
    h << "</table>\n";
  }

  const ScatterPlot plot = ablation_plot(spec, summary);
  h << "<h2>" << markup_escape(metric) << " against energy</h2>\n<div id=\"plots\">\n";
  if (!plot.points.empty())
    h << "<figure class=\"plot\" id=\"plot-" << markup_escape(metric) << "_energy\">\n" << render_svg(plot)
      << "<figcaption>one point per change (mean over seeds): frontier ringed and joined in red, ties (within the "
         "spread over seeds) ringed thinly, baseline a diamond</figcaption></figure>\n";
  h << "</div>\n";

  h << "<h2>Runs</h2>\n<table id=\"runs-table\">\n<tr><th class=\"k\">change</th><th>seed</th><th class=\"k\">status</th>"
    << "<th>" << markup_escape(metric) << "</th><th>training s</th><th>energy (J)</th><th>kWh</th>"
    << "<th>time to target (s)</th><th>energy to target (J)</th><th>peak memory (MiB)</th><th>throughput (/s)</th>"
    << "<th>MFU</th><th class=\"k\">folder</th></tr>\n";
  std::set<std::string> provenance;
  for (const AblationRun& r : runs) {
    const auto& m = r.metrics;
    h << "<tr><td class=\"k\">" << markup_escape(r.arm) << "</td><td>" << r.seed << "</td><td class=\"k\">"
      << markup_escape(r.status) << "</td><td>" << number(get(m, metric)) << "</td><td>" << number(get(m, "seconds"))
      << "</td><td>" << number(get(m, "energy_j")) << "</td><td>" << number(get(m, "kwh"), "%.3g") << "</td><td>"
      << number(get(m, "time_to_target_s")) << "</td><td>" << number(get(m, "energy_to_target_j")) << "</td><td>"
      << number(get(m, "peak_memory_bytes") / 1048576.0, "%.1f") << "</td><td>" << number(get(m, "throughput_per_s"))
      << "</td><td>" << number(get(m, "mfu"), "%.3f") << "</td><td class=\"k\">"
      << markup_escape(std::filesystem::path(r.dir).lexically_relative(dir).string()) << "</td></tr>\n";
    if (!r.energy_provenance.empty()) provenance.insert(r.energy_provenance);
  }
  h << "</table>\n<h2>Energy provenance</h2>\n<ul id=\"provenance\">\n";
  for (const auto& p : provenance) h << "<li>" << markup_escape(p) << "</li>\n";
  h << "</ul>\n<p class=\"note\">Energy is each run's energy.total (training, evaluations and any test pass); "
       "time and energy to target come from the first evaluation that met it. ablation.csv and metrics.json hold "
       "every figure with its range over seeds; docs/ABLATIONS.md defines them.</p>\n</body>\n</html>\n";
  return h.str();
}

}  // namespace ww::experiment
