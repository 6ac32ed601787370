// ops::cross_entropy_* (label smoothing, ignored rows, class weights, the padded forms),
// class_weight_sum and mse_*: the CPU reference against double precision, finite differences and
// values worked by hand (torch's weighted, smoothed CrossEntropyLoss among them), and every device ×
// dtype against the CPU reference (tolerances: tests/ops/op_test_util.h; losses are f32 for every
// dtype).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "ops/op_test_util.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/cross_entropy.h"
#include "wattwise/ops/elementwise.h"

using namespace ww;
using namespace ww::testing;

namespace {

// ---- the CPU reference ------------------------------------------------------------------------

// torch.nn.CrossEntropyLoss(reduction='none', label_smoothing=eps, ignore_index=-100), in double.
std::vector<double> cross_entropy_ref(const std::vector<double>& logits, const std::vector<int32_t>& labels,
                                      int64_t K, double eps) {
  std::vector<double> losses(labels.size(), 0.0);
  for (size_t n = 0; n < labels.size(); ++n) {
    if (labels[n] == -100) continue;
    double mx = -INFINITY;
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, logits[n * size_t(K) + size_t(k)]);
    double s = 0.0;
    for (int64_t k = 0; k < K; ++k) s += std::exp(logits[n * size_t(K) + size_t(k)] - mx);
    const double lse = mx + std::log(s);
    double smooth = 0.0;
    for (int64_t k = 0; k < K; ++k) smooth += lse - logits[n * size_t(K) + size_t(k)];
    const double nll = lse - logits[n * size_t(K) + size_t(labels[n])];
    losses[n] = (1.0 - eps) * nll + eps * smooth / double(K);
  }
  return losses;
}

// torch.nn.CrossEntropyLoss(weight=w, reduction='none', label_smoothing=eps, ignore_index=-100), in
// double: (1 − ε)·w[y]·(−log p[y]) + (ε/K)·Σ_k w[k]·(−log p[k]) (aten's
// cross_entropy_loss_label_smoothing: nll_loss with the weights, plus the smoothing term with each
// class's weight).
std::vector<double> weighted_cross_entropy_ref(const std::vector<double>& logits, const std::vector<int32_t>& labels,
                                               const std::vector<double>& w, double eps) {
  const size_t K = w.size();
  std::vector<double> losses(labels.size(), 0.0);
  for (size_t n = 0; n < labels.size(); ++n) {
    if (labels[n] == -100) continue;
    double mx = -INFINITY, s = 0.0;
    for (size_t k = 0; k < K; ++k) mx = std::max(mx, logits[n * K + k]);
    for (size_t k = 0; k < K; ++k) s += std::exp(logits[n * K + k] - mx);
    const double lse = mx + std::log(s);
    double smooth = 0.0;
    for (size_t k = 0; k < K; ++k) smooth += w[k] * (lse - logits[n * K + k]);
    const size_t y = size_t(labels[n]);
    losses[n] = (1.0 - eps) * w[y] * (lse - logits[n * K + y]) + eps / double(K) * smooth;
  }
  return losses;
}

