// ops::embeddings_forward / embeddings_backward: the CPU reference against a double-precision
// reference and its documented order of additions, and every device × dtype against the CPU
// reference: the forward within the parameter's tolerance (tests/ops/op_test_util.h), the table
// gradients bit for bit (16-bit dout widens to float exactly, then the GPU adds in the CPU's order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/op_test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/embedding.h"
#include "wattwise/ops/graph.h"

using namespace ww;
using namespace ww::testing;

namespace {

// ---- the CPU reference ------------------------------------------------------------------------

struct EmbeddingCase {
  int64_t B, T, C, V, P, TT, offset;
  bool with_type_ids, with_position, with_type_table;
};

TEST(EmbeddingCpu, ForwardAndBackwardMatchReference) {
  const std::vector<EmbeddingCase> cases = {
      {3, 5, 7, 11, 9, 2, 2, true, true, true},        // BERT-like, with a position offset
      {2, 9, 13, 4, 9, 2, 0, false, true, true},       // no token_type_ids: type 0 is added
      {1, 1, 1, 3, 1, 1, 0, false, true, false},       // DistilBERT-like (no token type table)
      {4, 33, 130, 50, 40, 3, 5, true, false, true},   // no position table; ragged stripe width
      {8, 64, 96, 20, 64, 2, 0, true, true, true},     // large enough for the parallel path
  };
  for (const EmbeddingCase& k : cases) {
    SCOPED_TRACE("B=" + std::to_string(k.B) + " T=" + std::to_string(k.T) + " C=" + std::to_string(k.C));
    const int64_t N = k.B * k.T;
    std::vector<int32_t> ids = random_ids(N, k.V, 1), types = random_ids(N, k.TT, 2);
    ids[0] = int32_t(k.V - 1);  // include the last row of the table
    Tensor input_ids = Tensor::from_vector(ids, {k.B, k.T});
    Tensor type_ids = k.with_type_ids ? Tensor::from_vector(types, {k.B, k.T}) : Tensor();
    Tensor word = random_tensor({k.V, k.C}, 3), position = random_tensor({k.P, k.C}, 4),
           token_type = random_tensor({k.TT, k.C}, 5);
    Tensor pos_arg = k.with_position ? position : Tensor(), type_arg = k.with_type_table ? token_type : Tensor();
    Tensor out = Tensor::empty({k.B, k.T, k.C}, DType::F32);
    ops::embeddings_forward(out, input_ids, type_ids, word, pos_arg, type_arg, k.offset);

    const std::vector<double> w = as_double(word), p = as_double(position), tt = as_double(token_type);
    std::vector<double> want(static_cast<size_t>(N * k.C));
    for (int64_t n = 0; n < N; ++n) {
      const int64_t t = n % k.T, type = k.with_type_ids ? types[size_t(n)] : 0;
      for (int64_t c = 0; c < k.C; ++c) {
        double v = w[size_t(ids[size_t(n)] * k.C + c)];
        if (k.with_type_table) v += tt[size_t(type * k.C + c)];
        if (k.with_position) v += p[size_t((k.offset + t) * k.C + c)];
        want[size_t(n * k.C + c)] = v;
      }
    }
    expect_close(out, want, "embeddings out", 1e-6);
    // Bit-exact against fp32 sums in Hugging Face's order: (word + token_type) + position.
    {
      const std::vector<float> got = out.to_float_vector(), wf = word.to_float_vector(),
                               pf = position.to_float_vector(), tf = token_type.to_float_vector();
      for (int64_t n = 0; n < N; ++n) {
        const int64_t t = n % k.T, type = k.with_type_ids ? types[size_t(n)] : 0;
        for (int64_t c = 0; c < k.C; ++c) {
          float v = wf[size_t(ids[size_t(n)] * k.C + c)];
          if (k.with_type_table) v += tf[size_t(type * k.C + c)];
          if (k.with_position) v += pf[size_t((k.offset + t) * k.C + c)];
          ASSERT_EQ(got[size_t(n * k.C + c)], v) << "token " << n << " column " << c;
        }
      }
    }

    // Backward accumulates into gradients that already hold values (repeated ids sum up).
    Tensor dout = random_tensor({k.B, k.T, k.C}, 6);
    Tensor dword = random_tensor({k.V, k.C}, 7), dposition = random_tensor({k.P, k.C}, 8),
           dtype = random_tensor({k.TT, k.C}, 9);
    std::vector<double> want_dword = as_double(dword), want_dposition = as_double(dposition),
                        want_dtype = as_double(dtype);
    const std::vector<double> d = as_double(dout);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t t = n % k.T, type = k.with_type_ids ? types[size_t(n)] : 0;
      for (int64_t c = 0; c < k.C; ++c) {
        const double g = d[size_t(n * k.C + c)];
        want_dword[size_t(ids[size_t(n)] * k.C + c)] += g;
        if (k.with_type_table) want_dtype[size_t(type * k.C + c)] += g;
        if (k.with_position) want_dposition[size_t((k.offset + t) * k.C + c)] += g;
      }
    }
    Tensor untouched_position = dposition.to(Device::cpu()), untouched_type = dtype.to(Device::cpu());
    ops::embeddings_backward(dword, k.with_position ? dposition : Tensor(), k.with_type_table ? dtype : Tensor(),
                             dout, input_ids, type_ids, k.offset);
    expect_close(dword, want_dword, "dword");
    if (k.with_position) {
      expect_close(dposition, want_dposition, "dposition");
    } else {
      EXPECT_TRUE(same_bits(dposition, untouched_position)) << "an absent gradient must not be written";
    }
    if (k.with_type_table) {
      expect_close(dtype, want_dtype, "dtoken_type");
    } else {
      EXPECT_TRUE(same_bits(dtype, untouched_type));
    }
  }
}

