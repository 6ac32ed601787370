#include "wattwise/train/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "wattwise/core/error.h"

namespace ww::train {
namespace {

double ratio(double numerator, double denominator) {
  return denominator == 0 ? 0.0 : numerator / denominator;  // sklearn's zero_division default
}

struct ClassScores {
  double precision, recall, f1;
};

ClassScores class_scores(int64_t tp, int64_t predicted, int64_t actual) {
  // F1 as sklearn computes it from counts: 2·tp / (actual + predicted).
  return {ratio(double(tp), double(predicted)), ratio(double(tp), double(actual)),
          ratio(2.0 * double(tp), double(actual + predicted))};
}

void check_finite(std::span<const float> values, const char* what) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      fail("regression metrics: ", what, "[", i, "] = ", values[i], " is not a finite number");
}

// Pearson correlation as scipy.stats.pearsonr: centred, normalised, dot product, clipped to [-1, 1];
// NaN when either input is constant.
double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = double(x.size());
  double mean_x = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double mean_y = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxx = 0, syy = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double dx = x[i] - mean_x, dy = y[i] - mean_y;
    sxx += dx * dx;
    syy += dy * dy;
    sxy += dx * dy;
  }
  if (sxx == 0 || syy == 0) return std::numeric_limits<double>::quiet_NaN();
  return std::clamp(sxy / (std::sqrt(sxx) * std::sqrt(syy)), -1.0, 1.0);
}

// 1-based ranks, ties sharing their average rank (scipy.stats.rankdata(method="average")).
std::vector<double> average_ranks(std::span<const float> values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    double rank = (double(i) + double(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

// nlohmann writes NaN as null already; this makes that explicit and independent of its version.
nlohmann::json number(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

}  // namespace

ConfusionMatrix::ConfusionMatrix(int64_t num_classes) : num_classes_(num_classes) {
  if (num_classes < 2)
    fail("classification metrics: num_classes = ", num_classes,
         ": expected 2 or more (one output is regression)");
  counts_.assign(size_t(num_classes * num_classes), 0);
}

void ConfusionMatrix::add(std::span<const int32_t> labels, std::span<const int32_t> predictions) {
  if (labels.size() != predictions.size())
    fail("classification metrics: ", labels.size(), " labels but ", predictions.size(),
         " predictions");
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes_)
      fail("classification metrics: label[", i, "] = ", labels[i], " is outside [0, ",
           num_classes_, ")");
    if (predictions[i] < 0 || predictions[i] >= num_classes_)
      fail("classification metrics: prediction[", i, "] = ", predictions[i], " is outside [0, ",
           num_classes_, ")");
  }
  for (size_t i = 0; i < labels.size(); ++i) ++counts_[size_t(labels[i] * num_classes_ + predictions[i])];
  total_ += int64_t(labels.size());
}

ClassificationMetrics classification_metrics(const ConfusionMatrix& c) {
  const int64_t k = c.num_classes();
  if (c.total() == 0) fail("classification metrics: no examples to score");
  std::vector<int64_t> actual(size_t(k), 0), predicted(size_t(k), 0);
  int64_t correct = 0;
  for (int64_t t = 0; t < k; ++t)
    for (int64_t p = 0; p < k; ++p) {
      actual[size_t(t)] += c.at(t, p);
      predicted[size_t(p)] += c.at(t, p);
      if (t == p) correct += c.at(t, p);
    }

  ClassificationMetrics m;
  m.num_examples = c.total();
  m.num_classes = k;
  m.accuracy = double(correct) / double(c.total());

  // Macro: mean over the labels that occur in the labels or the predictions.
  int64_t present = 0;
  for (int64_t i = 0; i < k; ++i) {
    if (actual[size_t(i)] == 0 && predicted[size_t(i)] == 0) continue;
    ClassScores s = class_scores(c.at(i, i), predicted[size_t(i)], actual[size_t(i)]);
    m.precision_macro += s.precision;
    m.recall_macro += s.recall;
    m.f1_macro += s.f1;
    ++present;
  }
  m.precision_macro /= double(present);
  m.recall_macro /= double(present);
  m.f1_macro /= double(present);

  if (k == 2) {
    ClassScores s = class_scores(c.at(1, 1), predicted[1], actual[1]);
    m.precision = s.precision;
    m.recall = s.recall;
    m.f1 = s.f1;
  } else {
    m.precision = m.precision_macro;
    m.recall = m.recall_macro;
    m.f1 = m.f1_macro;
  }

  // Matthews correlation, multiclass form (Gorodkin's R_K), as sklearn's matthews_corrcoef.
  const double n = double(c.total());
  double dot_tp = 0, dot_pp = 0, dot_tt = 0;
  for (int64_t i = 0; i < k; ++i) {
    dot_tp += double(actual[size_t(i)]) * double(predicted[size_t(i)]);
    dot_pp += double(predicted[size_t(i)]) * double(predicted[size_t(i)]);
    dot_tt += double(actual[size_t(i)]) * double(actual[size_t(i)]);
  }
  double cov_ytyp = double(correct) * n - dot_tp;
  double cov_ypyp = n * n - dot_pp;
  double cov_ytyt = n * n - dot_tt;
  double denominator = cov_ypyp * cov_ytyt;
  m.matthews_correlation = denominator == 0 ? 0.0 : cov_ytyp / std::sqrt(denominator);

  m.confusion_matrix.assign(size_t(k), std::vector<int64_t>(size_t(k), 0));
  for (int64_t t = 0; t < k; ++t)
    for (int64_t p = 0; p < k; ++p) m.confusion_matrix[size_t(t)][size_t(p)] = c.at(t, p);
  return m;
}

ClassificationMetrics classification_metrics(std::span<const int32_t> labels,
                                             std::span<const int32_t> predictions,
                                             int64_t num_classes) {
  ConfusionMatrix c(num_classes);
  c.add(labels, predictions);
  return classification_metrics(c);
}

RegressionMetrics regression_metrics(std::span<const float> targets,
                                     std::span<const float> predictions) {
  if (targets.size() != predictions.size())
    fail("regression metrics: ", targets.size(), " targets but ", predictions.size(),
         " predictions");
  if (targets.empty()) fail("regression metrics: no examples to score");
  check_finite(targets, "target");
  check_finite(predictions, "prediction");
  RegressionMetrics m;
  m.num_examples = int64_t(targets.size());
  std::vector<double> x(targets.begin(), targets.end()), y(predictions.begin(), predictions.end());
  double squared = 0;
  for (size_t i = 0; i < x.size(); ++i) squared += (y[i] - x[i]) * (y[i] - x[i]);
  m.mse = squared / double(x.size());
  m.pearson = pearson(x, y);
  m.spearman = pearson(average_ranks(targets), average_ranks(predictions));
  return m;
}

std::vector<int32_t> argmax_rows(const float* logits, int64_t rows, int64_t num_classes) {
  if (rows < 0 || num_classes < 1)
    fail("argmax_rows: ", rows, " rows of ", num_classes, " classes");
  std::vector<int32_t> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = logits + r * num_classes;
    int64_t best = 0;
    for (int64_t j = 1; j < num_classes; ++j)
      if (row[j] > row[best]) best = j;  // strict: the first maximum wins; NaN never wins
    out[size_t(r)] = int32_t(best);
  }
  return out;
}