// Three classes weighted 1, 2, 4; ε = 0.3. Row 0: logits (0, ln 3, 0), p = (1/5, 3/5, 1/5), label 1.
// Row 1 ignored. Row 2: logits (ln 2, 0, 0), p = (1/2, 1/4, 1/4), label 2. torch's mean divides the
// rows' sum by Σ w[y] = 2 + 4 = 6.
TEST(CrossEntropyCpu, WeightedByHandAsTorchDefinesIt) {
  const float ln2 = float(std::log(2.0)), ln3 = float(std::log(3.0));
  Tensor logits = Tensor::from_vector(std::vector<float>{0.0f, ln3, 0.0f, 9.0f, 9.0f, 9.0f, ln2, 0.0f, 0.0f}, {3, 3});
  Tensor labels = Tensor::from_vector(std::vector<int32_t>{1, -100, 2}, {3});
  Tensor weights = Tensor::from_vector(std::vector<float>{1.0f, 2.0f, 4.0f}, {3});
  Tensor sum = Tensor::empty({1}, DType::F32);
  ops::class_weight_sum(sum, labels, weights);
  EXPECT_EQ(sum.to_float_vector()[0], 6.0f);

  const double eps = 0.3;
  Tensor losses = Tensor::empty({3}, DType::F32);
  ops::cross_entropy_forward(losses, logits, labels, float(eps), weights);
  // Row 0: −log p = (ln 5, ln 5/3, ln 5); 0.7·w[1]·ln(5/3) + 0.1·(1·ln 5 + 2·ln(5/3) + 4·ln 5).
  const double row0 = 0.7 * 2 * std::log(5.0 / 3.0) + 0.1 * (5 * std::log(5.0) + 2 * std::log(5.0 / 3.0));
  // Row 2: −log p = (ln 2, ln 4, ln 4); 0.7·w[2]·ln 4 + 0.1·(1·ln 2 + 2·ln 4 + 4·ln 4).
  const double row2 = 0.7 * 4 * std::log(4.0) + 0.1 * (std::log(2.0) + 6 * std::log(4.0));
  const std::vector<float> l = losses.to_float_vector();
  EXPECT_NEAR(l[0], row0, 1e-6);
  EXPECT_EQ(l[1], 0.0f);
  EXPECT_NEAR(l[2], row2, 1e-6);
  // torch's reduction='mean': 0.7·(2·ln(5/3) + 4·ln 4)/6 + 0.1·(5 ln 5 + 2 ln(5/3) + ln 2 + 6 ln 4)/6.
  EXPECT_NEAR((l[0] + l[2]) / 6.0,
              0.7 * (2 * std::log(5.0 / 3.0) + 4 * std::log(4.0)) / 6 +
                  0.1 * (5 * std::log(5.0) + 2 * std::log(5.0 / 3.0) + std::log(2.0) + 6 * std::log(4.0)) / 6,
              1e-6);

  // The gradient of the mean: scale 1 divided on the device by Σ w[y] = 6. With W = Σ w = 7,
  // d[k] = (((1−ε)·w[y] + ε·W/K)·p[k] − (1−ε)·w[y]·[k==y] − ε·w[k]/K) / 6:
  //   row 0: (2.1·p − 1.4·[k==1] − 0.1·w) = (0.32, −0.34, 0.02);
  //   row 2: (3.5·p − 2.8·[k==2] − 0.1·w) = (1.65, 0.675, −2.325).
  Tensor dlogits = Tensor::empty({3, 3}, DType::F32);
  ops::cross_entropy_backward(dlogits, logits, labels, float(eps), 1.0f, weights, sum);
  const std::vector<float> g = dlogits.to_float_vector();
  const double want[9] = {0.32 / 6, -0.34 / 6, 0.02 / 6, 0, 0, 0, 1.65 / 6, 0.675 / 6, -2.325 / 6};
  for (size_t i = 0; i < 9; ++i) EXPECT_NEAR(g[i], want[i], 1e-7) << i;

  // Without smoothing: w[y]·(−log p[y]), and the gradient w[y]·(p − onehot) / Σ w[y].
  ops::cross_entropy_forward(losses, logits, labels, 0.0f, weights);
  EXPECT_NEAR(losses.to_float_vector()[0], 2 * std::log(5.0 / 3.0), 1e-6);
  EXPECT_NEAR(losses.to_float_vector()[2], 4 * std::log(4.0), 1e-6);
  ops::cross_entropy_backward(dlogits, logits, labels, 0.0f, 1.0f, weights, sum);
  const std::vector<float> g0 = dlogits.to_float_vector();
  EXPECT_NEAR(g0[0], 2 * 0.2 / 6, 1e-7);
  EXPECT_NEAR(g0[1], 2 * (0.6 - 1) / 6, 1e-7);
  EXPECT_NEAR(g0[8], 4 * (0.25 - 1) / 6, 1e-7);

  // Bad weights and divisors name the op and the argument; a bad label is an error here too.
  expect_error([&] { ops::cross_entropy_forward(losses, logits, labels, 0.0f, Tensor::from_vector(std::vector<float>{1, 2}, {2})); },
               {"cross_entropy_forward", "'class_weights'", "3 elements"});
  expect_error([&] { ops::cross_entropy_backward(dlogits, logits, labels, 0.0f, 1.0f, weights, Tensor::empty({2}, DType::F32)); },
               {"cross_entropy_backward", "'scale_divisor'", "1 elements"});
  expect_error([&] { ops::class_weight_sum(sum, Tensor::from_vector(std::vector<int32_t>{0, 3}, {2}), weights); },
               {"label 3", "row 1"});
}