TEST(EmbeddingCpu, BackwardIsDeterministicAcrossThreadCounts) {
  const int64_t B = 8, T = 64, C = 300, V = 10;  // few ids, so many tokens hit each row
  Tensor ids = Tensor::from_vector(random_ids(B * T, V, 11), {B, T});
  Tensor dout = random_tensor({B, T, C}, 12);
  std::vector<Tensor> results;
  for (int threads : {1, 2, 3}) {
    Tensor dword = Tensor::zeros({V, C}, DType::F32), dposition = Tensor::zeros({T, C}, DType::F32);
    with_threads(threads, [&] { ops::embeddings_backward(dword, dposition, Tensor(), dout, ids, Tensor()); });
    results.push_back(dword);
  }
  EXPECT_TRUE(same_bits(results[0], results[1]));
  EXPECT_TRUE(same_bits(results[0], results[2]));
}

// The documented order of additions (kernels/embedding.h), which the CUDA kernel also follows:
// per row, its tokens in token order in chunks of 64, each chunk summed from 0, the chunk sums added
// to the row in order. Checked bit for bit, with rows hit by one token, by several chunks (the last
// one partial) and by every token (the token-type table without token_type_ids).
TEST(EmbeddingCpu, BackwardAddsInTheDocumentedChunkOrder) {
  const int64_t B = 3, T = 100, C = 37, V = 50, N = B * T;
  std::vector<int32_t> ids = random_ids(N, V, 21);
  for (int64_t n = 0; n < N; n += 2) ids[size_t(n)] = 7;  // row 7: 150 tokens, chunks of 64, 64, 22
  ids[size_t(N - 1)] = int32_t(V - 1);
  Tensor input_ids = Tensor::from_vector(ids, {B, T});
  Tensor dout = random_tensor({B, T, C}, 22);
  Tensor dword = random_tensor({V, C}, 23), dtype = random_tensor({2, C}, 24);
  std::vector<float> want_word = dword.to_float_vector(), want_type = dtype.to_float_vector();
  const std::vector<float> d = dout.to_float_vector();
  auto chunked = [&](std::vector<float>& table, const std::vector<int64_t>& row_ids) {
    for (int64_t r = 0; r * C < int64_t(table.size()); ++r) {
      std::vector<int64_t> tokens;
      for (int64_t n = 0; n < N; ++n)
        if (row_ids[size_t(n)] == r) tokens.push_back(n);
      for (int64_t c = 0; c < C; ++c) {
        float total = table[size_t(r * C + c)];
        for (size_t j0 = 0; j0 < tokens.size(); j0 += 64) {
          float chunk = 0.0f;
          for (size_t j = j0; j < std::min(tokens.size(), j0 + 64); ++j) chunk += d[size_t(tokens[j] * C + c)];
          total += chunk;
        }
        table[size_t(r * C + c)] = total;
      }
    }
  };
  chunked(want_word, std::vector<int64_t>(ids.begin(), ids.end()));
  chunked(want_type, std::vector<int64_t>(size_t(N), 0));  // no token_type_ids: every token has type 0
  ops::embeddings_backward(dword, Tensor(), dtype, dout, input_ids, Tensor());
  EXPECT_TRUE(same_bits(dword, Tensor::from_vector(want_word, {V, C})));
  EXPECT_TRUE(same_bits(dtype, Tensor::from_vector(want_type, {2, C})));
}

