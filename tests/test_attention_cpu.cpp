// CPU attention and softmax against double-precision references written as explicit loops.
// Tolerances (fp32 against exact double):
//   attention forward: |got − ref| ≤ 1e-5·(1 + |ref|) for out, ≤ 1e-6 for probs (which lie in [0,1]);
//   attention backward: |got − ref| ≤ 1e-5·max(1, max|ref|) against central finite differences
//     (step 1e-5, in double) of the scalar loss Σ out ⊙ R;
//   softmax forward/backward: ≤ 1e-6 absolute (values and gradients are O(1)).
// Masking and determinism are checked bitwise.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/attention.h"
#include "wattwise/ops/softmax.h"
#include "test_util.h"

using namespace ww;

namespace {

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
void expect_close(const std::vector<float>& got, const std::vector<double>& ref, double atol,
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

}  // namespace

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
          expect_close(got.out, ref.out, 1e-5, 1e-5, what + " out");
          expect_close(got.probs, ref.probs, 1e-6, 0.0, what + " probs");
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
    expect_close(left_got.out, ref.out, 1e-5, 1e-5, causal ? "left padding causal" : "left");
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
          expect_close(got, numeric, 1e-5 * max_abs, 0.0, what + " dqkv");
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

// ---- softmax ----------------------------------------------------------------------------------

namespace {

std::vector<double> reference_softmax(const std::vector<float>& x, int64_t rows, int64_t cols) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double max_value = -INFINITY, sum = 0.0;
    for (int64_t j = 0; j < cols; ++j) max_value = std::max(max_value, double(x[size_t(r * cols + j)]));
    for (int64_t j = 0; j < cols; ++j) sum += std::exp(double(x[size_t(r * cols + j)]) - max_value);
    for (int64_t j = 0; j < cols; ++j)
      y[size_t(r * cols + j)] = std::exp(double(x[size_t(r * cols + j)]) - max_value) / sum;
  }
  return y;
}

}  // namespace

TEST(SoftmaxCpu, ForwardAndBackwardMatchReference) {
  struct Case {
    int64_t rows, cols;
    float shift;  // large shifts check the max subtraction
  };
  uint64_t seed = 300;
  for (Case c : {Case{1, 1, 0.0f}, Case{3, 7, 0.0f}, Case{5, 128, 1000.0f}, Case{64, 33, -500.0f}}) {
    const std::string what = std::to_string(c.rows) + "x" + std::to_string(c.cols);
    std::vector<float> x = random_normal(size_t(c.rows * c.cols), seed++, 3.0f);
    for (float& v : x) v += c.shift;
    Tensor inp = Tensor::from_vector(x, {c.rows, c.cols});
    Tensor out = Tensor::empty(inp.shape(), DType::F32);
    ops::softmax_forward(out, inp);
    std::vector<double> ref = reference_softmax(x, c.rows, c.cols);
    std::vector<float> y = out.to_float_vector();
    expect_close(y, ref, 1e-6, 0.0, what + " forward");

    ops::softmax_forward(inp, inp);  // in place
    std::vector<float> y_in_place = inp.to_float_vector();
    EXPECT_EQ(0, std::memcmp(y.data(), y_in_place.data(), y.size() * sizeof(float))) << what;

    std::vector<float> dy = random_normal(y.size(), seed++);
    std::vector<double> dx_ref(y.size());
    for (int64_t r = 0; r < c.rows; ++r) {
      double dot = 0.0;
      for (int64_t j = 0; j < c.cols; ++j) dot += double(dy[size_t(r * c.cols + j)]) * y[size_t(r * c.cols + j)];
      for (int64_t j = 0; j < c.cols; ++j) {
        size_t k = size_t(r * c.cols + j);
        dx_ref[k] = double(y[k]) * (double(dy[k]) - dot);
      }
    }
    Tensor dout = Tensor::from_vector(dy, out.shape());
    Tensor dinp = Tensor::empty(out.shape(), DType::F32);
    ops::softmax_backward(dinp, out, dout);
    expect_close(dinp.to_float_vector(), dx_ref, 1e-6, 0.0, what + " backward");
    ops::softmax_backward(dout, out, dout);  // dinp aliasing dout
    expect_close(dout.to_float_vector(), dx_ref, 1e-6, 0.0, what + " backward in place");
  }
}

TEST(SoftmaxCpu, RejectsMismatchedSizes) {
  Tensor inp = Tensor::zeros({2, 3}, DType::F32);
  try {
    ops::softmax_forward(Tensor::empty({7}, DType::F32), inp);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("softmax_forward: argument 'out'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::softmax_backward(inp, inp, Tensor::zeros({3}, DType::F32)), Error);
  EXPECT_THROW(ops::softmax_forward(inp, Tensor::zeros({2, 3}, DType::I32)), Error);
}
