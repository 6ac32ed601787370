#pragma once
// Parity with Hugging Face transformers on a fixture folder (an HF model + expected.safetensors
// written by scripts/make_parity_fixtures.py): shared by the tests of every device
// (tests/models/sequence_classifier_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "wattwise/io/safetensors.h"
#include "wattwise/models/sequence_classifier.h"

namespace ww::testing {

using namespace ww::models;
namespace fs = std::filesystem;

inline Batch batch_from(const io::SafetensorsFile& expected, bool token_types) {
  Batch b;
  b.input_ids = expected.read("input_ids");
  b.attention_mask = expected.read("attention_mask");
  if (token_types) b.token_type_ids = expected.read("token_type_ids");
  b.labels = expected.read("labels");
  return b;
}

inline double norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s);
}

struct ParityResult {
  double max_logit_error = 0, loss_error = 0, worst_grad_error = 0;
  std::string worst_grad;
  int grads_compared = 0, grads_expected = 0;
  bool eval_matches_train = true;
};

// Loads a fixture folder (HF model + expected.safetensors), runs forward and backward in fp32 with
// dropout off, and measures the largest differences from transformers' numbers.
inline ParityResult measure_parity(const fs::path& dir, Device device = Device::cpu(),
                            AttentionKernel attention = AttentionKernel::Auto) {
  ParityResult r;
  SequenceClassifier model = SequenceClassifier::from_pretrained(dir, device);
  ExecutionOptions execution;
  execution.attention = attention;
  model.set_execution(execution);
  io::SafetensorsFile expected = io::SafetensorsFile::open(dir / "expected.safetensors");
  Batch batch = batch_from(expected, model.config().arch == Architecture::Bert);
  model.set_dropout(0, 0, 0);  // the fixture ran in eval mode
  std::vector<float> logits = model.forward(batch, /*training=*/true).to_float_vector();
  std::vector<float> ref_logits = expected.read("logits").to_float_vector();
  EXPECT_EQ(logits.size(), ref_logits.size());
  for (size_t i = 0; i < logits.size() && i < ref_logits.size(); ++i)
    r.max_logit_error = std::max(r.max_logit_error, double(std::abs(logits[i] - ref_logits[i])));
  r.loss_error = std::abs(double(model.loss()) - expected.read("loss").to_float_vector()[0]);

  model.zero_grad();
  model.backward();
  for (const auto& t : expected.tensors()) r.grads_expected += t.name.rfind("grad.", 0) == 0;
  // Relative error per tensor. The key-bias gradient is exactly zero in exact arithmetic (softmax
  // ignores a shift shared by all keys), so both sides hold only rounding noise there: tensors whose
  // reference norm is below 1e-6 of the largest (1e-9 against 0.9 in bert_tiny) are compared
  // relative to that largest norm instead.
  double largest = 0;
  for (const auto& p : model.parameters().all())
    largest = std::max(largest, norm(expected.read("grad." + p.name).to_float_vector()));
  for (const auto& p : model.parameters().all()) {
    std::vector<float> ours = model.parameters().grad(p.name).to_float_vector();
    std::vector<float> ref = expected.read("grad." + p.name).to_float_vector();
    EXPECT_EQ(ours.size(), ref.size()) << p.name;
    std::vector<float> diff(ours.size());
    for (size_t i = 0; i < ours.size(); ++i) diff[i] = ours[i] - ref[i];
    double ref_norm = norm(ref), err = norm(diff);
    double rel = ref_norm >= 1e-6 * largest ? err / ref_norm : err / largest;
    if (rel > r.worst_grad_error) r.worst_grad_error = rel, r.worst_grad = p.name;
    ++r.grads_compared;
  }
  std::vector<float> eval_logits = model.forward(batch, /*training=*/false).to_float_vector();
  r.eval_matches_train = eval_logits == logits;
  return r;
}

inline void expect_parity(const ParityResult& r, const std::string& label) {
  std::printf("%s: max |logit diff| %.3g, |loss diff| %.3g, worst relative gradient error %.3g (%s), "
              "%d/%d gradients compared\n", label.c_str(), r.max_logit_error, r.loss_error,
              r.worst_grad_error, r.worst_grad.c_str(), r.grads_compared, r.grads_expected);
  EXPECT_LE(r.max_logit_error, 1e-5) << label;
  EXPECT_LE(r.loss_error, 1e-5) << label;
  EXPECT_LE(r.worst_grad_error, 1e-4) << label << ": " << r.worst_grad;
  EXPECT_EQ(r.grads_compared, r.grads_expected) << label << ": every grad.* tensor is compared";
  EXPECT_TRUE(r.eval_matches_train) << label << ": inference mode gives the same logits";
}

}  // namespace ww::testing