TEST(CrossEntropyCpu, WeightedMatchesReferenceAndFiniteDifferences) {
  for (const auto& [N, K] : std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {9, 3}, {13, 257}}) {
    for (float eps : {0.0f, 0.1f, 1.0f}) {
      SCOPED_TRACE("N=" + std::to_string(N) + " K=" + std::to_string(K) + " eps=" + std::to_string(eps));
      Tensor logits = random_tensor({N, K}, 5, 3.0f);
      std::vector<int32_t> labels = random_ids(N, K, 6);
      if (N > 3) labels[2] = -100;
      std::vector<float> w(static_cast<size_t>(K));
      for (int64_t k = 0; k < K; ++k) w[size_t(k)] = 0.25f + float(k % 7) * 0.5f;
      const std::vector<double> wd(w.begin(), w.end());
      Tensor label_tensor = Tensor::from_vector(labels, {N}), weights = Tensor::from_vector(w, {K});
      Tensor losses = Tensor::empty({N}, DType::F32), sum = Tensor::empty({1}, DType::F32);
      ops::cross_entropy_forward(losses, logits, label_tensor, eps, weights);
      const std::vector<double> x = as_double(logits);
      expect_close(losses, weighted_cross_entropy_ref(x, labels, wd, eps), "losses");
      ops::class_weight_sum(sum, label_tensor, weights);
      double weight_sum = 0;
      for (int32_t y : labels)
        if (y != -100) weight_sum += wd[size_t(y)];
      EXPECT_NEAR(sum.to_float_vector()[0], weight_sum, 1e-6 * weight_sum);

      // The gradient of torch's mean, Σ loss / Σ w[y], against finite differences; the divisor on
      // the device gives what scale = 1/Σ w[y] gives.
      Tensor dlogits = random_tensor({N, K}, 7);
      ops::cross_entropy_backward(dlogits, logits, label_tensor, eps, 1.0f, weights, sum);
      const auto want = numeric_gradient(x, [&](const auto& v) {
        double total = 0.0;
        for (double l : weighted_cross_entropy_ref(v, labels, wd, eps)) total += l;
        return total / weight_sum;
      });
      expect_close(dlogits, want, "dlogits", 1e-4);
      Tensor scaled = Tensor::empty({N, K}, DType::F32);
      ops::cross_entropy_backward(scaled, logits, label_tensor, eps, 1.0f / sum.to_float_vector()[0], weights);
      expect_close(scaled, dlogits, "dlogits (scale instead of divisor)", 1e-6);
      // Fused and in place: the separate calls' bits.
      Tensor fused_losses = random_tensor({N}, 8), fused = random_tensor({N, K}, 9);
      ops::cross_entropy_forward_backward(fused_losses, fused, logits, label_tensor, eps, 1.0f, weights, sum);
      EXPECT_TRUE(same_bits(fused_losses, losses));
      EXPECT_TRUE(same_bits(fused, dlogits));
      Tensor in_place = logits.to(Device::cpu());
      ops::cross_entropy_backward(in_place, in_place, label_tensor, eps, 1.0f, weights, sum);
      EXPECT_TRUE(same_bits(in_place, dlogits));
      // Every weight 1 is the unweighted loss.
      Tensor ones = Tensor::from_vector(std::vector<float>(size_t(K), 1.0f), {K}), plain = Tensor::empty({N}, DType::F32);
      ops::cross_entropy_forward(losses, logits, label_tensor, eps, ones);
      ops::cross_entropy_forward(plain, logits, label_tensor, eps);
      expect_close(losses, as_double(plain), "all-ones weights", 1e-6);
    }
  }
}

TEST(CrossEntropyCpu, MatchesReferenceAndFiniteDifferences) {
  struct Case {
    int64_t N, K;
  };
  for (const Case& c : std::vector<Case>{{1, 1}, {1, 2}, {9, 3}, {13, 257}}) {
    for (float eps : {0.0f, 0.1f, 1.0f}) {
      SCOPED_TRACE("N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) + " eps=" + std::to_string(eps));
      Tensor logits = random_tensor({c.N, c.K}, 1, 3.0f);
      std::vector<int32_t> labels = random_ids(c.N, c.K, 2);
      if (c.N > 3) labels[2] = -100;  // an ignored row
      Tensor label_tensor = Tensor::from_vector(labels, {c.N});
      Tensor losses = Tensor::empty({c.N}, DType::F32);
      ops::cross_entropy_forward(losses, logits, label_tensor, eps);
      const std::vector<double> x = as_double(logits);
      expect_close(losses, cross_entropy_ref(x, labels, c.K, eps), "losses");
      if (c.N > 3) {
        EXPECT_EQ(losses.to_float_vector()[2], 0.0f);
      }

      // Backward: scale · d(loss[n])/d logits, checked against d(scale·Σ loss)/d logits.
      const float scale = 1.0f / float(ops::count_valid_labels(label_tensor));
      Tensor dlogits = random_tensor({c.N, c.K}, 3);
      ops::cross_entropy_backward(dlogits, logits, label_tensor, eps, scale);
      const auto want = numeric_gradient(x, [&](const auto& v) {
        double total = 0.0;
        for (double l : cross_entropy_ref(v, labels, c.K, eps)) total += l;
        return double(scale) * total;
      });
      expect_close(dlogits, want, "dlogits", 1e-4);  // finite differences of a log-sum-exp
      // In place (dlogits aliasing logits) gives the same bits.
      Tensor in_place = logits.to(Device::cpu());
      ops::cross_entropy_backward(in_place, in_place, label_tensor, eps, scale);
      EXPECT_TRUE(same_bits(in_place, dlogits));
    }
  }
}

// The fused call gives the separate calls' bits: losses and gradient, out of place and in place.
TEST(CrossEntropyCpu, ForwardBackwardEqualsTheSeparateCalls) {
  for (const auto& [N, K] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {9, 3}, {13, 257}, {3, 5003}}) {
    for (float eps : {0.0f, 0.1f}) {
      SCOPED_TRACE("N=" + std::to_string(N) + " K=" + std::to_string(K) + " eps=" + std::to_string(eps));
      Tensor logits = random_tensor({N, K}, 31, 4.0f);
      std::vector<int32_t> labels = random_ids(N, K, 32);
      if (N > 1) labels[1] = -100;
      labels[0] = int32_t(K - 1);
      Tensor label_tensor = Tensor::from_vector(labels, {N});
      const float scale = 0.375f;
      Tensor losses = Tensor::empty({N}, DType::F32), dlogits = Tensor::empty({N, K}, DType::F32);
      ops::cross_entropy_forward(losses, logits, label_tensor, eps);
      ops::cross_entropy_backward(dlogits, logits, label_tensor, eps, scale);
      Tensor fused_losses = random_tensor({N}, 33), fused_dlogits = random_tensor({N, K}, 34);
      ops::cross_entropy_forward_backward(fused_losses, fused_dlogits, logits, label_tensor, eps, scale);
      EXPECT_TRUE(same_bits(fused_losses, losses));
      EXPECT_TRUE(same_bits(fused_dlogits, dlogits));
      Tensor in_place = logits.to(Device::cpu()), in_place_losses = random_tensor({N}, 35);
      ops::cross_entropy_forward_backward(in_place_losses, in_place, in_place, label_tensor, eps, scale);
      EXPECT_TRUE(same_bits(in_place_losses, losses));
      EXPECT_TRUE(same_bits(in_place, dlogits));
    }
  }
  Tensor logits = random_tensor({3, 4}, 1), losses = Tensor::empty({3}, DType::F32);
  expect_error([&] { ops::cross_entropy_forward_backward(losses, logits, logits,
                                                          Tensor::from_vector(std::vector<int32_t>{0, 4, 1}, {3}),
                                                          0.0f, 1.0f); },
               {"label 4", "row 1", "[0, 4)"});
  expect_error([&] { ops::cross_entropy_forward_backward(losses, Tensor::empty({3, 5}, DType::F32), logits,
                                                          Tensor::from_vector(std::vector<int32_t>{0, 1, 1}, {3}),
                                                          0.0f, 1.0f); },
               {"cross_entropy_forward_backward", "'dlogits'"});
}

