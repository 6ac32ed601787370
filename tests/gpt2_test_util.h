#pragma once
// GPT-2 parity with Hugging Face transformers on tests/fixtures/gpt2_tiny (written by
// scripts/make_gpt2_fixtures.py), for tests/models/gpt2_test.cpp on every device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "wattwise/io/safetensors.h"
#include "wattwise/models/gpt2.h"

namespace ww::testing {

using namespace ww::models;
namespace fs = std::filesystem;

inline fs::path gpt2_fixture_dir() { return fs::path(WW_SOURCE_DIR) / "tests/fixtures/gpt2_tiny"; }

inline Batch gpt2_batch(const io::SafetensorsFile& expected, bool labels) {
  Batch b;
  b.input_ids = expected.read("input_ids");
  b.attention_mask = expected.read("attention_mask");
  if (labels) b.labels = expected.read("labels");
  return b;
}

inline double l2(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s);
}

// Our gradient of a parameter in the file's layout (Conv1D weights transposed back to [in, out]).
inline std::vector<float> gradient_in_hf_layout(const ParameterStore& store, const Parameter& p) {
  std::vector<float> g = store.grad(p.name).to_float_vector();
  const bool conv1d = p.shape.size() == 2 && p.name.find(".h.") != std::string::npos;
  if (!conv1d) return g;
  const int64_t out = p.shape[0], in = p.shape[1];
  std::vector<float> t(g.size());
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) t[size_t(i * out + o)] = g[size_t(o * in + i)];
  return t;
}

struct Gpt2Parity {
  double max_logit_error = 0, loss_error = 0, worst_grad_error = 0;
  std::string worst_grad;
  int grads_compared = 0, grads_expected = 0;
};

// Runs the fixture batch on `model` (dropout off): logits without labels, then loss and gradients.
inline Gpt2Parity measure_gpt2_parity(Gpt2LMHeadModel& model) {
  Gpt2Parity r;
  io::SafetensorsFile expected = io::SafetensorsFile::open(gpt2_fixture_dir() / "expected.safetensors");
  model.set_dropout(0, 0);
  std::vector<float> logits = model.forward(gpt2_batch(expected, false), /*training=*/false).to_float_vector();
  std::vector<float> ref_logits = expected.read("logits").to_float_vector();
  EXPECT_EQ(logits.size(), ref_logits.size());
  for (size_t i = 0; i < logits.size() && i < ref_logits.size(); ++i)
    r.max_logit_error = std::max(r.max_logit_error, double(std::abs(logits[i] - ref_logits[i])));

  model.zero_grad();
  Tensor none = model.forward(gpt2_batch(expected, true), /*training=*/true);
  EXPECT_FALSE(none.defined()) << "forward with labels returns no logits";
  r.loss_error = std::abs(double(model.loss()) - expected.read("loss").to_float_vector()[0]);
  model.backward();
  for (const auto& t : expected.tensors()) r.grads_expected += t.name.rfind("grad.", 0) == 0;
  double largest = 0;
  for (const auto& p : model.parameters().all())
    largest = std::max(largest, l2(expected.read("grad." + p.name).to_float_vector()));
  for (const auto& p : model.parameters().all()) {
    std::vector<float> ours = gradient_in_hf_layout(model.parameters(), p);
    std::vector<float> ref = expected.read("grad." + p.name).to_float_vector();
    EXPECT_EQ(ours.size(), ref.size()) << p.name;
    std::vector<float> diff(ours.size());
    for (size_t i = 0; i < ours.size() && i < ref.size(); ++i) diff[i] = ours[i] - ref[i];
    // As in parity_util.h: a near-zero reference gradient (the key bias: softmax ignores a shift
    // shared by all keys) is compared relative to the largest gradient norm.
    const double ref_norm = l2(ref), err = l2(diff);
    const double rel = ref_norm >= 1e-6 * largest ? err / ref_norm : err / largest;
    if (rel > r.worst_grad_error) r.worst_grad_error = rel, r.worst_grad = p.name;
    ++r.grads_compared;
  }
  return r;
}

inline void expect_gpt2_parity(const Gpt2Parity& r, const std::string& label, double logit_tol = 1e-5,
                               double loss_tol = 1e-5, double grad_tol = 1e-4) {
  std::printf("%s: max |logit diff| %.3g, |loss diff| %.3g, worst relative gradient error %.3g (%s), "
              "%d/%d gradients compared\n", label.c_str(), r.max_logit_error, r.loss_error, r.worst_grad_error,
              r.worst_grad.c_str(), r.grads_compared, r.grads_expected);
  EXPECT_LE(r.max_logit_error, logit_tol) << label;
  EXPECT_LE(r.loss_error, loss_tol) << label;
  EXPECT_LE(r.worst_grad_error, grad_tol) << label << ": " << r.worst_grad;
  EXPECT_EQ(r.grads_compared, r.grads_expected) << label << ": every grad.* tensor is compared";
}

inline std::vector<int32_t> int_vector(const Tensor& t) {
  return std::vector<int32_t>(t.data<int32_t>(), t.data<int32_t>() + t.numel());
}

}  // namespace ww::testing
