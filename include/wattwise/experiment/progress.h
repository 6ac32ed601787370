#pragma once
// Training progress: a live one-line bar on a terminal (epoch, step, loss, samples/s, ETA), plain
// log lines elsewhere (at most one every `line_interval_s`), or nothing.
#include <chrono>
#include <cstdint>
#include <string>

namespace ww::experiment {

class Progress {
 public:
  enum class Mode { Bar, Lines, None };
  static Mode parse_mode(const std::string& text);  // auto | bar | lines | none (auto: bar on a tty)

  // rate_unit labels update()'s rate ("samples/s"; language modelling shows "tokens/s").
  Progress(Mode mode, int64_t total_steps, double line_interval_s = 10.0, std::string rate_unit = "samples/s");
  // A resumed run starts at `step`: the ETA counts the steps taken since.
  void start_at(int64_t step) { first_step_ = step; }
  void update(double epoch, int64_t step, double loss, double rate);
  void message(const std::string& line);  // a whole line (clears the bar first)
  void finish();

 private:
  Mode mode_;
  int64_t total_, first_step_ = 0;
  double line_interval_s_;
  std::string rate_unit_;
  std::chrono::steady_clock::time_point start_, last_line_;
  bool bar_drawn_ = false;
};

}  // namespace ww::experiment