TEST(CrossEntropyCpu, ByHandWithSmoothingAndIgnoredRows) {
  // Row 0: logits (0, ln 3) → p = (1/4, 3/4), label 0. Row 1 ignored. Row 2: equal logits, label 1.
  const float ln3 = float(std::log(3.0));
  Tensor logits = Tensor::from_vector(std::vector<float>{0.0f, ln3, 5.0f, -5.0f, 2.0f, 2.0f}, {3, 2});
  Tensor labels = Tensor::from_vector(std::vector<int32_t>{0, -100, 1}, {3});
  EXPECT_EQ(ops::count_valid_labels(labels), 2);
  const double eps = 0.2;
  Tensor losses = Tensor::empty({3}, DType::F32);
  ops::cross_entropy_forward(losses, logits, labels, float(eps));
  // torch: (1 − ε)·(−log p_y) + ε·mean_k(−log p_k)
  const double row0 = (1 - eps) * std::log(4.0) + eps * 0.5 * (std::log(4.0) + std::log(4.0 / 3.0));
  const double row2 = std::log(2.0);
  const std::vector<float> l = losses.to_float_vector();
  EXPECT_NEAR(l[0], row0, 1e-6);
  EXPECT_EQ(l[1], 0.0f);
  EXPECT_NEAR(l[2], row2, 1e-6);
  // Gradient with the target (1 − ε)·onehot + ε/K, scale 1/2 for a mean over the two valid rows.
  Tensor dlogits = Tensor::empty({3, 2}, DType::F32);
  ops::cross_entropy_backward(dlogits, logits, labels, float(eps), 0.5f);
  const std::vector<float> g = dlogits.to_float_vector();
  EXPECT_NEAR(g[0], 0.5 * (0.25 - 0.9), 1e-7);
  EXPECT_NEAR(g[1], 0.5 * (0.75 - 0.1), 1e-7);
  EXPECT_EQ(g[2], 0.0f);
  EXPECT_EQ(g[3], 0.0f);
  EXPECT_NEAR(g[4], 0.5 * (0.5 - 0.1), 1e-7);
  EXPECT_NEAR(g[5], 0.5 * (0.5 - 0.9), 1e-7);
}

TEST(CrossEntropyCpu, IsStableForHugeLogits) {
  Tensor logits = Tensor::from_vector(std::vector<float>{1e30f, 0.0f, -1e30f, 1000.0f, 1001.0f, 999.0f}, {2, 3});
  Tensor labels = Tensor::from_vector(std::vector<int32_t>{0, 2}, {2});
  Tensor losses = Tensor::empty({2}, DType::F32), dlogits = Tensor::empty({2, 3}, DType::F32);
  ops::cross_entropy_forward(losses, logits, labels, 0.0f);
  ops::cross_entropy_backward(dlogits, logits, labels, 0.0f, 1.0f);
  const std::vector<float> l = losses.to_float_vector();
  EXPECT_EQ(l[0], 0.0f);
  const double lse = 1001.0 + std::log(std::exp(-1.0) + 1.0 + std::exp(-2.0));
  EXPECT_NEAR(l[1], lse - 999.0, 1e-5);
  for (float v : dlogits.to_float_vector()) EXPECT_TRUE(std::isfinite(v));
}

