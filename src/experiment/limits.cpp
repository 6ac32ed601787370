#include "wattwise/experiment/limits.h"

#include <charconv>

#include "wattwise/core/error.h"

namespace ww::experiment {

namespace {
std::string range_text(IntRange range) { return detail::concat("(", range.min, "..", range.max, ")"); }
}  // namespace

int64_t check_range(int64_t value, IntRange range, const std::string& what) {
  if (value < range.min || value > range.max) fail(what, " ", value, " is out of range ", range_text(range));
  return value;
}

std::optional<std::string> integer_text_error(std::string_view text, IntRange range) {
  std::string_view digits = text;
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  const bool whole = !digits.empty() && end == digits.data() + digits.size();
  if (ec == std::errc::result_out_of_range) {
    // All digits, just too many of them: out of range rather than "not an integer".
    bool all_digits = true;
    for (size_t i = (digits.front() == '-'); i < digits.size(); ++i) all_digits &= digits[i] >= '0' && digits[i] <= '9';
    if (all_digits) return detail::concat(text, " is out of range ", range_text(range));
  }
  if (ec != std::errc() || !whole) return detail::concat("'", text, "' is not an integer ", range_text(range));
  if (value < range.min || value > range.max) return detail::concat(text, " is out of range ", range_text(range));
  return std::nullopt;
}

}  // namespace ww::experiment
