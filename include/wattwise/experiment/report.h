#pragma once
// report.html: one self-contained page (plots as inline SVG, no external files or scripts) with the
// baseline, the Pareto frontier, every configuration's saving against its run's baseline, the
// skipped configurations and why, and the energy provenance.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "wattwise/experiment/pareto.h"
#include "wattwise/experiment/plot.h"

namespace ww::experiment {

// The sweep's plots: for each axis, energy vs accuracy (frontier: accuracy max, J min) and energy
// vs latency (both min), points coloured by the axis value. File stems: energy_accuracy_<axis>,
// energy_latency_<axis> (axis "all" when the table has none). Plots whose metrics a row lacks are
// left out.
std::vector<std::pair<std::string, ScatterPlot>> sweep_plots(const ResultTable& table);

// The start of a report page, through its <h1>: the doctype, `title`, and the style the sweep and
// ablation reports share (tables, frontier and tie rows, plots, notes).
std::string report_page_start(const std::string& title);

// The HTML page for `table` (rows of one or more runs).
std::string render_report(const ResultTable& table, const std::string& title);

struct ReportOptions {
  std::vector<std::filesystem::path> run_dirs;
  std::filesystem::path output;  // "" = RUN_DIR/report.html for one run, else a new run folder
  std::filesystem::path runs_dir = "runs";
};
// `wattwise report RUN_DIR...`: returns the path of report.html written.
std::filesystem::path run_report(const ReportOptions& options);

}  // namespace ww::experiment