TEST(CrossEntropyCpu, RejectsBadLabelsAndShapes) {
  Tensor logits = random_tensor({3, 4}, 1), losses = Tensor::empty({3}, DType::F32);
  expect_error([&] { ops::cross_entropy_forward(losses, logits, Tensor::from_vector(std::vector<int32_t>{0, 4, 1}, {3}), 0.0f); },
               {"label 4", "row 1", "[0, 4)"});
  expect_error([&] { ops::cross_entropy_backward(logits, logits, Tensor::from_vector(std::vector<int32_t>{-1, 0, 1}, {3}), 0.0f, 1.0f); },
               {"label -1", "row 0"});
  expect_error([&] { ops::cross_entropy_forward(losses, logits, Tensor::from_vector(std::vector<int32_t>{0, 1}, {2}), 0.0f); },
               {"cross_entropy_forward", "'labels'", "3 elements"});
  expect_error([&] { ops::cross_entropy_forward(losses, logits, Tensor::from_vector(std::vector<float>{0, 1, 2}, {3}), 0.0f); },
               {"cross_entropy_forward", "'labels'", "i32"});
  expect_error([&] { ops::cross_entropy_forward(losses, logits, Tensor::from_vector(std::vector<int32_t>{0, 1, 2}, {3}), 1.5f); },
               {"cross_entropy_forward", "label_smoothing"});
}

TEST(CrossEntropyCpu, MeanSquaredErrorMatchesReference) {
  Tensor pred = random_tensor({11, 1}, 1), target = random_tensor({11}, 2);
  Tensor losses = Tensor::empty({11}, DType::F32), dpred = Tensor::empty({11, 1}, DType::F32);
  ops::mse_forward(losses, pred, target);
  ops::mse_backward(dpred, pred, target, 0.25f);
  const std::vector<double> p = as_double(pred), t = as_double(target);
  std::vector<double> want(11), want_d(11);
  for (size_t i = 0; i < 11; ++i) {
    want[i] = (p[i] - t[i]) * (p[i] - t[i]);
    want_d[i] = 0.25 * 2 * (p[i] - t[i]);
  }
  expect_close(losses, want, "mse");
  expect_close(dpred, want_d, "dpred");
  expect_error([&] { ops::mse_forward(losses, pred, random_tensor({10}, 3)); }, {"mse_forward", "'target'"});
}

// ---- every device and dtype against the CPU reference ---------------------------------------

class CrossEntropyTest : public DeviceDtypeTest {};

// Losses (f32 from float math on the GPU against the CPU's double: the fp32 tolerance on every GPU
// dtype), gradients (the activation dtype's tolerance), also in place (dlogits aliasing logits), at
// vocabularies up to GPT-2's; an ignored row (−100); the squared error.
TEST_P(CrossEntropyTest, MatchesTheCpuReference) {
  const std::vector<std::pair<int64_t, int64_t>> shapes =
      is_16bit() ? std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {9, 3}, {64, 1000}}
                 : std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {5, 3}, {9, 1000}, {4, 30522}, {33, 50257}};
  for (const auto& [N, K] : shapes) {
    for (float smoothing : {0.0f, 0.1f}) {
      SCOPED_TRACE(what("cross_entropy", {N, K}) + " eps=" + std::to_string(smoothing));
      Tensor logits = reference_input(random_cpu({N, K}, uint64_t(N * K), is_16bit() ? 3.0f : 4.0f));
      std::vector<int32_t> label_values = random_ids(N, K, uint64_t(N + K));
      if (N > 1) label_values[1] = -100;  // an ignored row
      Tensor labels = ints_cpu(label_values, {N}), labels_p = put_ints(label_values, {N});
      const int64_t valid = ops::count_valid_labels(labels);
      EXPECT_EQ(ops::count_valid_labels(labels_p), valid);
      Tensor losses = poisoned_cpu({N}), got_losses = nan_f32({N});
      Tensor logits_p = put(logits);
      ops::cross_entropy_forward(losses, logits, labels, smoothing);
      ops::cross_entropy_forward(got_losses, logits_p, labels_p, smoothing);
      expect_matches(got_losses, losses, "cross_entropy losses", f32_rtol());
      const float scale = 1.0f / float(valid);
      Tensor dlogits = poisoned_cpu({N, K}), got_dlogits = nan_tensor({N, K});
      ops::cross_entropy_backward(dlogits, logits, labels, smoothing, scale);
      ops::cross_entropy_backward(got_dlogits, logits_p, labels_p, smoothing, scale);
      expect_matches(got_dlogits, dlogits, "cross_entropy dlogits", rtol());
      ops::cross_entropy_backward(logits_p, logits_p, labels_p, smoothing, scale);  // in place
      expect_matches(logits_p, dlogits, "cross_entropy dlogits in place", rtol());
    }
  }
  for (int64_t N : {int64_t(1), int64_t(9), int64_t(64), int64_t(1001)}) {
    SCOPED_TRACE(what("mse", {N}));
    Tensor pred = reference_input(random_cpu({N}, 10)), target = random_cpu({N}, 11);
    Tensor losses = poisoned_cpu({N}), got_losses = nan_f32({N});
    ops::mse_forward(losses, pred, target);
    ops::mse_forward(got_losses, put(pred), put_f32(target));
    expect_matches(got_losses, losses, "mse losses", f32_rtol());
    Tensor dpred = poisoned_cpu({N}), got_dpred = nan_tensor({N});
    ops::mse_backward(dpred, pred, target, 0.25f);
    ops::mse_backward(got_dpred, put(pred), put_f32(target), 0.25f);
    expect_matches(got_dpred, dpred, "mse dpred", rtol());
  }
}

