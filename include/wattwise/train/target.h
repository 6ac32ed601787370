#pragma once
// A training target (`train.target`): a condition on an evaluation metric, "accuracy>=0.88" or
// "perplexity<=30", whose first evaluation that meets it marks the time, energy, samples and steps
// to target (the studies' time- and energy-to-accuracy).
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace ww::train {

struct TrainingTarget {
  std::string metric;     // as evaluations name it ("mcc" is matthews_correlation)
  std::string op;         // ">=", "<=", ">" or "<"
  double value = 0;
  std::string text() const;  // "accuracy>=0.88"
  // Whether an evaluation's metrics meet it (an error, naming the metric, when they lack it).
  bool met_by(const nlohmann::json& metrics) const;
};

// "" → none. Otherwise <metric><op><number>, spaces allowed around each part, the metric one an
// evaluation reports (accuracy, precision, recall, f1, *_macro, matthews_correlation or mcc,
// pearson, spearman, mse, loss, perplexity). Errors start with `origin` and say what was expected.
std::optional<TrainingTarget> parse_training_target(const std::string& text, const std::string& origin);

}  // namespace ww::train
