#pragma once
// Evaluation metrics, defined as scikit-learn (and scipy for Pearson/Spearman) define them, so
// numbers here and in a Python notebook agree:
//   accuracy            accuracy_score
//   precision/recall/f1 precision_score / recall_score / f1_score: average="binary" (pos_label 1)
//                       with two classes, average="macro" otherwise
//   *_macro             average="macro": unweighted mean over the labels present in the labels or
//                       the predictions (sklearn's default label set)
//   matthews_correlation matthews_corrcoef (binary and multiclass)
//   confusion_matrix    confusion_matrix: row = true label, column = predicted
// A ratio whose denominator is 0 is 0, with no warning (sklearn's default zero_division). Every
// classification metric is a function of the confusion matrix, so evaluation accumulates one
// ConfusionMatrix over its batches and calls classification_metrics at the end.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace ww::train {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int64_t num_classes);  // num_classes >= 2

  // Counts one (label, prediction) pair per element; both in [0, num_classes), else an error
  // naming the index and value (nothing is counted from a call that fails).
  void add(std::span<const int32_t> labels, std::span<const int32_t> predictions);

  int64_t num_classes() const { return num_classes_; }
  int64_t at(int64_t truth, int64_t predicted) const { return counts_[truth * num_classes_ + predicted]; }
  int64_t total() const { return total_; }

 private:
  int64_t num_classes_;
  int64_t total_ = 0;
  std::vector<int64_t> counts_;  // row-major [num_classes, num_classes]
};

struct ClassificationMetrics {
  int64_t num_examples = 0;
  int64_t num_classes = 0;
  double accuracy = 0;
  double precision = 0, recall = 0, f1 = 0;  // positive class (1) if binary, else macro
  double precision_macro = 0, recall_macro = 0, f1_macro = 0;
  double matthews_correlation = 0;
  std::vector<std::vector<int64_t>> confusion_matrix;  // [true label][predicted]
};

// Errors when the matrix is empty (no examples).
ClassificationMetrics classification_metrics(const ConfusionMatrix& confusion);
ClassificationMetrics classification_metrics(std::span<const int32_t> labels,
                                             std::span<const int32_t> predictions,
                                             int64_t num_classes);

// Regression (STS-B style): scipy.stats.pearsonr and spearmanr (average ranks for ties), and the
// mean squared error. A constant input makes Pearson and Spearman NaN, as scipy (JSON null).
// Inputs must have equal, non-zero length and finite values; errors name the index.
struct RegressionMetrics {
  int64_t num_examples = 0;
  double pearson = 0, spearman = 0, mse = 0;
};
RegressionMetrics regression_metrics(std::span<const float> targets,
                                     std::span<const float> predictions);

// Row-wise argmax of logits [rows, num_classes] (first maximum wins, as torch/numpy argmax).
std::vector<int32_t> argmax_rows(const float* logits, int64_t rows, int64_t num_classes);

// Example-weighted mean of per-batch mean losses (batches may differ in size). Accumulates in double.
class LossMeter {
 public:
  void add(double batch_mean_loss, int64_t batch_size);
  double mean() const;  // error when nothing was added
  int64_t count() const { return count_; }
  void reset() { sum_ = 0; count_ = 0; }

 private:
  double sum_ = 0;
  int64_t count_ = 0;
};

// Stable JSON keys (docs and metrics.json rely on them):
//   classification: num_examples, accuracy, precision, recall, f1, precision_macro, recall_macro,
//                   f1_macro, matthews_correlation, confusion_matrix ([[...]] rows = true label)
//   regression:     num_examples, pearson, spearman, mse
// NaN is written as null.
nlohmann::json to_json(const ClassificationMetrics& metrics);
nlohmann::json to_json(const RegressionMetrics& metrics);

// For early stopping and best-checkpoint selection: whether a larger value of the metric named
// `name` (one of the keys above, or "loss") is better. An unknown name is an error listing them.
bool higher_is_better(std::string_view name);

}  // namespace ww::train