// Class weights (the global-memory kernel at every width, a vocabulary-wide row included: weighted
// rows never take the staged kernel), with the weight sum computed on the device and dividing the
// gradient there; fused and in place too.
TEST_P(CrossEntropyTest, WeightedMatchesTheCpuReference) {
  const std::vector<std::pair<int64_t, int64_t>> shapes =
      is_16bit() ? std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {9, 3}, {64, 1000}}
                 : std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {5, 3}, {9, 1000}, {4, 30522}};
  for (const auto& [N, K] : shapes) {
    for (float smoothing : {0.0f, 0.1f}) {
      SCOPED_TRACE(what("weighted cross_entropy", {N, K}) + " eps=" + std::to_string(smoothing));
      Tensor logits = reference_input(random_cpu({N, K}, uint64_t(N * K + 1), is_16bit() ? 3.0f : 4.0f));
      std::vector<int32_t> label_values = random_ids(N, K, uint64_t(N + K + 1));
      if (N > 1) label_values[1] = -100;
      std::vector<float> w(static_cast<size_t>(K));
      for (int64_t k = 0; k < K; ++k) w[size_t(k)] = 0.5f + float((k * 7) % 11) * 0.25f;
      Tensor labels = ints_cpu(label_values, {N}), labels_p = put_ints(label_values, {N});
      Tensor weights = Tensor::from_vector(w, {K}), weights_p = put_f32(weights);
      Tensor sum = poisoned_cpu({1}), sum_p = nan_f32({1});
      ops::class_weight_sum(sum, labels, weights);
      ops::class_weight_sum(sum_p, labels_p, weights_p);
      expect_matches(sum_p, sum, "class_weight_sum", f32_rtol());
      Tensor losses = poisoned_cpu({N}), got_losses = nan_f32({N}), logits_p = put(logits);
      ops::cross_entropy_forward(losses, logits, labels, smoothing, weights);
      ops::cross_entropy_forward(got_losses, logits_p, labels_p, smoothing, weights_p);
      expect_matches(got_losses, losses, "weighted losses", f32_rtol());
      Tensor dlogits = poisoned_cpu({N, K}), got_dlogits = nan_tensor({N, K});
      ops::cross_entropy_backward(dlogits, logits, labels, smoothing, 1.0f, weights, sum);
      ops::cross_entropy_backward(got_dlogits, logits_p, labels_p, smoothing, 1.0f, weights_p, sum_p);
      expect_matches(got_dlogits, dlogits, "weighted dlogits", rtol());
      Tensor fused_losses = nan_f32({N});
      ops::cross_entropy_forward_backward(fused_losses, logits_p, logits_p, labels_p, smoothing, 1.0f, weights_p,
                                          sum_p);  // in place
      expect_matches(fused_losses, losses, "weighted fused losses", f32_rtol());
      expect_matches(logits_p, dlogits, "weighted fused dlogits in place", rtol());
    }
  }
}

WW_INSTANTIATE_DEVICE_DTYPE_TEST(CrossEntropyTest, all_devices_and_dtypes());

// ---- CUDA ---------------------------------------------------------------------------------------

// Labels live in device memory: one outside [0, K) other than −100 is recorded and reported, also
// by count_valid_labels (which synchronises).
TEST(CrossEntropyCuda, BadLabelsAreReported) {
  WW_REQUIRE_CUDA();
  Tensor logits = to_gpu(random_cpu({3, 4}, 1)), losses = poisoned_gpu({3});
  Tensor bad = to_gpu(ints_cpu({0, -100, 7}, {3}));
  expect_error(
      [&] {
        ops::cross_entropy_forward(losses, logits, bad, 0.0f);
        ops::check_device_input_errors();
      },
      {"label 7", "row 2", "[0, 4)"});
#ifdef NDEBUG
  // count_valid_labels synchronises and reports pending errors (debug builds report at the launch).
  ops::cross_entropy_backward(poisoned_gpu({3, 4}), logits, bad, 0.0f, 1.0f);
  expect_error([&] { ops::count_valid_labels(bad); }, {"label 7", "row 2"});
#endif
}

