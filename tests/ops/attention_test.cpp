// ops::attention_forward / attention_backward, the reference path (GEMM, masked softmax, dropout,
// GEMM): the CPU reference against a double-precision definition (Hugging Face's semantics on
// padded batches, the attention dropout rule of core/rng.h) and finite differences, and every
// device × dtype against the CPU reference. Tolerances beyond tests/ops/op_test_util.h: an f32 GPU's
// dqkv within 3e-5 (the backward chains three GEMMs and a softmax backward whose row sums are added
// in a different order); dropout masks match bit for bit (checked exactly with one-hot values).
// The fused kernels are in attention_fused_test.cpp.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/op_test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/attention.h"

using namespace ww;
using namespace ww::testing;

namespace {

// ---- the CPU reference ------------------------------------------------------------------------

struct AttentionCase {
  int64_t batch, seq_len, heads, head_dim;
  int64_t channels() const { return heads * head_dim; }
};

std::vector<float> random_normal(size_t n, uint64_t seed, float stddev = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = stddev * rng.normal();
  return v;
}

// Ragged padding: even rows padded on the right, odd rows on the left (GPT-2 style), lengths
// from T down to 1 across the batch.
std::vector<int32_t> ragged_mask(int64_t batch, int64_t seq_len) {
  std::vector<int32_t> mask(size_t(batch * seq_len), 0);
  for (int64_t b = 0; b < batch; ++b) {
    int64_t length = seq_len - (b * (seq_len - 1)) / std::max<int64_t>(1, batch - 1);
    for (int64_t t = 0; t < length; ++t) {
      int64_t position = (b % 2 == 0) ? t : seq_len - 1 - t;
      mask[size_t(b * seq_len + position)] = 1;
    }
  }
  return mask;
}

bool key_allowed(const std::vector<int32_t>* mask, int64_t b, int64_t T, int64_t i, int64_t j,
                 bool causal) {
  if (causal && j > i) return false;
  return mask == nullptr || (*mask)[size_t(b * T + j)] != 0;
}

struct ReferenceResult {
  std::vector<double> out, probs;
};

// Straight from the definition, in double: S = QKᵀ/√D over allowed keys, softmax, dropout, ·V.
ReferenceResult reference_attention(const std::vector<double>& qkv,
                                    const std::vector<int32_t>* mask, const AttentionCase& c,
                                    bool causal, float p, uint64_t seed, uint64_t offset) {
  const int64_t B = c.batch, T = c.seq_len, H = c.heads, D = c.head_dim, C = c.channels();
  ReferenceResult r;
  r.out.assign(size_t(B * T * C), 0.0);
  r.probs.assign(size_t(B * H * T * T), 0.0);
  auto at = [&](int64_t b, int64_t t, int64_t block, int64_t h, int64_t d) {
    return qkv[size_t((b * T + t) * 3 * C + block * C + h * D + d)];
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> scores(size_t(T), 0.0);
        double max_score = -INFINITY;
        for (int64_t j = 0; j < T; ++j) {
          if (!key_allowed(mask, b, T, i, j, causal)) continue;
          double s = 0.0;
          for (int64_t d = 0; d < D; ++d) s += at(b, i, 0, h, d) * at(b, j, 1, h, d);
          scores[size_t(j)] = s / std::sqrt(double(D));
          max_score = std::max(max_score, scores[size_t(j)]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < T; ++j)
          if (key_allowed(mask, b, T, i, j, causal)) sum += std::exp(scores[size_t(j)] - max_score);
        for (int64_t j = 0; j < T; ++j) {
          if (!key_allowed(mask, b, T, i, j, causal)) continue;
          double prob = std::exp(scores[size_t(j)] - max_score) / sum;
          r.probs[size_t(((b * H + h) * T + i) * T + j)] = prob;
          const uint64_t row = uint64_t((b * H + h) * T + i);
          double dropped = prob;
          if (p > 0.0f)
            dropped = ww::testing::attention_keeps(seed, offset, row, T, j, p) ? prob * ww::testing::attention_keep_scale(p) : 0.0;
          for (int64_t d = 0; d < D; ++d)
            r.out[size_t((b * T + i) * C + h * D + d)] += dropped * at(b, j, 2, h, d);
        }
      }
  return r;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

Tensor mask_tensor(const std::vector<int32_t>* mask, const AttentionCase& c) {
  return mask ? Tensor::from_vector(*mask, {c.batch, c.seq_len}) : Tensor{};
}

struct ForwardResult {
  std::vector<float> out, probs;
};

ForwardResult run_forward(const std::vector<float>& qkv, const std::vector<int32_t>* mask,
                          const AttentionCase& c, bool causal, float p, uint64_t seed,
                          uint64_t offset) {
  Tensor qkv_t = Tensor::from_vector(qkv, {c.batch, c.seq_len, 3 * c.channels()});
  Tensor out = Tensor::empty({c.batch, c.seq_len, c.channels()}, DType::F32);
  Tensor probs = Tensor::empty({c.batch, c.heads, c.seq_len, c.seq_len}, DType::F32);
  ops::attention_forward(out, probs, qkv_t, mask_tensor(mask, c), c.heads, causal, p, seed,
                         offset);
  return {out.to_float_vector(), probs.to_float_vector()};
}

std::vector<float> run_backward(const std::vector<float>& qkv, const std::vector<float>& dout,
                                const std::vector<int32_t>* mask, const AttentionCase& c,
                                bool causal, float p, uint64_t seed, uint64_t offset) {
  Tensor qkv_t = Tensor::from_vector(qkv, {c.batch, c.seq_len, 3 * c.channels()});
  Tensor out = Tensor::empty({c.batch, c.seq_len, c.channels()}, DType::F32);
  Tensor probs = Tensor::empty({c.batch, c.heads, c.seq_len, c.seq_len}, DType::F32);
  Tensor key_mask = mask_tensor(mask, c);
  ops::attention_forward(out, probs, qkv_t, key_mask, c.heads, causal, p, seed, offset);
  // NaN everywhere first: backward must overwrite every element of dqkv.
  Tensor dqkv = Tensor::from_vector(std::vector<float>(size_t(qkv_t.numel()), NAN),
                                    qkv_t.shape());
  Tensor scratch = Tensor::empty(probs.shape(), DType::F32);
  Tensor dout_t = Tensor::from_vector(dout, out.shape());
  ops::attention_backward(dqkv, scratch, dout_t, qkv_t, probs, key_mask, c.heads, causal, p, seed,
                          offset);
  return dqkv.to_float_vector();
}

std::string describe(const AttentionCase& c, bool causal, const char* mask_kind, float p) {
  return "B=" + std::to_string(c.batch) + " T=" + std::to_string(c.seq_len) +
         " H=" + std::to_string(c.heads) + " D=" + std::to_string(c.head_dim) +
         (causal ? " causal" : "") + " mask=" + mask_kind + " p=" + std::to_string(p);
}

// Every element within atol + rtol·|ref|; reports the worst one.
void expect_within(const std::vector<float>& got, const std::vector<double>& ref, double atol,
                   double rtol, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double worst_excess = -1.0;
  size_t worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double excess = std::fabs(double(got[i]) - ref[i]) - (atol + rtol * std::fabs(ref[i]));
    if (!(excess <= worst_excess) || std::isnan(got[i])) {
      worst_excess = std::isnan(got[i]) ? INFINITY : excess;
      worst = i;
    }
  }
  EXPECT_LE(worst_excess, 0.0) << what << ": element " << worst << " is " << got[worst]
                               << ", expected " << ref[worst];
}

void expect_masked_probs_zero(const std::vector<float>& probs, const std::vector<int32_t>* mask,
                              const AttentionCase& c, bool causal, const std::string& what) {
  const int64_t T = c.seq_len;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < c.heads; ++h)
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j)
          if (!key_allowed(mask, b, T, i, j, causal)) {
            ASSERT_EQ(probs[size_t(((b * c.heads + h) * T + i) * T + j)], 0.0f)
                << what << ": masked key b=" << b << " h=" << h << " i=" << i << " j=" << j;
          }
}

