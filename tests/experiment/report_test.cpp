// report.html from a table (no run folder): the frontier and configuration tables mark a tie with the
// configurations it ties with, the summary counts ties, and the plots' frontiers compare within the
// spread too.
#include <gtest/gtest.h>

#include <string>

#include "wattwise/experiment/pareto.h"
#include "wattwise/experiment/report.h"

namespace ww::experiment {
namespace {

ResultTable tied_table() {
  ResultTable t;
  t.axes = {"max_length"};
  t.metrics = {"accuracy", "latency_p50_ms", "joules_per_example", "joules_per_example_min", "joules_per_example_max"};
  auto row = [](const std::string& id, const std::string& length, double ms, double j, double lo, double hi) {
    ConfigRow r;
    r.run = "runs/x", r.config = id, r.knobs = {{"max_length", length}}, r.baseline = id == "c000";
    r.metrics = {{"accuracy", 0.8096}, {"latency_p50_ms", ms}, {"joules_per_example", j},
                 {"joules_per_example_min", lo}, {"joules_per_example_max", hi}};
    r.energy_provenance = "estimated: TDP";
    return r;
  };
  // c001 is beaten by c000 on the exact energy, within the spread of the passes; c002 beyond it.
  t.rows = {row("c000", "128", 0.039, 0.0213, 0.0209, 0.0224), row("c001", "64", 0.039, 0.0229, 0.0221, 0.0236),
            row("c002", "32", 0.039, 0.0300, 0.0290, 0.0310)};
  mark_frontier(t, parse_objectives("accuracy:max,joules_per_example:min,latency_p50_ms:min"));
  return t;
}

TEST(Report, MarksTiesInTablesAndSummary) {
  const ResultTable t = tied_table();
  ASSERT_EQ(t.rows[1].frontier(), "tie");
  const std::string html = render_report(t, "ties");
  EXPECT_NE(html.find("2 on the Pareto frontier"), std::string::npos);
  EXPECT_NE(html.find("1 of them a tie"), std::string::npos);
  EXPECT_NE(html.find("tie with c000 within the measured spread"), std::string::npos);
  EXPECT_NE(html.find("<tr class=\"frontier tie\">"), std::string::npos);
  // In the frontier table and in the table of every configuration.
  const size_t frontier_table = html.find("id=\"frontier-table\""), configs_table = html.find("id=\"configs-table\"");
  ASSERT_NE(frontier_table, std::string::npos);
  ASSERT_NE(configs_table, std::string::npos);
  EXPECT_LT(html.find("tie with c000", frontier_table), html.find("</table>", frontier_table));
  EXPECT_NE(html.find("tie with c000", configs_table), std::string::npos);
}

TEST(Report, PlotFrontiersCompareWithinTheSpread) {
  const ResultTable t = tied_table();
  bool found = false;
  for (const auto& [stem, plot] : sweep_plots(t)) {
    if (stem != "energy_accuracy_max_length") continue;
    found = true;
    ASSERT_EQ(plot.points.size(), 3u);
    EXPECT_TRUE(plot.points[0].on_frontier && !plot.points[0].tie);
    EXPECT_TRUE(plot.points[1].on_frontier && plot.points[1].tie);
    EXPECT_FALSE(plot.points[2].on_frontier);
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace ww::experiment
