#include "wattwise/train/target.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "wattwise/core/error.h"
#include "wattwise/train/trainer.h"

namespace ww::train {

namespace {

const char* const kMetrics[] = {"accuracy",     "precision", "recall",   "f1",  "precision_macro",
                                "recall_macro", "f1_macro",  "matthews_correlation", "mcc", "pearson",
                                "spearman",     "mse",       "loss",     "perplexity"};

std::string trimmed(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

}  // namespace

std::string TrainingTarget::text() const {
  char number[32];
  std::snprintf(number, sizeof number, "%.17g", value);
  return metric + op + number;
}

bool TrainingTarget::met_by(const nlohmann::json& metrics) const {
  const double v = metric_value(metrics, metric);
  if (op == ">=") return v >= value;
  if (op == "<=") return v <= value;
  if (op == ">") return v > value;
  return v < value;
}

std::optional<TrainingTarget> parse_training_target(const std::string& text, const std::string& origin) {
  const std::string t = trimmed(text);
  if (t.empty()) return std::nullopt;
  const size_t at = t.find_first_of("<>");
  auto expected = [&](const std::string& what) {
    fail(origin, " '", text, "': ", what, " (expected <metric><op><number>, op one of >= <= > <, e.g. accuracy>=0.88)");
  };
  if (at == std::string::npos) expected("no comparison");
  TrainingTarget target;
  target.metric = trimmed(t.substr(0, at));
  const bool or_equal = at + 1 < t.size() && t[at + 1] == '=';
  target.op = std::string(1, t[at]) + (or_equal ? "=" : "");
  const std::string number = trimmed(t.substr(at + target.op.size()));
  bool known = false;
  for (const char* m : kMetrics) known = known || target.metric == m;
  if (!known)
    expected("unknown metric '" + target.metric +
             "': one of accuracy, precision, recall, f1, precision_macro, recall_macro, f1_macro, "
             "matthews_correlation (mcc), pearson, spearman, mse, loss, perplexity");
  char* end = nullptr;
  target.value = std::strtod(number.c_str(), &end);
  if (number.empty() || end != number.c_str() + number.size() || !std::isfinite(target.value))
    expected("'" + number + "' is not a finite number");
  return target;
}

}  // namespace ww::train
