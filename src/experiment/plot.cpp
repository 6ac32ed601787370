#include "wattwise/experiment/plot.h"

#include <algorithm>
#ifdef WW_HAVE_CAIRO
#include <cairo.h>
#endif
#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>
#include <sstream>

#include "wattwise/core/error.h"
#include "wattwise/io/file.h"

namespace ww::experiment {
namespace {

struct Color {
  double r, g, b;
  std::string hex() const {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "#%02x%02x%02x", int(r * 255 + 0.5), int(g * 255 + 0.5), int(b * 255 + 0.5));
    return buffer;
  }
};
// Tableau 10: distinguishable, and readable by most colour-blind viewers.
const Color kPalette[] = {{0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173},
                          {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
                          {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}, {0.737, 0.741, 0.133},
                          {0.090, 0.745, 0.812}};
const Color kBlack{0, 0, 0}, kGrid{0.88, 0.88, 0.88}, kWhite{1, 1, 1}, kFrontier{0.80, 0.10, 0.10};

enum class Anchor { Start, Middle, End };

// The primitives the plot needs, drawn either as SVG elements or on a cairo context.
class Canvas {
 public:
  virtual ~Canvas() = default;
  virtual void line(double x1, double y1, double x2, double y2, Color c, double width, bool dashed = false) = 0;
  virtual void polyline(const std::vector<std::pair<double, double>>& pts, Color c, double width) = 0;
  virtual void circle(double cx, double cy, double r, Color fill, Color stroke, double stroke_width, bool filled = true) = 0;
  virtual void polygon(const std::vector<std::pair<double, double>>& pts, Color fill, Color stroke, double stroke_width) = 0;
  virtual void rect(double x, double y, double w, double h, Color fill, Color stroke) = 0;
  virtual void text(double x, double y, const std::string& s, double size, Anchor anchor, Color c,
                    bool bold = false, bool vertical = false, const std::string& css_class = "") = 0;
};


class SvgCanvas : public Canvas {
 public:
  SvgCanvas(int w, int h) {
    os_.precision(5);
    os_ << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\" viewBox=\"0 0 " << w
        << " " << h << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n";
  }
  std::string finish() { return os_.str() + "</svg>\n"; }
  void line(double x1, double y1, double x2, double y2, Color c, double width, bool dashed) override {
    os_ << "<line x1=\"" << x1 << "\" y1=\"" << y1 << "\" x2=\"" << x2 << "\" y2=\"" << y2 << "\" stroke=\"" << c.hex()
        << "\" stroke-width=\"" << width << "\"" << (dashed ? " stroke-dasharray=\"4 3\"" : "") << "/>\n";
  }
  void polyline(const std::vector<std::pair<double, double>>& pts, Color c, double width) override {
    os_ << "<polyline class=\"frontier-line\" fill=\"none\" stroke=\"" << c.hex() << "\" stroke-width=\"" << width << "\" points=\"";
    for (const auto& [x, y] : pts) os_ << x << "," << y << " ";
    os_ << "\"/>\n";
  }
  void circle(double cx, double cy, double r, Color fill, Color stroke, double sw, bool filled) override {
    os_ << "<circle cx=\"" << cx << "\" cy=\"" << cy << "\" r=\"" << r << "\" fill=\"" << (filled ? fill.hex() : "none")
        << "\" stroke=\"" << stroke.hex() << "\" stroke-width=\"" << sw << "\"/>\n";
  }
  void polygon(const std::vector<std::pair<double, double>>& pts, Color fill, Color stroke, double sw) override {
    os_ << "<polygon fill=\"" << fill.hex() << "\" stroke=\"" << stroke.hex() << "\" stroke-width=\"" << sw << "\" points=\"";
    for (const auto& [x, y] : pts) os_ << x << "," << y << " ";
    os_ << "\"/>\n";
  }
  void rect(double x, double y, double w, double h, Color fill, Color stroke) override {
    os_ << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << w << "\" height=\"" << h << "\" fill=\"" << fill.hex()
        << "\" stroke=\"" << stroke.hex() << "\"/>\n";
  }
  void text(double x, double y, const std::string& s, double size, Anchor anchor, Color c, bool bold, bool vertical,
            const std::string& css_class) override {
    const char* a = anchor == Anchor::Start ? "start" : anchor == Anchor::Middle ? "middle" : "end";
    os_ << "<text";
    if (!css_class.empty()) os_ << " class=\"" << css_class << "\"";
    os_ << " x=\"" << x << "\" y=\"" << y << "\" font-size=\"" << size << "\" text-anchor=\"" << a << "\" fill=\"" << c.hex()
        << "\"" << (bold ? " font-weight=\"bold\"" : "");
    if (vertical) os_ << " transform=\"rotate(-90 " << x << " " << y << ")\"";
    os_ << ">" << markup_escape(s) << "</text>\n";
  }

 private:
  std::ostringstream os_;
};

#ifdef WW_HAVE_CAIRO
class CairoCanvas : public Canvas {
 public:
  explicit CairoCanvas(cairo_t* cr) : cr_(cr) {}
  void line(double x1, double y1, double x2, double y2, Color c, double width, bool dashed) override {
    set(c);
    cairo_set_line_width(cr_, width);
    const double dash[] = {4, 3};
    cairo_set_dash(cr_, dash, dashed ? 2 : 0, 0);
    cairo_move_to(cr_, x1, y1);
    cairo_line_to(cr_, x2, y2);
    cairo_stroke(cr_);
    cairo_set_dash(cr_, dash, 0, 0);
  }
  void polyline(const std::vector<std::pair<double, double>>& pts, Color c, double width) override {
    if (pts.empty()) return;
    set(c);
    cairo_set_line_width(cr_, width);
    cairo_move_to(cr_, pts[0].first, pts[0].second);
    for (const auto& [x, y] : pts) cairo_line_to(cr_, x, y);
    cairo_stroke(cr_);
  }
  void circle(double cx, double cy, double r, Color fill, Color stroke, double sw, bool filled) override {
    cairo_new_path(cr_);
    cairo_arc(cr_, cx, cy, r, 0, 2 * M_PI);
    fill_and_stroke(fill, stroke, sw, filled);
  }
  void polygon(const std::vector<std::pair<double, double>>& pts, Color fill, Color stroke, double sw) override {
    cairo_new_path(cr_);
    for (const auto& [x, y] : pts) cairo_line_to(cr_, x, y);
    cairo_close_path(cr_);
    fill_and_stroke(fill, stroke, sw, true);
  }
  void rect(double x, double y, double w, double h, Color fill, Color stroke) override {
    cairo_new_path(cr_);
    cairo_rectangle(cr_, x, y, w, h);
    fill_and_stroke(fill, stroke, 1, true);
  }
  void text(double x, double y, const std::string& s, double size, Anchor anchor, Color c, bool bold, bool vertical,
            const std::string&) override {
    cairo_select_font_face(cr_, "sans-serif", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr_, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr_, s.c_str(), &e);
    const double shift = anchor == Anchor::Start ? 0 : anchor == Anchor::Middle ? e.x_advance / 2 : e.x_advance;
    cairo_save(cr_);
    cairo_translate(cr_, x, y);
    if (vertical) cairo_rotate(cr_, -M_PI / 2);
    set(c);
    cairo_move_to(cr_, -shift, 0);
    cairo_show_text(cr_, s.c_str());
    cairo_restore(cr_);
  }

 private:
  void set(Color c) { cairo_set_source_rgb(cr_, c.r, c.g, c.b); }
  void fill_and_stroke(Color fill, Color stroke, double sw, bool filled) {
    if (filled) {
      set(fill);
      cairo_fill_preserve(cr_);
    }
    set(stroke);
    cairo_set_line_width(cr_, sw);
    cairo_stroke(cr_);
  }
  cairo_t* cr_;
};
#endif  // WW_HAVE_CAIRO

// "Nice" tick positions (1, 2 or 5 times a power of ten) covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target) {
  const double raw = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

std::string tick_text(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g", v);
  return buffer;
}

// Data range with a margin; a single value gets a window around it.
std::pair<double, double> padded_range(double lo, double hi) {
  if (hi - lo <= std::fabs(hi) * 1e-12) {
    const double d = hi == 0 ? 1 : std::fabs(hi) * 0.1;
    return {lo - d, hi + d};
  }
  const double pad = (hi - lo) * 0.08;
  return {lo - pad, hi + pad};
}

void draw(const ScatterPlot& p, Canvas& c) {
  for (size_t i = 0; i < p.points.size(); ++i)
    if (!std::isfinite(p.points[i].x) || !std::isfinite(p.points[i].y))
      fail("plot '", p.title, "': point ", p.points[i].label.empty() ? std::to_string(i) : p.points[i].label,
           " has a non-finite coordinate (", p.points[i].x, ", ", p.points[i].y, ")");
  const double W = p.width, H = p.height;
  const double left = 90, right = W - 210, top = 50, bottom = H - 70;
  c.rect(0, 0, W, H, kWhite, kWhite);
  c.text(W / 2 - 60, 28, p.title, 17, Anchor::Middle, kBlack, true, false, "plot-title");

  double xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  if (!p.points.empty()) {
    xlo = xhi = p.points[0].x;
    ylo = yhi = p.points[0].y;
    for (const PlotPoint& q : p.points) {
      xlo = std::min(xlo, q.x), xhi = std::max(xhi, q.x);
      ylo = std::min(ylo, q.y), yhi = std::max(yhi, q.y);
    }
  }
  std::tie(xlo, xhi) = padded_range(xlo, xhi);
  std::tie(ylo, yhi) = padded_range(ylo, yhi);
  auto px = [&](double x) { return left + (x - xlo) / (xhi - xlo) * (right - left); };
  auto py = [&](double y) { return bottom - (y - ylo) / (yhi - ylo) * (bottom - top); };

  for (double t : nice_ticks(xlo, xhi, 6)) {
    c.line(px(t), top, px(t), bottom, kGrid, 1);
    c.line(px(t), bottom, px(t), bottom + 5, kBlack, 1);
    c.text(px(t), bottom + 19, tick_text(t), 11, Anchor::Middle, kBlack);
  }
  for (double t : nice_ticks(ylo, yhi, 6)) {
    c.line(left, py(t), right, py(t), kGrid, 1);
    c.line(left - 5, py(t), left, py(t), kBlack, 1);
    c.text(left - 8, py(t) + 4, tick_text(t), 11, Anchor::End, kBlack);
  }
  c.line(left, bottom, right, bottom, kBlack, 1.2);
  c.line(left, top, left, bottom, kBlack, 1.2);
  c.text((left + right) / 2, H - 22, p.x_label, 13, Anchor::Middle, kBlack, false, false, "x-label");
  c.text(24, (top + bottom) / 2, p.y_label, 13, Anchor::Middle, kBlack, false, true, "y-label");

  // Groups in order of first appearance get the palette's colours.
  std::map<std::string, size_t> group_index;
  std::vector<std::string> groups;
  for (const PlotPoint& q : p.points)
    if (group_index.emplace(q.group, groups.size()).second) groups.push_back(q.group);
  auto color_of = [&](const PlotPoint& q) { return kPalette[group_index[q.group] % 10]; };

  std::vector<const PlotPoint*> frontier;
  bool any_tie = false;
  for (const PlotPoint& q : p.points) {
    if (q.on_frontier && !q.tie) frontier.push_back(&q);
    any_tie = any_tie || (q.on_frontier && q.tie);
  }
  std::sort(frontier.begin(), frontier.end(), [](const PlotPoint* a, const PlotPoint* b) {
    return a->x != b->x ? a->x < b->x : a->y < b->y;
  });
  std::vector<std::pair<double, double>> line;
  for (const PlotPoint* q : frontier) line.emplace_back(px(q->x), py(q->y));
  if (line.size() > 1) c.polyline(line, kFrontier, 2);

  for (const PlotPoint& q : p.points) {
    const double x = px(q.x), y = py(q.y);
    if (q.baseline) {
      c.polygon({{x, y - 9}, {x + 9, y}, {x, y + 9}, {x - 9, y}}, color_of(q), kBlack, 1.5);
      c.text(x + 11, y - 9, "baseline", 11, Anchor::Start, kBlack, true);
    } else {
      c.circle(x, y, 5, color_of(q), kBlack, 0.6);
    }
    if (q.on_frontier) {
      c.circle(x, y, q.baseline ? 12 : 9, kWhite, kFrontier, q.tie ? 1 : 2, false);
      if (!q.label.empty() && !q.baseline)
        c.text(x + 10, y + 14, q.tie ? q.label + " (tie)" : q.label, 10, Anchor::Start, kFrontier);
    }
  }

  // Legend: one entry per group, then the frontier and baseline markers.
  double ly = top + 8;
  const double lx = right + 22;
  c.text(lx, ly, "legend", 12, Anchor::Start, kBlack, true, false, "legend-title");
  ly += 20;
  for (size_t g = 0; g < groups.size() && g < 16; ++g, ly += 20) {
    c.circle(lx + 6, ly - 4, 5, kPalette[g % 10], kBlack, 0.6);
    c.text(lx + 18, ly, groups[g].empty() ? "(all)" : groups[g], 11, Anchor::Start, kBlack);
  }
  if (groups.size() > 16) {
    c.text(lx + 18, ly, "... " + std::to_string(groups.size() - 16) + " more", 11, Anchor::Start, kBlack);
    ly += 20;
  }
  c.line(lx, ly - 4, lx + 12, ly - 4, kFrontier, 2);
  c.circle(lx + 6, ly - 4, 7, kWhite, kFrontier, 2, false);
  c.text(lx + 18, ly, "Pareto frontier", 11, Anchor::Start, kBlack);
  ly += 22;
  if (any_tie) {
    c.circle(lx + 6, ly - 4, 7, kWhite, kFrontier, 1, false);
    c.text(lx + 18, ly, "tie (within the spread)", 11, Anchor::Start, kBlack);
    ly += 22;
  }
  c.polygon({{lx + 6, ly - 12}, {lx + 14, ly - 4}, {lx + 6, ly + 4}, {lx - 2, ly - 4}}, kWhite, kBlack, 1.5);
  c.text(lx + 18, ly, "baseline", 11, Anchor::Start, kBlack);
}

#ifdef WW_HAVE_CAIRO
cairo_status_t append_bytes(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}
#endif  // WW_HAVE_CAIRO

}  // namespace

std::string markup_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_svg(const ScatterPlot& plot) {
  SvgCanvas canvas(plot.width, plot.height);
  draw(plot, canvas);
  return canvas.finish();
}

bool png_plots_available() {
#ifdef WW_HAVE_CAIRO
  return true;
#else
  return false;
#endif
}

std::string render_png(const ScatterPlot& plot) {
#ifndef WW_HAVE_CAIRO
  fail("plot '", plot.title, "': PNG needs cairo and this wattwise was built without it (apt-get install libcairo2-dev, ",
       "then rebuild); the SVG version is written");
#else
  // Validate (and fail) before touching cairo.
  SvgCanvas check(plot.width, plot.height);
  draw(plot, check);
  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, plot.width, plot.height);
  cairo_t* cr = cairo_create(surface);
  CairoCanvas canvas(cr);
  draw(plot, canvas);
  cairo_surface_flush(surface);
  std::string bytes;
  const cairo_status_t status = cairo_surface_write_to_png_stream(surface, append_bytes, &bytes);
  cairo_destroy(cr);
  cairo_surface_destroy(surface);
  if (status != CAIRO_STATUS_SUCCESS) fail("plot '", plot.title, "': cairo could not encode the PNG (", cairo_status_to_string(status), ")");
  return bytes;
#endif
}

void write_plot(const ScatterPlot& plot, const std::filesystem::path& stem) {
  io::write_file_atomic(stem.string() + ".svg", render_svg(plot));
  if (png_plots_available()) io::write_file_atomic(stem.string() + ".png", render_png(plot));
}

}  // namespace ww::experiment
