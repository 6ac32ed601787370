#include "wattwise/experiment/progress.h"

#include <cstdio>
#include <utility>
#include <unistd.h>

#include "wattwise/core/error.h"

namespace ww::experiment {

Progress::Mode Progress::parse_mode(const std::string& text) {
  if (text == "bar") return Mode::Bar;
  if (text == "lines") return Mode::Lines;
  if (text == "none") return Mode::None;
  if (text == "auto") return isatty(STDERR_FILENO) ? Mode::Bar : Mode::Lines;
  fail("unknown progress mode '", text, "' (expected auto, bar, lines or none)");
}

Progress::Progress(Mode mode, int64_t total_steps, double line_interval_s, std::string rate_unit)
    : mode_(mode), total_(total_steps), line_interval_s_(line_interval_s), rate_unit_(std::move(rate_unit)),
      start_(std::chrono::steady_clock::now()), last_line_(start_) {}

static std::string format_duration(double seconds) {
  if (seconds < 0 || seconds > 1e7) return "?";
  char buffer[32];
  int s = int(seconds);
  if (s >= 3600) std::snprintf(buffer, sizeof buffer, "%dh%02dm", s / 3600, (s / 60) % 60);
  else std::snprintf(buffer, sizeof buffer, "%dm%02ds", s / 60, s % 60);
  return buffer;
}

void Progress::update(double epoch, int64_t step, double loss, double samples_per_s) {
  if (mode_ == Mode::None) return;
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double eta = step > first_step_ ? elapsed / double(step - first_step_) * double(total_ - step) : -1;
  if (mode_ == Mode::Bar) {
    const int width = 24;
    int filled = total_ > 0 ? int(double(width) * double(step) / double(total_)) : 0;
    std::string bar(size_t(std::min(filled, width)), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r[%s] epoch %.2f  step %lld/%lld  loss %.4f  %.1f %s  ETA %s   ",
                 bar.c_str(), epoch, (long long)step, (long long)total_, loss, samples_per_s, rate_unit_.c_str(),
                 format_duration(eta).c_str());
    std::fflush(stderr);
    bar_drawn_ = true;
  } else if (std::chrono::duration<double>(now - last_line_).count() >= line_interval_s_ || step == total_) {
    last_line_ = now;
    std::fprintf(stderr, "train: epoch %.2f step %lld/%lld loss %.4f %.1f %s elapsed %s ETA %s\n",
                 epoch, (long long)step, (long long)total_, loss, samples_per_s, rate_unit_.c_str(),
                 format_duration(elapsed).c_str(), format_duration(eta).c_str());
  }
}

void Progress::message(const std::string& line) {
  if (mode_ == Mode::None) return;
  if (bar_drawn_) std::fprintf(stderr, "\n");
  bar_drawn_ = false;
  std::fprintf(stderr, "%s\n", line.c_str());
}

void Progress::finish() {
  if (bar_drawn_) std::fprintf(stderr, "\n");
  bar_drawn_ = false;
}

}  // namespace ww::experiment