void LossMeter::add(double batch_mean_loss, int64_t batch_size) {
  if (batch_size < 0) fail("loss meter: batch size ", batch_size, " is negative");
  sum_ += batch_mean_loss * double(batch_size);
  count_ += batch_size;
}

double LossMeter::mean() const {
  if (count_ == 0) fail("loss meter: no examples were added");
  return sum_ / double(count_);
}

nlohmann::json to_json(const ClassificationMetrics& m) {
  return {{"num_examples", m.num_examples},
          {"accuracy", number(m.accuracy)},
          {"precision", number(m.precision)},
          {"recall", number(m.recall)},
          {"f1", number(m.f1)},
          {"precision_macro", number(m.precision_macro)},
          {"recall_macro", number(m.recall_macro)},
          {"f1_macro", number(m.f1_macro)},
          {"matthews_correlation", number(m.matthews_correlation)},
          {"confusion_matrix", m.confusion_matrix}};
}

nlohmann::json to_json(const RegressionMetrics& m) {
  return {{"num_examples", m.num_examples},
          {"pearson", number(m.pearson)},
          {"spearman", number(m.spearman)},
          {"mse", number(m.mse)}};
}

bool higher_is_better(std::string_view name) {
  static const char* const higher[] = {"accuracy", "precision", "recall", "f1",
                                       "precision_macro", "recall_macro", "f1_macro",
                                       "matthews_correlation", "pearson", "spearman"};
  static const char* const lower[] = {"loss", "mse"};
  for (const char* h : higher)
    if (name == h) return true;
  for (const char* l : lower)
    if (name == l) return false;
  fail("unknown metric '", name, "': expected one of accuracy, precision, recall, f1, "
       "precision_macro, recall_macro, f1_macro, matthews_correlation, pearson, spearman, mse, loss");
}

}  // namespace ww::train