TEST(EmbeddingCpu, RejectBadIdsWithTheirPosition) {
  Tensor word = random_tensor({10, 4}, 1), position = random_tensor({6, 4}, 2), types = random_tensor({2, 4}, 3);
  Tensor out = Tensor::empty({2, 3, 4}, DType::F32);
  Tensor bad = Tensor::from_vector(std::vector<int32_t>{1, 2, 3, 4, 10, 5}, {2, 3});
  expect_error([&] { ops::embeddings_forward(out, bad, Tensor(), word, position, types); },
               {"input id 10", "batch row 1", "position 1", "vocab size 10"});
  Tensor negative = Tensor::from_vector(std::vector<int32_t>{1, -3, 3, 4, 1, 5}, {2, 3});
  expect_error([&] { ops::embeddings_forward(out, negative, Tensor(), word, position, types); },
               {"input id -3", "batch row 0", "position 1"});
  Tensor ok = Tensor::from_vector(std::vector<int32_t>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor bad_types = Tensor::from_vector(std::vector<int32_t>{0, 1, 2, 0, 0, 0}, {2, 3});
  expect_error([&] { ops::embeddings_forward(out, ok, bad_types, word, position, types); },
               {"token type id 2", "batch row 0", "position 2"});
  expect_error([&] { ops::embeddings_forward(out, ok, Tensor(), word, position, types, /*offset=*/4); },
               {"position table", "6 positions"});
  // Backward checks ids the same way, before touching the gradients.
  Tensor dword = Tensor::zeros({10, 4}, DType::F32);
  expect_error([&] { ops::embeddings_backward(dword, Tensor(), Tensor(), out, bad, Tensor()); },
               {"input id 10", "batch row 1", "position 1"});
  for (float v : dword.to_float_vector()) EXPECT_EQ(v, 0.0f);
  // Shapes and dtypes name the op and the argument.
  expect_error([&] { ops::embeddings_forward(Tensor::empty({2, 3, 5}, DType::F32), ok, Tensor(), word, position, types); },
               {"embeddings_forward", "'out'"});
  expect_error([&] { ops::embeddings_forward(out, ok, Tensor(), word, random_tensor({6, 3}, 4), types); },
               {"embeddings_forward", "'position'", "4 columns"});
  expect_error([&] { ops::embeddings_forward(out, Tensor::from_vector(std::vector<float>(6, 1.0f), {2, 3}), Tensor(),
                                             word, position, types); },
               {"embeddings_forward", "'input_ids'", "i32"});
  expect_error([&] { ops::embeddings_forward(out, ok, bad_types, word, position, Tensor()); },
               {"embeddings_forward", "token_type"});
}

// ---- every device and dtype against the CPU reference ---------------------------------------

class EmbeddingTest : public DeviceDtypeTest {};

// Few ids (many repeats), with and without token types and a type table; the gradients accumulate
// onto random values.
TEST_P(EmbeddingTest, MatchesTheCpuReference) {
  struct Case {
    int64_t B, T, C, V, P, TT, offset;
    bool with_type_ids;
  };
  for (const Case k : {Case{2, 5, 7, 11, 9, 2, 1, true}, Case{3, 17, 130, 6, 20, 0, 0, false},
                       Case{1, 1, 1, 3, 1, 1, 0, false}, Case{4, 33, 300, 40, 40, 2, 2, true},
                       Case{2, 128, 768, 500, 130, 2, 0, true}, Case{3, 17, 130, 11, 20, 2, 2, true}}) {
    SCOPED_TRACE(what("embeddings", {k.B, k.T, k.C}));
    const uint64_t seed = uint64_t(k.B * 1000 + k.C);
    const std::vector<int32_t> id_values = random_ids(k.B * k.T, k.V, seed);
    const std::vector<int32_t> type_values = random_ids(k.B * k.T, std::max<int64_t>(k.TT, 1), seed + 1);
    Tensor ids = ints_cpu(id_values, {k.B, k.T}), ids_p = put_ints(id_values, {k.B, k.T});
    Tensor types = k.with_type_ids ? ints_cpu(type_values, {k.B, k.T}) : Tensor{};
    Tensor types_p = k.with_type_ids ? put_ints(type_values, {k.B, k.T}) : Tensor{};
    Tensor word = random_cpu({k.V, k.C}, seed + 2), position = random_cpu({k.P, k.C}, seed + 3);
    Tensor token_type = k.TT ? random_cpu({k.TT, k.C}, seed + 4) : Tensor{};

    Tensor out = poisoned_cpu({k.B, k.T, k.C}), got = nan_tensor({k.B, k.T, k.C});
    ops::embeddings_forward(out, ids, types, word, position, token_type, k.offset);
    ops::embeddings_forward(got, ids_p, types_p, put_f32(word), put_f32(position),
                            token_type.defined() ? put_f32(token_type) : Tensor{}, k.offset);
    expect_matches(got, out, "embeddings out", rtol());

    Tensor dout = reference_input(random_cpu({k.B, k.T, k.C}, seed + 5));
    Tensor dword = random_cpu({k.V, k.C}, seed + 6), dposition = random_cpu({k.P, k.C}, seed + 7);
    Tensor dtype_table = k.TT ? random_cpu({k.TT, k.C}, seed + 8) : Tensor{};
    Tensor dword_p = put_f32(dword), dposition_p = put_f32(dposition);
    Tensor dtype_p = dtype_table.defined() ? put_f32(dtype_table) : Tensor{};
    ops::embeddings_backward(dword, dposition, dtype_table, dout, ids, types, k.offset);
    ops::embeddings_backward(dword_p, dposition_p, dtype_p, put(dout), ids_p, types_p, k.offset);
    expect_same_bits(dword_p, dword, "dword");
    expect_same_bits(dposition_p, dposition, "dposition");
    if (dtype_table.defined()) expect_same_bits(dtype_p, dtype_table, "dtoken_type");
  }
}

WW_INSTANTIATE_DEVICE_DTYPE_TEST(EmbeddingTest, all_devices_and_dtypes());

// ---- CUDA ---------------------------------------------------------------------------------------

// C = 5: the scalar kernel; C = 8: four columns per thread.
TEST(EmbeddingCuda, IdsOutsideTheTableAreReported) {
  WW_REQUIRE_CUDA();
  for (const int64_t C : {int64_t(5), int64_t(8)}) {
    SCOPED_TRACE("C=" + std::to_string(C));
    const int64_t B = 2, T = 4, V = 10;
    std::vector<int32_t> values = random_ids(B * T, V, 1);
    values[size_t(1 * T + 2)] = 99;
    Tensor ids = to_gpu(ints_cpu(values, {B, T}));
    Tensor word = to_gpu(random_cpu({V, C}, 2)), position = to_gpu(random_cpu({T, C}, 3));
    Tensor out = poisoned_gpu({B, T, C});
    expect_error(
        [&] {
          ops::embeddings_forward(out, ids, Tensor{}, word, position, Tensor{});
          ops::check_device_input_errors();
        },
        {"input id 99", "batch row 1", "position 2", "vocab size 10"});
    ops::check_device_input_errors();  // the record was cleared
    Tensor dword = to_gpu(random_cpu({V, C}, 4));
    expect_error(
        [&] {
          ops::embeddings_backward(dword, Tensor{}, Tensor{}, to_gpu(random_cpu({B, T, C}, 5)), ids, Tensor{});
          ops::check_device_input_errors();
        },
        {"input id 99", "batch row 1", "position 2"});
    // The position range is host data: checked before the launch, as on the CPU.
    expect_error([&] { ops::embeddings_forward(out, ids, Tensor{}, word, position, Tensor{}, 1); },
                 {"positions 1..4", "outside the position table"});
  }
}

// chunks of 64 and one token more, and a long tail of rows hit once or a few times.
std::vector<int32_t> skewed_ids(int64_t N, int64_t V, uint64_t seed) {
  std::vector<int32_t> ids;
  auto repeat = [&](int32_t id, int64_t count) { ids.insert(ids.end(), size_t(count), id); };
  repeat(int32_t(V - 1), 3000);
  repeat(0, 2000);
  repeat(13, 1000);
  repeat(100, 64);
  repeat(101, 65);
  repeat(102, 128);
  repeat(103, 129);
  repeat(104, 1);
  Rng rng(seed, 9);
  while (int64_t(ids.size()) < N) {
    // Roughly Zipfian: small ids much more often than large ones.
    const double u = double(rng.below(1u << 30)) / double(1u << 30);
    ids.push_back(int32_t(std::min<double>(double(V - 1), std::floor(std::pow(double(V), u)))));
  }
  ids.resize(size_t(N));
  for (size_t i = ids.size() - 1; i > 0; --i) std::swap(ids[i], ids[size_t(rng.below(uint64_t(i + 1)))]);
  return ids;
}

// At model scale: the sorted, chunked CUDA kernel gives the CPU reference's bits (f32 and 16-bit
// dout: 16-bit values widen to float exactly, then the same fp32 additions), for the word table
// (skewed ids), the position table, and a token-type table that every token hits (with and without
// token_type_ids); and two runs give the same bits.
TEST(EmbeddingCuda, BackwardAtModelScaleIsBitIdenticalToCpu) {
  WW_REQUIRE_CUDA();
  struct Case {
    int64_t B, T, C, V;
    DType dtype;
  };
  for (const Case k : {Case{16, 1024, 768, 50257, DType::F32}, Case{16, 1024, 768, 50257, DType::BF16},
                       Case{32, 256, 768, 30522, DType::F16}, Case{4, 300, 769, 1000, DType::F32},
                       Case{8, 100, 4, 7, DType::F32}}) {
    const int64_t N = k.B * k.T;
    SCOPED_TRACE("B=" + std::to_string(k.B) + " T=" + std::to_string(k.T) + " C=" + std::to_string(k.C) +
                 " V=" + std::to_string(k.V) + " " + std::string(dtype_name(k.dtype)));
    const std::vector<int32_t> id_values = k.V > 1000 ? skewed_ids(N, k.V, uint64_t(k.C)) : random_ids(N, k.V, 7);
    Tensor ids = ints_cpu(id_values, {k.B, k.T}), ids_gpu = to_gpu(ids);
    Tensor zero_types = ints_cpu(std::vector<int32_t>(size_t(N), 0), {k.B, k.T}), zero_types_gpu = to_gpu(zero_types);
    Tensor dout = rounded_cpu(random_cpu({k.B, k.T, k.C}, 40), k.dtype), dout_gpu = gpu_as(dout, k.dtype);
    const Tensor word0 = random_cpu({k.V, k.C}, 41), position0 = random_cpu({k.T, k.C}, 42);
    const Tensor type0 = random_cpu({2, k.C}, 43);

    Tensor dword = word0.to(Device::cpu()), dposition = position0.to(Device::cpu()), dtype = type0.to(Device::cpu());
    ops::embeddings_backward(dword, dposition, dtype, dout, ids, zero_types);
    std::vector<float> first_run;
    for (int run = 0; run < 2; ++run) {
      Tensor dword_gpu = to_gpu(word0), dposition_gpu = to_gpu(position0), dtype_gpu = to_gpu(type0);
      ops::embeddings_backward(dword_gpu, dposition_gpu, dtype_gpu, dout_gpu, ids_gpu, zero_types_gpu);
      expect_same_bits(dword_gpu, dword, "dword");
      expect_same_bits(dposition_gpu, dposition, "dposition");
      expect_same_bits(dtype_gpu, dtype, "dtoken_type (every token type 0)");
      const std::vector<float> got = from_gpu(dword_gpu);
      if (run == 0) first_run = got;
      else EXPECT_EQ(std::memcmp(first_run.data(), got.data(), got.size() * sizeof(float)), 0) << "run to run";
    }
    // Without token_type_ids every token has type 0: one run of all N tokens.
    Tensor dtype_gpu = to_gpu(type0);
    ops::embeddings_backward(Tensor{}, Tensor{}, dtype_gpu, dout_gpu, ids_gpu, Tensor{});
    expect_same_bits(dtype_gpu, dtype, "dtoken_type (no token_type_ids)");
  }
}

// The training step records embeddings_backward in a CUDA graph: the sort's temporaries are
// stream-ordered and nothing synchronises, so capture works and each replay gives the CPU's bits.
TEST(EmbeddingCuda, BackwardReplaysFromACudaGraph) {
  WW_REQUIRE_CUDA();
#ifndef NDEBUG
  GTEST_SKIP() << "debug builds synchronise after every launch, which a CUDA graph cannot record";
#else
  const int64_t B = 4, T = 512, C = 768, V = 50257, N = B * T;
  Tensor ids = ints_cpu(skewed_ids(N, V, 3), {B, T}), ids_gpu = to_gpu(ids);
  Tensor dout = random_cpu({B, T, C}, 44), dout_gpu = to_gpu(dout);
  const Tensor word0 = random_cpu({V, C}, 45), position0 = random_cpu({T, C}, 46);
  Tensor dword = word0.to(Device::cpu()), dposition = position0.to(Device::cpu());
  ops::embeddings_backward(dword, dposition, Tensor{}, dout, ids, Tensor{});

  Tensor dword_gpu = to_gpu(word0), dposition_gpu = to_gpu(position0);
  ops::check_device_input_errors();  // the error record exists before capture
  sync_device();
  ops::CapturedWork graph = ops::CapturedWork::capture(Device::cuda(0), [&] {
    ops::embeddings_backward(dword_gpu, dposition_gpu, Tensor{}, dout_gpu, ids_gpu, Tensor{});
  });
  for (int replay = 0; replay < 2; ++replay) {
    sync_device();
    dword_gpu.copy_from(word0);
    dposition_gpu.copy_from(position0);
    sync_device();
    graph.replay();
    expect_same_bits(dword_gpu, dword, "dword (graph replay " + std::to_string(replay) + ")");
    expect_same_bits(dposition_gpu, dposition, "dposition (graph replay " + std::to_string(replay) + ")");
  }
#endif
}

// With several bad ids the first in token order is reported (the sort keeps them in token order),
// for the word and the token-type table; rows no token hits stay untouched.
TEST(EmbeddingCuda, BackwardReportsTheFirstBadIdInTokenOrder) {
  WW_REQUIRE_CUDA();
  const int64_t B = 3, T = 50, C = 8, V = 10;
  std::vector<int32_t> values = random_ids(B * T, V - 1, 5);  // row V−1 is never hit
  values[size_t(2 * T + 7)] = 12;
  values[size_t(1 * T + 3)] = -4;
  values[size_t(2 * T + 40)] = 1000;
  Tensor ids = to_gpu(ints_cpu(values, {B, T}));
  Tensor dout = to_gpu(random_cpu({B, T, C}, 6));
  Tensor word0 = random_cpu({V, C}, 7), dword = to_gpu(word0);
  expect_error(
      [&] {
        ops::embeddings_backward(dword, Tensor{}, Tensor{}, dout, ids, Tensor{});
        ops::check_device_input_errors();
      },
      {"input id -4", "batch row 1", "position 3", "vocab size 10"});
  const std::vector<float> got = from_gpu(dword), want = word0.to_float_vector();
  EXPECT_EQ(std::memcmp(got.data() + (V - 1) * C, want.data() + (V - 1) * C, C * sizeof(float)), 0);

  std::vector<int32_t> types(size_t(B * T), 1);
  types[size_t(2 * T + 1)] = 2;
  types[size_t(0 * T + 9)] = 5;
  Tensor type_ids = to_gpu(ints_cpu(types, {B, T})), dtype = to_gpu(random_cpu({2, C}, 8));
  expect_error(
      [&] {
        ops::embeddings_backward(Tensor{}, Tensor{}, dtype, dout, to_gpu(ints_cpu(random_ids(B * T, V, 9), {B, T})),
                                 type_ids);
        ops::check_device_input_errors();
      },
      {"token type id 5", "batch row 0", "position 9", "2 types"});
}

}  // namespace