// staged kernel's unaligned head/tail paths run), f32 and 16-bit logits, ignored rows, the first and last
// class as labels, label smoothing. The fused kernel gives the separate kernels' bits, also in place
// (dlogits aliasing logits, as gpt2.cpp calls it); a dlogits at another offset modulo 16 bytes than
// logits takes the scalar path with the same values.
TEST(CrossEntropyCuda, AtGpt2VocabFusedEqualsSeparate) {
  WW_REQUIRE_CUDA();
  const int64_t N = 40, K = 50257;
  std::vector<int32_t> label_values = random_ids(N, K, 77);
  label_values[0] = 0;
  label_values[1] = -100;
  label_values[2] = int32_t(K - 1);
  label_values[N - 1] = -100;
  Tensor labels = ints_cpu(label_values, {N}), labels_gpu = to_gpu(labels);
  const float scale = 1.0f / float(N - 2);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    for (float smoothing : {0.0f, 0.1f}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " eps=" + std::to_string(smoothing));
      // Logit scale 4: losses around 12, gradients spanning many orders of magnitude.
      Tensor logits = rounded_cpu(random_cpu({N, K}, 78, 4.0f), dtype), logits_gpu = gpu_as(logits, dtype);
      Tensor losses = poisoned_cpu({N}), dlogits = poisoned_cpu({N, K});
      ops::cross_entropy_forward(losses, logits, labels, smoothing);
      ops::cross_entropy_backward(dlogits, logits, labels, smoothing, scale);

      // Separate kernels against the CPU (f32 math vs the CPU's double: the fp32 tolerance; 16-bit
      // gradients add one rounding).
      const double grad_rtol = dtype == DType::F32 ? kRtol : 1e-2;
      Tensor losses_gpu = poisoned_gpu({N}), dlogits_gpu = Tensor::empty({N, K}, dtype, Device::cuda(0));
      ops::cross_entropy_forward(losses_gpu, logits_gpu, labels_gpu, smoothing);
      ops::cross_entropy_backward(dlogits_gpu, logits_gpu, labels_gpu, smoothing, scale);
      expect_close(losses_gpu, losses, "losses");
      expect_close(dlogits_gpu, dlogits, "dlogits", grad_rtol);
      const std::vector<float> separate_losses = from_gpu(losses_gpu), separate_dlogits = from_gpu(dlogits_gpu);
      for (int64_t k = 0; k < K; k += 997) {  // ignored rows: exactly 0
        EXPECT_EQ(separate_dlogits[size_t(1 * K + k)], 0.0f);
        EXPECT_EQ(separate_dlogits[size_t((N - 1) * K + k)], 0.0f);
      }
      EXPECT_EQ(separate_losses[1], 0.0f);

      auto expect_bits = [&](const Tensor& gpu, const std::vector<float>& want, const std::string& what) {
        const std::vector<float> got = from_gpu(gpu);
        ASSERT_EQ(got.size(), want.size()) << what;
        int64_t differing = 0;
        for (size_t i = 0; i < got.size(); ++i) differing += std::memcmp(&got[i], &want[i], sizeof(float)) != 0;
        EXPECT_EQ(differing, 0) << what << ": elements whose bits differ from the separate kernels'";
      };
      // Fused, out of place.
      Tensor fused_losses = poisoned_gpu({N}), fused_dlogits = Tensor::empty({N, K}, dtype, Device::cuda(0));
      ops::cross_entropy_forward_backward(fused_losses, fused_dlogits, logits_gpu, labels_gpu, smoothing, scale);
      expect_bits(fused_losses, separate_losses, "fused losses");
      expect_bits(fused_dlogits, separate_dlogits, "fused dlogits");
      // Fused, in place.
      Tensor in_place = gpu_as(logits, dtype), in_place_losses = poisoned_gpu({N});
      ops::cross_entropy_forward_backward(in_place_losses, in_place, in_place, labels_gpu, smoothing, scale);
      expect_bits(in_place_losses, separate_losses, "fused losses (in place)");
      expect_bits(in_place, separate_dlogits, "fused dlogits (in place)");
      // dlogits one element off logits' alignment: the scalar kernel, within the tolerance.
      Tensor buffer = Tensor::empty({N * K + 1}, dtype, Device::cuda(0));
      Tensor shifted = Tensor::view(static_cast<char*>(buffer.raw()) + dtype_size(dtype), {N, K}, dtype,
                                    Device::cuda(0));
      Tensor shifted_losses = poisoned_gpu({N});
      ops::cross_entropy_forward_backward(shifted_losses, shifted, logits_gpu, labels_gpu, smoothing, scale);
      expect_close(shifted_losses, losses, "losses (scalar path)");
      expect_close(shifted, dlogits, "dlogits (scalar path)", grad_rtol);
      ops::cross_entropy_backward(shifted, logits_gpu, labels_gpu, smoothing, scale);
      expect_close(shifted, dlogits, "backward dlogits (scalar path)", grad_rtol);
    }
  }
  // A bad label: recorded, and the fused kernel writes NaN for its loss and gradient row.
  Tensor logits = to_gpu(random_cpu({3, 1001}, 79)), losses = poisoned_gpu({3});
  Tensor bad = to_gpu(ints_cpu({0, 1001, -100}, {3}));
  expect_error(
      [&] {
        ops::cross_entropy_forward_backward(losses, logits, logits, bad, 0.1f, 1.0f);
        ops::check_device_input_errors();
      },
      {"label 1001", "row 1", "[0, 1001)"});
  const std::vector<float> l = from_gpu(losses), d = from_gpu(logits);
  EXPECT_TRUE(std::isfinite(l[0]));
  EXPECT_TRUE(std::isnan(l[1]));
  EXPECT_EQ(l[2], 0.0f);
  for (int64_t k = 0; k < 1001; ++k) {
    ASSERT_TRUE(std::isfinite(d[size_t(k)])) << k;
    ASSERT_TRUE(std::isnan(d[size_t(1001 + k)])) << k;
    ASSERT_EQ(d[size_t(2 * 1001 + k)], 0.0f) << k;
  }
}