const AttentionCase kForwardCases[] = {
    {1, 1, 1, 1}, {2, 1, 2, 3}, {2, 7, 3, 5}, {3, 16, 2, 8}, {4, 33, 4, 16}, {2, 128, 12, 64},
};

TEST(AttentionCpu, ForwardMatchesDoubleReference) {
  uint64_t seed = 1;
  for (const AttentionCase& c : kForwardCases) {
    std::vector<float> qkv = random_normal(size_t(c.batch * c.seq_len * 3 * c.channels()), seed++);
    std::vector<int32_t> ragged = ragged_mask(c.batch, c.seq_len);
    std::vector<int32_t> all_real(size_t(c.batch * c.seq_len), 1);
    struct MaskChoice {
      const char* name;
      const std::vector<int32_t>* mask;
    };
    for (MaskChoice m : {MaskChoice{"undefined", nullptr}, MaskChoice{"all-real", &all_real},
                         MaskChoice{"ragged", &ragged}})
      for (bool causal : {false, true})
        for (float p : {0.0f, 0.25f}) {
          std::string what = describe(c, causal, m.name, p);
          ForwardResult got = run_forward(qkv, m.mask, c, causal, p, 42, 7);
          ReferenceResult ref = reference_attention(to_double(qkv), m.mask, c, causal, p, 42, 7);
          expect_within(got.out, ref.out, 1e-5, 1e-5, what + " out");
          expect_within(got.probs, ref.probs, 1e-6, 0.0, what + " probs");
          expect_masked_probs_zero(got.probs, m.mask, c, causal, what);
        }
  }
}

