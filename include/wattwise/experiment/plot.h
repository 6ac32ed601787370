#pragma once
// Scatter plots of sweep results: one drawing routine, two outputs: SVG written by our code (text
// stays text, so the report can inline it and tests can read the labels) and PNG through cairo.
#include <filesystem>
#include <string>
#include <vector>

namespace ww::experiment {

struct PlotPoint {
  double x = 0, y = 0;
  std::string group;         // legend entry (colour), e.g. "max_length=32"
  std::string label;         // short tag drawn next to frontier points, e.g. "c003"
  bool baseline = false;     // drawn as a large diamond, annotated "baseline"
  bool on_frontier = false;  // ringed and connected (in x order) by the frontier line
  bool tie = false;          // on the frontier only within the measured spread: ringed thinly, not connected
};

struct ScatterPlot {
  std::string title;
  std::string x_label, y_label;  // with units, e.g. "energy per example (J)"
  std::vector<PlotPoint> points;
  int width = 800, height = 540;  // pixels (SVG user units)
};

// Escapes &, <, > and " for SVG and HTML text and attribute values (the report uses it too).
std::string markup_escape(const std::string& s);
// A standalone SVG document (UTF-8). Errors on non-finite coordinates, naming the point.
std::string render_svg(const ScatterPlot& plot);
// Whether this build has cairo, which draws the PNG versions.
bool png_plots_available();
// PNG bytes, drawn by cairo with the same layout (an error in a build without cairo).
std::string render_png(const ScatterPlot& plot);
// Writes <stem>.svg and, when cairo is available, <stem>.png (atomically).
void write_plot(const ScatterPlot& plot, const std::filesystem::path& stem);

}  // namespace ww::experiment
