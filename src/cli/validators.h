#pragma once
// Checks of numeric flags with our own messages (CLI11's read "Value 0 not in range 0.000000 to
// 1.79e308" and said nothing of what the flag means). CLI11 prints "--flag: <message>" and exits 2;
// --help shows each range after the type ("--batch-size INT:1..1048576").
#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <string>

#include "wattwise/core/error.h"
#include "wattwise/experiment/limits.h"
#include "wattwise/io/hub.h"

namespace ww::cli {

// A whole integer within `range`: "--calibration: 0 is out of range (1..1000000): examples that
// calibrate the int8/fp8 input scales".
inline CLI::Validator integer_in(experiment::IntRange range, const std::string& meaning) {
  return CLI::Validator(
      [range, meaning](std::string& text) -> std::string {
        auto error = experiment::integer_text_error(text, range);
        return error ? *error + ": " + meaning : std::string();
      },
      std::to_string(range.min) + ".." + std::to_string(range.max), "integer_in");
}

// A finite number within [min, max] (either end open when asked): "--min-seconds: -1 is out of range
// [0, 86400]: seconds of measurement per configuration at least".
inline CLI::Validator number_in(double min, double max, const std::string& meaning, bool min_open = false,
                                bool max_open = false) {
  auto fmt = [](double v) {
    char buffer[32];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
    return std::string(buffer, end);
  };
  const std::string interval = std::string(min_open ? "(" : "[") + fmt(min) + ", " +
                               (std::isinf(max) ? std::string("inf") : fmt(max)) + (max_open ? ")" : "]");
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double v = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v))
          return "'" + text + "' is not a number " + interval + ": " + meaning;
        if (v < min || v > max || (min_open && v == min) || (max_open && v == max))
          return text + " is out of range " + interval + ": " + meaning;
        return std::string();
      },
      interval, "number_in");
}

// A model or tokenizer folder, or a Hugging Face hub id ("org/name[@revision]") found in the hub's
// local cache (io/hub.h): the option then holds the snapshot folder.
inline CLI::Validator model_folder() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          text = io::resolve_model_folder(text).string();
        } catch (const Error& e) {
          return e.what();
        }
        return std::string();
      },
      "", "model_folder");
}

}  // namespace ww::cli