// GPT-2's training call: rows padded to 50,304 (16-byte aligned, the staged kernel's vector path
// throughout), bf16, in place, a bad label among the rows. The padding columns are neither read nor
// written; the loss-only kernel (evaluation) gives the fused kernel's loss bits; and the values
// match the CPU on the unpadded logits.
TEST(CrossEntropyCuda, OnPaddedGpt2RowsMatchesCpu) {
  WW_REQUIRE_CUDA();
  const int64_t N = 300, K = 50257, ld = 50304;  // N > two rows per SM: CTAs reuse shared memory
  std::vector<int32_t> label_values = random_ids(N, K, 81);
  label_values[3] = -100;
  label_values[4] = int32_t(K - 1);
  Tensor labels = ints_cpu(label_values, {N}), labels_gpu = to_gpu(labels);
  const float scale = 1.0f / float(N - 1), smoothing = 0.1f;
  Tensor logits = rounded_cpu(random_cpu({N, K}, 82, 4.0f), DType::BF16);
  Tensor losses = poisoned_cpu({N}), dlogits = poisoned_cpu({N, K});
  ops::cross_entropy_forward(losses, logits, labels, smoothing);
  ops::cross_entropy_backward(dlogits, logits, labels, smoothing, scale);

  // The padded GPU buffer: each row's K logits, then 47 sentinel values that must survive.
  const std::vector<float> values = logits.to_float_vector();
  std::vector<float> padded(size_t(N * ld), 123.0f);
  for (int64_t n = 0; n < N; ++n)
    std::copy_n(values.begin() + n * K, K, padded.begin() + n * ld);
  Tensor buffer = gpu_as(Tensor::from_vector(padded, {N, ld}), DType::BF16);
  Tensor eval_losses = poisoned_gpu({N}), fused_losses = poisoned_gpu({N});
  ops::cross_entropy_forward_padded(eval_losses, buffer, K, labels_gpu, smoothing);
  ops::cross_entropy_forward_backward_padded(fused_losses, buffer, buffer, K, labels_gpu, smoothing, scale);
  expect_close(fused_losses, losses, "losses");
  const std::vector<float> eval = from_gpu(eval_losses), fused = from_gpu(fused_losses);
  for (int64_t n = 0; n < N; ++n)
    EXPECT_EQ(std::memcmp(&eval[size_t(n)], &fused[size_t(n)], sizeof(float)), 0) << "row " << n;
  const std::vector<float> got = from_gpu(buffer), want = dlogits.to_float_vector();
  int64_t off = 0, sentinel = 0;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      const float w = want[size_t(n * K + k)], g = got[size_t(n * ld + k)];
      off += std::fabs(g - w) > 1e-2 * std::fabs(w) + 1e-8;
    }
    for (int64_t k = K; k < ld; ++k) sentinel += got[size_t(n * ld + k)] != 123.0f;
  }
  EXPECT_EQ(off, 0) << "gradients outside 1e-2 relative";
  EXPECT_EQ(sentinel, 0) << "padding columns written";

  Tensor bad = to_gpu(ints_cpu({0, int32_t(K)}, {2}));
  Tensor two = gpu_as(Tensor::from_vector(std::vector<float>(padded.begin(), padded.begin() + 2 * ld), {2, ld}),
                      DType::BF16);
  Tensor two_losses = poisoned_gpu({2});
  expect_error(
      [&] {
        ops::cross_entropy_forward_backward_padded(two_losses, two, two, K, bad, 0.0f, 1.0f);
        ops::check_device_input_errors();
      },
      {"label 50257", "row 1", "[0, 50257)"});
  const std::vector<float> l = from_gpu(two_losses), d = from_gpu(two);
  EXPECT_TRUE(std::isfinite(l[0]));
  EXPECT_TRUE(std::isnan(l[1]));
  EXPECT_TRUE(std::isnan(d[size_t(ld)]) && std::isnan(d[size_t(ld + K - 1)]));
  EXPECT_EQ(d[size_t(ld + K)], 123.0f);
}

}  // namespace
