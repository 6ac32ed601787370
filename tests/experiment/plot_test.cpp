// Scatter plots: PNG (signature, size in the IHDR chunk), SVG (well-formed XML with the axis
// labels, legend, frontier line and baseline), and errors on non-finite points.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

#include "test_util.h"
#include "wattwise/experiment/plot.h"
#include "wattwise/io/file.h"

namespace ww::experiment {
namespace {

ScatterPlot sample_plot() {
  ScatterPlot p;
  p.title = "energy vs accuracy by max_length";
  p.x_label = "energy per example (J)";
  p.y_label = "accuracy";
  p.points = {{0.50, 0.91, "max_length=128", "c000", true, true},
              {0.25, 0.88, "max_length=64", "c001", false, true},
              {0.30, 0.80, "max_length=64", "c002", false, false},
              {0.12, 0.70, "max_length=32", "c003", false, true}};
  return p;
}

uint32_t big_endian_u32(const std::string& s, size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 | uint32_t(uint8_t(s[at + 2])) << 8 |
         uint32_t(uint8_t(s[at + 3]));
}

TEST(Plot, PngHasSignatureAndSize) {
  ScatterPlot p = sample_plot();
  std::string png = render_png(p);
  ASSERT_GT(png.size(), 2000u);  // a blank image compresses far below this
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  EXPECT_EQ(big_endian_u32(png, 16), uint32_t(p.width));
  EXPECT_EQ(big_endian_u32(png, 20), uint32_t(p.height));
}

TEST(Plot, SvgHoldsLabelsLegendFrontierAndBaseline) {
  const std::string svg = render_svg(sample_plot());
  for (const char* piece : {"<svg", "</svg>", "energy per example (J)", ">accuracy</text>", "energy vs accuracy by max_length",
                            "max_length=128", "max_length=32", "Pareto frontier", "baseline", "frontier-line", "rotate(-90"})
    EXPECT_NE(svg.find(piece), std::string::npos) << piece;
  // The frontier line joins the 3 frontier points: 3 coordinate pairs.
  const size_t at = svg.find("class=\"frontier-line\"");
  ASSERT_NE(at, std::string::npos);
  const std::string points = svg.substr(svg.find("points=\"", at) + 8);
  EXPECT_EQ(std::count(points.begin(), points.begin() + long(points.find('"')), ','), 3);
}

TEST(Plot, SvgIsWellFormedXml) {
  if (std::system("python3 -c 'import xml.etree.ElementTree' 2>/dev/null") != 0) GTEST_SKIP() << "python3 is needed to parse the SVG";
  ScatterPlot p = sample_plot();
  p.points[1].group = "precision=<fp16> & \"fused\"";  // must be escaped
  const auto dir = std::filesystem::temp_directory_path() / ("ww_plot_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  write_plot(p, dir / "plot");
  EXPECT_TRUE(std::filesystem::exists(dir / "plot.png"));
  const std::string cmd = "python3 -c \"import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); "
                          "sys.exit(0 if r.tag.endswith('svg') and any('<fp16>' in (t.text or '') for t in r.iter()) else 1)\" " +
                          (dir / "plot.svg").string();
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  std::filesystem::remove_all(dir);
}

TEST(Plot, OnePointAndEqualValuesStillDraw) {
  ScatterPlot p = sample_plot();
  p.points.resize(1);
  EXPECT_NE(render_svg(p).find("baseline"), std::string::npos);
  p.points = {{1, 1, "a", "", false, true}, {1, 1, "a", "", false, true}};
  EXPECT_GT(render_png(p).size(), 1000u);
}

// A tie (on the frontier only within the spread) is ringed and labelled as one but not joined by
// the frontier line; the legend explains it only when a plot has one.
TEST(Plot, TiesAreRingedButNotJoined) {
  ScatterPlot p = sample_plot();
  EXPECT_EQ(render_svg(p).find("tie (within the spread)"), std::string::npos);
  p.points[2].on_frontier = p.points[2].tie = true;
  const std::string svg = render_svg(p);
  EXPECT_NE(svg.find("tie (within the spread)"), std::string::npos);
  EXPECT_NE(svg.find("c002 (tie)"), std::string::npos);
  const size_t at = svg.find("class=\"frontier-line\"");
  ASSERT_NE(at, std::string::npos);
  const std::string points = svg.substr(svg.find("points=\"", at) + 8);
  EXPECT_EQ(std::count(points.begin(), points.begin() + long(points.find('"')), ','), 3);  // still the 3 others
}

TEST(Plot, NonFiniteCoordinateIsAnError) {
  ScatterPlot p = sample_plot();
  p.points[2].x = std::nan("");
  testing::expect_error([&] { render_svg(p); }, {"c002", "non-finite"});
  testing::expect_error([&] { render_png(p); }, {"c002"});
}

}  // namespace
}  // namespace ww::experiment