TEST(AttentionCpu, AllRealMaskEqualsUndefinedMaskBitwise) {
  AttentionCase c{3, 19, 2, 8};
  std::vector<float> qkv = random_normal(size_t(c.batch * c.seq_len * 3 * c.channels()), 5);
  std::vector<int32_t> all_real(size_t(c.batch * c.seq_len), 1);
  for (bool causal : {false, true}) {
    ForwardResult a = run_forward(qkv, nullptr, c, causal, 0.1f, 3, 0);
    ForwardResult b = run_forward(qkv, &all_real, c, causal, 0.1f, 3, 0);
    EXPECT_EQ(0, std::memcmp(a.out.data(), b.out.data(), a.out.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(a.probs.data(), b.probs.data(), a.probs.size() * sizeof(float)));
  }
}

TEST(AttentionCpu, QueryWithoutRealKeyOutputsZeros) {
  AttentionCase c{2, 6, 2, 4};
  std::vector<float> qkv = random_normal(size_t(c.batch * c.seq_len * 3 * c.channels()), 9);
  std::vector<int32_t> mask = {1, 1, 1, 0, 0, 0,   // a normal row
                               0, 0, 0, 0, 0, 0};  // a fully padded sequence
  for (bool causal : {false, true}) {
    ForwardResult got = run_forward(qkv, &mask, c, causal, 0.0f, 0, 0);
    for (int64_t t = 0; t < c.seq_len; ++t)
      for (int64_t k = 0; k < c.channels(); ++k)
        EXPECT_EQ(got.out[size_t((c.seq_len + t) * c.channels() + k)], 0.0f) << "t=" << t;
    // With left padding and a causal mask, the first query of row 0 sees only key 0; a causal
    // query in front of all real keys has none.
    std::vector<int32_t> left = {0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    ForwardResult left_got = run_forward(qkv, &left, c, causal, 0.0f, 0, 0);
    ReferenceResult ref = reference_attention(to_double(qkv), &left, c, causal, 0.0f, 0, 0);
    expect_within(left_got.out, ref.out, 1e-5, 1e-5, causal ? "left padding causal" : "left");
    if (causal) {
      for (int64_t k = 0; k < c.channels(); ++k) EXPECT_EQ(left_got.out[size_t(k)], 0.0f);
    }
  }
}

TEST(AttentionCpu, PaddedPositionsDoNotChangeRealQueriesBitwise) {
  AttentionCase c{4, 37, 4, 16};
  const int64_t C = c.channels(), T = c.seq_len;
  std::vector<float> qkv = random_normal(size_t(c.batch * T * 3 * C), 11);
  std::vector<int32_t> mask = ragged_mask(c.batch, T);
  // Rewrite every padded position's queries, keys and values with large unrelated numbers.
  std::vector<float> changed = qkv;
  std::vector<float> noise = random_normal(qkv.size(), 12, 100.0f);
  for (int64_t bt = 0; bt < c.batch * T; ++bt)
    if (mask[size_t(bt)] == 0)
      for (int64_t k = 0; k < 3 * C; ++k) changed[size_t(bt * 3 * C + k)] = noise[size_t(bt * 3 * C + k)];
  ASSERT_NE(changed, qkv);
  for (bool causal : {false, true})
    for (float p : {0.0f, 0.2f}) {
      ForwardResult a = run_forward(qkv, &mask, c, causal, p, 8, 1);
      ForwardResult b = run_forward(changed, &mask, c, causal, p, 8, 1);
      for (int64_t bi = 0; bi < c.batch; ++bi)
        for (int64_t i = 0; i < T; ++i) {
          if (mask[size_t(bi * T + i)] == 0) continue;
          const size_t o = size_t((bi * T + i) * C);
          EXPECT_EQ(0, std::memcmp(&a.out[o], &b.out[o], size_t(C) * sizeof(float)))
              << "out of real query b=" << bi << " i=" << i << (causal ? " causal" : "");
          for (int64_t h = 0; h < c.heads; ++h) {
            const size_t r = size_t(((bi * c.heads + h) * T + i) * T);
            EXPECT_EQ(0, std::memcmp(&a.probs[r], &b.probs[r], size_t(T) * sizeof(float)))
                << "probs of real query b=" << bi << " h=" << h << " i=" << i;
          }
        }
    }
}

TEST(AttentionCpu, BackwardMatchesFiniteDifferences) {
  const AttentionCase cases[] = {{1, 1, 2, 2}, {2, 5, 2, 3}, {2, 9, 3, 4}};
  uint64_t seed = 100;
  for (const AttentionCase& c : cases) {
    std::vector<float> qkv = random_normal(size_t(c.batch * c.seq_len * 3 * c.channels()), seed++);
    std::vector<float> weights = random_normal(size_t(c.batch * c.seq_len * c.channels()), seed++);
    std::vector<int32_t> mask = ragged_mask(c.batch, c.seq_len);
    for (bool use_mask : {false, true})
      for (bool causal : {false, true})
        for (float p : {0.0f, 0.3f}) {
          const std::vector<int32_t>* m = use_mask ? &mask : nullptr;
          std::string what = describe(c, causal, use_mask ? "ragged" : "undefined", p);
          std::vector<float> got = run_backward(qkv, weights, m, c, causal, p, 77, 3);

          // loss(x) = Σ out(x) ⊙ R, differentiated numerically around the fp32 inputs.
          auto loss = [&](const std::vector<double>& x) {
            ReferenceResult r = reference_attention(x, m, c, causal, p, 77, 3);
            double sum = 0.0;
            for (size_t k = 0; k < r.out.size(); ++k) sum += r.out[k] * double(weights[k]);
            return sum;
          };
          const double step = 1e-5;
          std::vector<double> x = to_double(qkv), numeric(x.size());
          double max_abs = 1.0;
          for (size_t k = 0; k < x.size(); ++k) {
            const double saved = x[k];
            x[k] = saved + step;
            const double up = loss(x);
            x[k] = saved - step;
            const double down = loss(x);
            x[k] = saved;
            numeric[k] = (up - down) / (2.0 * step);
            max_abs = std::max(max_abs, std::fabs(numeric[k]));
          }
          expect_within(got, numeric, 1e-5 * max_abs, 0.0, what + " dqkv");
        }
  }
}

TEST(AttentionCpu, DeterministicAcrossRunsAndThreadCounts) {
  AttentionCase c{4, 64, 6, 32};
  std::vector<float> qkv = random_normal(size_t(c.batch * c.seq_len * 3 * c.channels()), 21);
  std::vector<float> dout = random_normal(size_t(c.batch * c.seq_len * c.channels()), 22);
  std::vector<int32_t> mask = ragged_mask(c.batch, c.seq_len);
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  ForwardResult first = run_forward(qkv, &mask, c, false, 0.1f, 1234, 5);
  ForwardResult again = run_forward(qkv, &mask, c, false, 0.1f, 1234, 5);
  std::vector<float> grad_first = run_backward(qkv, dout, &mask, c, false, 0.1f, 1234, 5);
  std::vector<float> grad_again = run_backward(qkv, dout, &mask, c, false, 0.1f, 1234, 5);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  ForwardResult single = run_forward(qkv, &mask, c, false, 0.1f, 1234, 5);
  std::vector<float> grad_single = run_backward(qkv, dout, &mask, c, false, 0.1f, 1234, 5);
  omp_set_num_threads(threads);
  EXPECT_TRUE(same_bits(first.out, again.out));
  EXPECT_TRUE(same_bits(first.probs, again.probs));
  EXPECT_TRUE(same_bits(grad_first, grad_again));
  EXPECT_TRUE(same_bits(first.out, single.out)) << "1 thread vs " << threads;
  EXPECT_TRUE(same_bits(grad_first, grad_single)) << "1 thread vs " << threads;

  // Another seed or offset draws another mask; probabilities are saved before dropout.
  ForwardResult other_seed = run_forward(qkv, &mask, c, false, 0.1f, 1235, 5);
  ForwardResult other_offset = run_forward(qkv, &mask, c, false, 0.1f, 1234, 6);
  EXPECT_TRUE(same_bits(first.probs, other_seed.probs));
  EXPECT_FALSE(same_bits(first.out, other_seed.out));
  EXPECT_FALSE(same_bits(first.out, other_offset.out));
}

TEST(AttentionCpu, RejectsBadArgumentsByName) {
  auto expect_error = [](const std::string& needle, auto&& call) {
    try {
      call();
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Tensor qkv = Tensor::zeros({2, 3, 12}, DType::F32);
  Tensor out = Tensor::empty({2, 3, 4}, DType::F32);
  Tensor probs = Tensor::empty({2, 2, 3, 3}, DType::F32);
  Tensor mask = Tensor::from_vector(std::vector<int32_t>(6, 1), {2, 3});
  ops::attention_forward(out, probs, qkv, mask, 2, false, 0.0f, 0, 0);  // valid as given
  expect_error("attention_forward: argument 'out'", [&] {
    ops::attention_forward(Tensor::empty({2, 3, 5}, DType::F32), probs, qkv, mask, 2, false, 0, 0, 0);
  });
  expect_error("attention_forward: argument 'probs'", [&] {
    ops::attention_forward(out, Tensor::empty({2, 2, 3, 2}, DType::F32), qkv, mask, 2, false, 0, 0, 0);
  });
  expect_error("attention_forward: qkv must be", [&] {
    ops::attention_forward(out, probs, Tensor::zeros({6, 12}, DType::F32), mask, 2, false, 0, 0, 0);
  });
  expect_error("num_heads 3", [&] { ops::attention_forward(out, probs, qkv, mask, 3, false, 0, 0, 0); });
  expect_error("key_mask must be i32", [&] {
    ops::attention_forward(out, probs, qkv, Tensor::zeros({2, 3}, DType::F32), 2, false, 0, 0, 0);
  });
  expect_error("dropout_p", [&] { ops::attention_forward(out, probs, qkv, mask, 2, false, 1.0f, 0, 0); });
#ifndef WW_HAVE_CUDA
  // With CUDA built in, this reaches the CUDA kernel (tests/test_cuda_attention.cpp), which must
  // not be handed host pointers.
  expect_error("CUDA backend", [&] {
    Tensor on_gpu = Tensor::view(qkv.raw(), qkv.shape(), DType::F32, Device::cuda(0));
    Tensor out_gpu = Tensor::view(out.raw(), out.shape(), DType::F32, Device::cuda(0));
    Tensor probs_gpu = Tensor::view(probs.raw(), probs.shape(), DType::F32, Device::cuda(0));
    ops::attention_forward(out_gpu, probs_gpu, on_gpu, Tensor{}, 2, false, 0, 0, 0);
  });
#endif
  expect_error("on one device", [&] {
    Tensor out_gpu = Tensor::view(out.raw(), out.shape(), DType::F32, Device::cuda(0));
    ops::attention_forward(out_gpu, probs, qkv, mask, 2, false, 0, 0, 0);
  });
  Tensor dqkv = Tensor::empty(qkv.shape(), DType::F32);
  Tensor scratch = Tensor::empty(probs.shape(), DType::F32);
  expect_error("attention_backward: argument 'scratch'", [&] {
    ops::attention_backward(dqkv, Tensor::empty({5}, DType::F32), out, qkv, probs, mask, 2, false, 0, 0, 0);
  });
  expect_error("attention_backward: argument 'dout'", [&] {
    ops::attention_backward(dqkv, scratch, Tensor::empty({5}, DType::F32), qkv, probs, mask, 2, false, 0, 0, 0);
  });
  expect_error("must not alias", [&] {
    ops::attention_backward(dqkv, scratch, out, qkv, scratch, mask, 2, false, 0, 0, 0);
  });
}

// ---- every device and dtype against the CPU reference ---------------------------------------

struct Case {
  int64_t B, T, H, D;
  bool causal;
  bool masked;  // ragged padding, the last sequence fully padded
  float dropout_p;
};

std::string name(const Case& c) {
  return "B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) + " H=" + std::to_string(c.H) +
         " D=" + std::to_string(c.D) + (c.causal ? " causal" : "") + (c.masked ? " masked" : "") +
         " p=" + std::to_string(c.dropout_p);
}

// Sequence b has a different real length; the last one (when B > 1) has none at all, so its rows
// must come out as zeros.
std::vector<int32_t> last_sequence_padded_mask(int64_t B, int64_t T) {
  std::vector<int32_t> mask(size_t(B * T), 0);
  for (int64_t b = 0; b < B; ++b) {
    int64_t length = (B > 1 && b == B - 1) ? 0 : T - (b * 3) % T;
    for (int64_t t = 0; t < length; ++t) mask[size_t(b * T + t)] = 1;
  }
  return mask;
}

const std::vector<Case> kCases = {
    {1, 1, 1, 1, false, false, 0.0f},  {2, 5, 2, 3, false, true, 0.0f},   {3, 17, 4, 8, true, true, 0.0f},
    {2, 130, 3, 16, false, true, 0.1f}, {2, 33, 2, 64, true, false, 0.1f}, {4, 64, 12, 64, false, true, 0.0f},
    {3, 9, 2, 5, true, true, 0.25f},
};

constexpr uint64_t kSeed = 1234, kOffset = 77;

class AttentionTest : public DeviceDtypeTest {};

// Each parameter's backward reads its own saved probabilities.
TEST_P(AttentionTest, MatchesTheCpuReference) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(what("attention", {c.B, c.T, 3 * c.H * c.D}) + " " + name(c));
    const int64_t C = c.H * c.D;
    const float scale = is_16bit() ? 0.5f : 1.0f;
    Tensor qkv = reference_input(cpu_tensor(random_normals(c.B * c.T * 3 * C, 1, scale), {c.B, c.T, 3 * C}));
    Tensor dout = reference_input(cpu_tensor(random_normals(c.B * c.T * C, 2), {c.B, c.T, C}));
    const std::vector<int32_t> mask_values = last_sequence_padded_mask(c.B, c.T);
    Tensor mask = c.masked ? Tensor::from_vector(mask_values, {c.B, c.T}) : Tensor();
    Tensor mask_p = c.masked ? put_ints(mask_values, {c.B, c.T}) : Tensor();
    const Shape probs_shape = {c.B, c.H, c.T, c.T};

    Tensor out = Tensor::empty({c.B, c.T, C}, DType::F32), probs = Tensor::empty(probs_shape, DType::F32);
    ops::attention_forward(out, probs, qkv, mask, c.H, c.causal, c.dropout_p, kSeed, kOffset);
    Tensor dqkv = Tensor::empty(qkv.shape(), DType::F32), scratch = Tensor::empty(probs_shape, DType::F32);
    ops::attention_backward(dqkv, scratch, dout, qkv, probs, mask, c.H, c.causal, c.dropout_p, kSeed, kOffset);

    const Tensor qkv_p = put(qkv);
    Tensor got_out = nan_tensor({c.B, c.T, C}), got_probs = nan_tensor(probs_shape);
    ops::attention_forward(got_out, got_probs, qkv_p, mask_p, c.H, c.causal, c.dropout_p, kSeed, kOffset);
    expect_matches(got_probs, probs, "probs", rtol());
    expect_matches(got_out, out, "out", rtol());
    Tensor got_dqkv = nan_tensor(qkv.shape()), got_scratch = nan_tensor(probs_shape);
    ops::attention_backward(got_dqkv, got_scratch, put(dout), qkv_p, got_probs, mask_p, c.H, c.causal, c.dropout_p,
                            kSeed, kOffset);
    expect_matches(got_dqkv, dqkv, "dqkv", is_16bit() ? kRtol16 : 3e-5);
  }
}

WW_INSTANTIATE_DEVICE_DTYPE_TEST(AttentionTest, all_devices_and_dtypes());

// ---- CUDA ---------------------------------------------------------------------------------------

TEST(AttentionCuda, FullyPaddedSequenceOutputsZeros) {
  WW_REQUIRE_CUDA();
  const int64_t B = 2, T = 6, H = 2, D = 4, C = H * D;
  Tensor qkv = cpu_tensor(random_normals(B * T * 3 * C, 3), {B, T, 3 * C});
  std::vector<int32_t> mask_values(size_t(B * T), 1);
  for (int64_t t = 0; t < T; ++t) mask_values[size_t(T + t)] = 0;  // sequence 1: all padding
  Tensor g_out = gpu_poisoned({B, T, C}), g_probs = gpu_poisoned({B, H, T, T});
  ops::attention_forward(g_out, g_probs, gpu_copy(qkv), gpu_copy(Tensor::from_vector(mask_values, {B, T})), H,
                         false, 0.0f, 0, 0);
  std::vector<float> out = read_back(g_out), probs = read_back(g_probs);
  for (int64_t i = T * C; i < 2 * T * C; ++i) ASSERT_EQ(out[size_t(i)], 0.0f) << "out element " << i;
  for (int64_t i = H * T * T; i < 2 * H * T * T; ++i) ASSERT_EQ(probs[size_t(i)], 0.0f) << "probs element " << i;
}

// With V one-hot (value row t of every head is e_t), out[b, i, h·D + j] = dropout(P)[b, h, i, j]
// exactly (one product by 1, the rest by 0), so the GPU's dropout mask is read off directly and
// compared bit for bit with the attention rule (test_util.h's attention_keeps for row (b·H+h)·T+i,
// key j), which is the CPU's; the CPU kernel is checked the same way so the two agree too.
TEST(AttentionCuda, DropoutMaskMatchesCpuBitForBit) {
  WW_REQUIRE_CUDA();
  const int64_t B = 2, T = 7, H = 3, D = 8, C = H * D;
  const float p = 0.5f, keep_scale = float(ww::testing::attention_keep_scale(p));
  std::vector<float> values = random_normals(B * T * 3 * C, 4);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t col = 0; col < C; ++col)
        values[size_t((b * T + t) * 3 * C + 2 * C + col)] = (col % D == t) ? 1.0f : 0.0f;
  Tensor qkv = cpu_tensor(values, {B, T, 3 * C});

  Tensor out = Tensor::empty({B, T, C}, DType::F32), probs = Tensor::empty({B, H, T, T}, DType::F32);
  ops::attention_forward(out, probs, qkv, Tensor(), H, false, p, kSeed, kOffset);
  Tensor g_out = gpu_poisoned({B, T, C}), g_probs = gpu_poisoned({B, H, T, T});
  ops::attention_forward(g_out, g_probs, gpu_copy(qkv), Tensor(), H, false, p, kSeed, kOffset);

  const std::vector<float> gpu_out = read_back(g_out), gpu_probs = read_back(g_probs);
  const std::vector<float> cpu_out = out.to_float_vector(), cpu_probs = probs.to_float_vector();
  int64_t kept = 0, dropped = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j) {
          const uint64_t index = uint64_t(((b * H + h) * T + i) * T + j);
          const bool keep = ww::testing::attention_keeps(kSeed, kOffset, uint64_t((b * H + h) * T + i), T, j, p);
          const size_t o = size_t((b * T + i) * C + h * D + j);
          const float want_gpu = keep ? gpu_probs[index] * keep_scale : 0.0f;
          const float want_cpu = keep ? cpu_probs[index] * keep_scale : 0.0f;
          ASSERT_EQ(gpu_out[o], want_gpu) << "GPU, element (b,h,i,j) = " << b << "," << h << "," << i << "," << j;
          ASSERT_EQ(cpu_out[o], want_cpu) << "CPU, element (b,h,i,j) = " << b << "," << h << "," << i << "," << j;
          (keep ? kept : dropped)++;
        }
  EXPECT_GT(kept, 0);
  EXPECT_GT(dropped, 0);
}

TEST(AttentionCuda, ResultsAreDeterministic) {
  WW_REQUIRE_CUDA();
  const int64_t B = 2, T = 40, H = 4, D = 16, C = H * D;
  Tensor g_qkv = gpu_copy(cpu_tensor(random_normals(B * T * 3 * C, 5), {B, T, 3 * C}));
  Tensor g_dout = gpu_copy(cpu_tensor(random_normals(B * T * C, 6), {B, T, C}));
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    Tensor g_out = gpu_poisoned({B, T, C}), g_probs = gpu_poisoned({B, H, T, T});
    ops::attention_forward(g_out, g_probs, g_qkv, Tensor(), H, true, 0.1f, 9, 1);
    Tensor g_dqkv = gpu_poisoned({B, T, 3 * C}), g_scratch = gpu_poisoned({B, H, T, T});
    ops::attention_backward(g_dqkv, g_scratch, g_dout, g_qkv, g_probs, Tensor(), H, true, 0.1f, 9, 1);
    std::vector<float> got = read_back(g_dqkv);
    if (run == 0) first = got;
    else EXPECT_EQ(got, first) << "dqkv differs bitwise between runs";
  }
}

}  // namespace
