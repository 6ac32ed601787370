// CUDA kernels for embeddings, LayerNorm, activations, dropout, residual/scale, token pooling,
// softmax and the losses, each against its CPU kernel (through the same op entry points) on random
// inputs at several shapes, including sizes that are not multiples of the block size and ragged
// padding masks. Skips with the reason where no GPU is usable.
//
// Tolerance, unless a test says otherwise (the CPU tests' convention):
//   |gpu − cpu| <= 1e-5·|cpu| + 1e-5·max|cpu|
// Exact (bit-for-bit) where both sides do the same fp32 operations in the same order: dropout (the
// same Philox mask), residual/add/scale, token selection, the embedding gradients (same order of
// additions). Outputs that the kernels overwrite are poisoned with NaN first, so an unwritten
// element fails. Accumulated gradients start from random values.
#include <gtest/gtest.h>

#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/activation.h"
#include "wattwise/ops/cross_entropy.h"
#include "wattwise/ops/dropout.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/embedding.h"
#include "wattwise/ops/graph.h"
#include "wattwise/ops/layernorm.h"
#include "wattwise/ops/softmax.h"
#ifdef WW_HAVE_CUDA
#include "kernels/cuda/common.h"
#endif

using namespace ww;

namespace {

constexpr double kRtol = 1e-5;

// Tensor::to and copy_from use cudaMemcpy (the legacy stream), the kernels their own non-blocking
// stream: synchronise the device around every transfer.
void sync_device() {
#ifdef WW_HAVE_CUDA
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
#endif
}

Tensor random_cpu(const Shape& shape, uint64_t seed, float scale = 1.0f, float shift = 0.0f) {
  Rng rng(seed, 11);
  std::vector<float> v(size_t(shape_numel(shape)));
  for (float& x : v) x = shift + scale * rng.normal();
  return Tensor::from_vector(v, shape);
}

Tensor ints_cpu(const std::vector<int32_t>& values, const Shape& shape) { return Tensor::from_vector(values, shape); }

Tensor to_gpu(const Tensor& cpu) {
  sync_device();
  Tensor gpu = cpu.to(Device::cuda(0));
  sync_device();
  return gpu;
}

// A GPU tensor full of NaN (all bits set).
Tensor poisoned_gpu(const Shape& shape) {
  Tensor gpu = Tensor::empty(shape, DType::F32, Device::cuda(0));
#ifdef WW_HAVE_CUDA
  EXPECT_EQ(cudaMemset(gpu.raw(), 0xFF, gpu.nbytes()), cudaSuccess);
#endif
  sync_device();
  return gpu;
}

Tensor poisoned_cpu(const Shape& shape) {
  Tensor cpu = Tensor::empty(shape, DType::F32);
  if (cpu.nbytes()) std::memset(cpu.raw(), 0xFF, cpu.nbytes());
  return cpu;
}

std::vector<float> from_gpu(const Tensor& gpu) {
  sync_device();
  return gpu.to_float_vector();
}

void expect_close(const Tensor& gpu, const Tensor& cpu, const std::string& what, double rtol = kRtol,
                  double atol = 0.0) {
  const std::vector<float> got = from_gpu(gpu), want = cpu.to_float_vector();
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0.0;
  for (float w : want) scale = std::max(scale, double(std::abs(w)));
  int reported = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rtol * std::abs(double(want[i])) + rtol * scale + atol;
    if (!(std::abs(double(got[i]) - double(want[i])) <= tol) && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: gpu " << got[i] << ", cpu " << want[i] << " (tolerance " << tol
                    << ")";
  }
}

void expect_same_bits(const Tensor& gpu, const Tensor& cpu, const std::string& what) {
  const std::vector<float> got = from_gpu(gpu), want = cpu.to_float_vector();
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: gpu " << got[i] << ", cpu " << want[i] << " (expected identical bits)";
}

using ww::testing::expect_error;

std::vector<int32_t> random_ids(int64_t n, int64_t limit, uint64_t seed) {
  Rng rng(seed, 3);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = int32_t(rng.below(uint64_t(limit)));
  return ids;
}

// Ragged padding: row b has a random number of real tokens in [0, T] (row 1 none, when B > 1).
std::vector<int32_t> ragged_mask(int64_t B, int64_t T, uint64_t seed) {
  Rng rng(seed, 5);
  std::vector<int32_t> mask(size_t(B * T), 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t length = b == 1 ? 0 : 1 + int64_t(rng.below(uint64_t(T)));
    for (int64_t t = 0; t < length; ++t) mask[size_t(b * T + t)] = 1;
  }
  return mask;
}

// ---------------------------------------------------------------------------------------------

TEST(CudaElementwise, EmbeddingsForwardAndBackwardMatchCpu) {
  WW_REQUIRE_CUDA();
  struct Case {
    int64_t B, T, C, V, P, TT, offset;
    bool with_type_ids;
  };
  for (const Case k : {Case{2, 5, 7, 11, 9, 2, 1, true}, Case{3, 17, 130, 6, 20, 0, 0, false},
                       Case{1, 1, 1, 3, 1, 1, 0, false}, Case{4, 33, 300, 40, 40, 2, 2, true},
                       Case{2, 128, 768, 500, 130, 2, 0, true}}) {
    SCOPED_TRACE("B=" + std::to_string(k.B) + " T=" + std::to_string(k.T) + " C=" + std::to_string(k.C));
    const uint64_t seed = uint64_t(k.B * 1000 + k.C);
    Tensor ids = ints_cpu(random_ids(k.B * k.T, k.V, seed), {k.B, k.T});  // few ids: many repeats
    Tensor types = k.with_type_ids ? ints_cpu(random_ids(k.B * k.T, k.TT, seed + 1), {k.B, k.T}) : Tensor{};
    Tensor word = random_cpu({k.V, k.C}, seed + 2);
    Tensor position = random_cpu({k.P, k.C}, seed + 3);
    Tensor token_type = k.TT ? random_cpu({k.TT, k.C}, seed + 4) : Tensor{};
    Tensor ids_gpu = to_gpu(ids), types_gpu = types.defined() ? to_gpu(types) : Tensor{};
    Tensor word_gpu = to_gpu(word), position_gpu = to_gpu(position);
    Tensor token_type_gpu = token_type.defined() ? to_gpu(token_type) : Tensor{};

    Tensor out = poisoned_cpu({k.B, k.T, k.C}), out_gpu = poisoned_gpu({k.B, k.T, k.C});
    ops::embeddings_forward(out, ids, types, word, position, token_type, k.offset);
    ops::embeddings_forward(out_gpu, ids_gpu, types_gpu, word_gpu, position_gpu, token_type_gpu, k.offset);
    expect_close(out_gpu, out, "embeddings out");

    // Gradients accumulate onto random values; the GPU adds in the CPU's order (bit-identical).
    Tensor dout = random_cpu({k.B, k.T, k.C}, seed + 5);
    Tensor dword = random_cpu({k.V, k.C}, seed + 6), dposition = random_cpu({k.P, k.C}, seed + 7);
    Tensor dtype = k.TT ? random_cpu({k.TT, k.C}, seed + 8) : Tensor{};
    Tensor dword_gpu = to_gpu(dword), dposition_gpu = to_gpu(dposition);
    Tensor dtype_gpu = dtype.defined() ? to_gpu(dtype) : Tensor{};
    ops::embeddings_backward(dword, dposition, dtype, dout, ids, types, k.offset);
    ops::embeddings_backward(dword_gpu, dposition_gpu, dtype_gpu, to_gpu(dout), ids_gpu, types_gpu, k.offset);
    expect_same_bits(dword_gpu, dword, "dword");
    expect_same_bits(dposition_gpu, dposition, "dposition");
    if (dtype.defined()) expect_same_bits(dtype_gpu, dtype, "dtoken_type");
  }
}

// C = 5: the scalar kernel; C = 8: four columns per thread.
TEST(CudaElementwise, EmbeddingIdsOutsideTheTableAreReported) {
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

// A GPU copy of `cpu` in `dtype` (rounded to nearest even).
Tensor gpu_as(const Tensor& cpu, DType dtype) {
  Tensor wide = to_gpu(cpu);
  if (dtype == DType::F32) return wide;
  Tensor narrow = Tensor::empty(cpu.shape(), dtype, Device::cuda(0));
  ops::cast(narrow, wide);
  sync_device();
  return narrow;
}

// `cpu` rounded to `dtype` and back (the values a 16-bit dout holds), on the CPU.
Tensor rounded_cpu(const Tensor& cpu, DType dtype) {
  if (dtype == DType::F32) return cpu.to(Device::cpu());
  Tensor narrow = Tensor::empty(cpu.shape(), dtype), back = Tensor::empty(cpu.shape(), DType::F32);
  ops::cast(narrow, cpu);
  ops::cast(back, narrow);
  return back;
}

// GPT-2-sized ids (N = 16 × 1024, vocab 50,257) with a skewed distribution, shuffled over the batch:
// rows hit thousands of times (the first and the last row among them), runs of exactly one and two
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
TEST(CudaElementwise, EmbeddingBackwardAtModelScaleIsBitIdenticalToCpu) {
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
TEST(CudaElementwise, EmbeddingBackwardReplaysFromACudaGraph) {
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
TEST(CudaElementwise, EmbeddingBackwardReportsTheFirstBadIdInTokenOrder) {
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

TEST(CudaElementwise, LayerNormMatchesCpu) {
  WW_REQUIRE_CUDA();
  for (const auto& [N, C] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {5, 768}, {70, 300}, {33, 1025}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C));
    const uint64_t seed = uint64_t(N * 7 + C);
    Tensor inp = random_cpu({N, C}, seed, 2.0f, 3.0f);  // a mean far from 0 tests the two passes
    Tensor weight = random_cpu({C}, seed + 1), bias = random_cpu({C}, seed + 2);
    Tensor inp_gpu = to_gpu(inp), weight_gpu = to_gpu(weight), bias_gpu = to_gpu(bias);
    Tensor out = poisoned_cpu({N, C}), mean = poisoned_cpu({N}), rstd = poisoned_cpu({N});
    Tensor out_gpu = poisoned_gpu({N, C}), mean_gpu = poisoned_gpu({N}), rstd_gpu = poisoned_gpu({N});
    ops::layernorm_forward(out, mean, rstd, inp, weight, bias, 1e-5f);
    ops::layernorm_forward(out_gpu, mean_gpu, rstd_gpu, inp_gpu, weight_gpu, bias_gpu, 1e-5f);
    expect_close(out_gpu, out, "layernorm out");
    expect_close(mean_gpu, mean, "layernorm mean");
    expect_close(rstd_gpu, rstd, "layernorm rstd");

    // In place (out aliases inp).
    Tensor in_place = to_gpu(inp), mean2 = poisoned_gpu({N}), rstd2 = poisoned_gpu({N});
    ops::layernorm_forward(in_place, mean2, rstd2, in_place, weight_gpu, bias_gpu, 1e-5f);
    expect_close(in_place, out, "layernorm in place");

    Tensor dout = random_cpu({N, C}, seed + 3);
    Tensor dweight = random_cpu({C}, seed + 4), dbias = random_cpu({C}, seed + 5);
    Tensor dout_gpu = to_gpu(dout), dweight_gpu = to_gpu(dweight), dbias_gpu = to_gpu(dbias);
    Tensor dweight_start = to_gpu(dweight), dbias_start = to_gpu(dbias);
    Tensor dinp = poisoned_cpu({N, C}), dinp_gpu = poisoned_gpu({N, C});
    ops::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd);
    ops::layernorm_backward(dinp_gpu, dweight_gpu, dbias_gpu, dout_gpu, inp_gpu, weight_gpu, mean_gpu, rstd_gpu);
    expect_close(dinp_gpu, dinp, "layernorm dinp");
    expect_close(dweight_gpu, dweight, "layernorm dweight");
    expect_close(dbias_gpu, dbias, "layernorm dbias");

    // Deterministic: the same parameter gradients again, bit for bit; and each one alone.
    ops::layernorm_backward(Tensor{}, dweight_start, Tensor{}, dout_gpu, inp_gpu, weight_gpu, mean_gpu, rstd_gpu);
    ops::layernorm_backward(Tensor{}, Tensor{}, dbias_start, dout_gpu, inp_gpu, weight_gpu, mean_gpu, rstd_gpu);
    EXPECT_EQ(from_gpu(dweight_start), from_gpu(dweight_gpu));
    EXPECT_EQ(from_gpu(dbias_start), from_gpu(dbias_gpu));
  }
}

// LayerNorm at model scale (N = 4096 rows: 128 chunks of dweight/dbias partials) with C = 768 (the
// row in registers), 1024 (exactly the register capacity) and 2048 (half of it re-read), f32 and
// bf16 (16-byte vectors), and the one-element path (rows one element off 16-byte alignment).
TEST(CudaElementwise, LayerNormAtModelScaleMatchesCpu) {
  WW_REQUIRE_CUDA();
  const int64_t N = 4096;
  for (const int64_t C : {int64_t(768), int64_t(1024), int64_t(2048)}) {
    for (DType dtype : {DType::F32, DType::BF16}) {
      for (bool shifted : {false, true}) {
        SCOPED_TRACE("C=" + std::to_string(C) + " " + std::string(dtype_name(dtype)) + (shifted ? " shifted" : ""));
        const double rtol = dtype == DType::F32 ? kRtol : 1e-2, param_rtol = dtype == DType::F32 ? kRtol : 1e-4;
        Tensor inp = rounded_cpu(random_cpu({N, C}, uint64_t(C), 2.0f, 3.0f), dtype);
        Tensor dout = rounded_cpu(random_cpu({N, C}, uint64_t(C) + 1), dtype);
        Tensor weight = random_cpu({C}, uint64_t(C) + 2, 0.2f, 1.0f), bias = random_cpu({C}, uint64_t(C) + 3);
        Tensor out = poisoned_cpu({N, C}), mean = poisoned_cpu({N}), rstd = poisoned_cpu({N});
        ops::layernorm_forward(out, mean, rstd, inp, weight, bias, 1e-5f);
        Tensor dinp = poisoned_cpu({N, C});
        Tensor dweight = random_cpu({C}, uint64_t(C) + 4), dbias = random_cpu({C}, uint64_t(C) + 5);
        Tensor dweight_gpu = to_gpu(dweight), dbias_gpu = to_gpu(dbias);
        ops::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd);

        // GPU activations; shifted: views one element into larger buffers (not 16-byte aligned).
        std::vector<Tensor> keep;
        auto place = [&](const Tensor& cpu) {
          Tensor source = gpu_as(cpu, dtype);
          if (!shifted) return source;
          Tensor buffer = Tensor::empty({N * C + 1}, dtype, Device::cuda(0));
          Tensor view = Tensor::view(static_cast<char*>(buffer.raw()) + dtype_size(dtype), {N, C}, dtype,
                                     Device::cuda(0));
          sync_device();
          view.copy_from(source);
          sync_device();
          keep.push_back(buffer);
          return view;
        };
        Tensor inp_gpu = place(inp), dout_gpu = place(dout), out_gpu = place(poisoned_cpu({N, C}));
        Tensor dinp_gpu = place(poisoned_cpu({N, C}));
        Tensor weight_gpu = to_gpu(weight), bias_gpu = to_gpu(bias);
        Tensor mean_gpu = poisoned_gpu({N}), rstd_gpu = poisoned_gpu({N});
        ops::layernorm_forward(out_gpu, mean_gpu, rstd_gpu, inp_gpu, weight_gpu, bias_gpu, 1e-5f);
        expect_close(out_gpu, out, "layernorm out", rtol);
        expect_close(mean_gpu, mean, "layernorm mean");
        expect_close(rstd_gpu, rstd, "layernorm rstd");
        ops::layernorm_backward(dinp_gpu, dweight_gpu, dbias_gpu, dout_gpu, inp_gpu, weight_gpu, mean_gpu, rstd_gpu);
        expect_close(dinp_gpu, dinp, "layernorm dinp", rtol);
        expect_close(dweight_gpu, dweight, "layernorm dweight", param_rtol);
        expect_close(dbias_gpu, dbias, "layernorm dbias", param_rtol);
      }
    }
  }
}

TEST(CudaElementwise, ActivationsMatchCpu) {
  WW_REQUIRE_CUDA();
  using Forward = void (*)(const Tensor&, const Tensor&);
  using Backward = void (*)(const Tensor&, const Tensor&, const Tensor&);
  struct Activation {
    const char* name;
    Forward forward;
    Backward backward;
    bool backward_from_output;  // tanh's backward reads the forward output
    double atol;                // an absolute floor where the CPU kernel approximates
  };
  // The CPU's GELU evaluates erf within 4.3e-7 absolute (A&S 7.1.26, as PyTorch's vectorised CPU
  // kernel), so GELU(x) = x·Φ(x) is within |x|·2.2e-7 (< 4e-6 for these |x| < 18) of CUDA's erff;
  // relative to a tail value such as GELU(−2.6) = −0.0053 that is more than 1e-5 (H200, 2026-12-06).
  for (const Activation& a : {Activation{"gelu", ops::gelu_forward, ops::gelu_backward, false, 4e-6},
                              Activation{"relu", ops::relu_forward, ops::relu_backward, false, 0.0},
                              Activation{"tanh", ops::tanh_forward, ops::tanh_backward, true, 0.0}}) {
    for (int64_t n : {int64_t(1), int64_t(5), int64_t(1000), int64_t(100003)}) {
      SCOPED_TRACE(std::string(a.name) + " n=" + std::to_string(n));
      Tensor inp = random_cpu({n}, uint64_t(n), 3.0f), inp_gpu = to_gpu(inp);
      Tensor out = poisoned_cpu({n}), out_gpu = poisoned_gpu({n});
      a.forward(out, inp);
      a.forward(out_gpu, inp_gpu);
      expect_close(out_gpu, out, std::string(a.name) + " forward", kRtol, a.atol);

      Tensor dout = random_cpu({n}, uint64_t(n) + 1), dout_gpu = to_gpu(dout);
      const Tensor& saved = a.backward_from_output ? out : inp;
      const Tensor& saved_gpu = a.backward_from_output ? out_gpu : inp_gpu;
      Tensor dinp = poisoned_cpu({n}), dinp_gpu = poisoned_gpu({n});
      a.backward(dinp, saved, dout);
      a.backward(dinp_gpu, saved_gpu, dout_gpu);
      // dout is up to ~5 here: the backward's floor scales with it.
      expect_close(dinp_gpu, dinp, std::string(a.name) + " backward", kRtol, 5 * a.atol);
      // In place: dinp aliases dout.
      a.backward(dout_gpu, saved_gpu, dout_gpu);
      expect_close(dout_gpu, dinp, std::string(a.name) + " backward in place", kRtol, 5 * a.atol);
    }
  }
}

TEST(CudaElementwise, DropoutMaskEqualsCpuBitForBit) {
  WW_REQUIRE_CUDA();
  const uint64_t seed = 0x0123456789ABCDEFull, offset = (uint64_t(1) << 33) + 5;  // high words matter
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(4), int64_t(5), int64_t(1023), int64_t(100001)}) {
    for (float p : {0.0f, 0.1f, 0.5f}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " p=" + std::to_string(p));
      Tensor inp = random_cpu({n}, uint64_t(n) + 9), inp_gpu = to_gpu(inp);
      Tensor out = poisoned_cpu({n}), out_gpu = poisoned_gpu({n});
      ops::dropout_forward(out, inp, p, seed, offset);
      ops::dropout_forward(out_gpu, inp_gpu, p, seed, offset);
      expect_same_bits(out_gpu, out, "dropout forward");
      Tensor dinp = poisoned_cpu({n}), dinp_gpu = poisoned_gpu({n});
      ops::dropout_backward(dinp, inp, p, seed, offset + 1);
      ops::dropout_backward(dinp_gpu, inp_gpu, p, seed, offset + 1);
      expect_same_bits(dinp_gpu, dinp, "dropout backward");
      if (n > 1) {  // a view one element in: not 16-byte aligned, so the kernel's scalar form
        Tensor view_out = poisoned_cpu({n - 1}), view_out_gpu = poisoned_gpu({n - 1});
        ops::dropout_forward(view_out, inp.slice(1, n), p, seed, offset);
        ops::dropout_forward(view_out_gpu, inp_gpu.slice(1, n), p, seed, offset);
        expect_same_bits(view_out_gpu, view_out, "dropout of an unaligned view");
      }
      // 16-bit: the f32 rule on the 16-bit values, rounded once.
      for (DType half : {DType::BF16, DType::F16}) {
        Tensor inp16 = Tensor::empty({n}, half, Device::cuda(0)), out16 = Tensor::empty({n}, half, Device::cuda(0));
        ops::cast(inp16, inp_gpu);
        ops::dropout_forward(out16, inp16, p, seed, offset);
        Tensor widened = Tensor::from_vector(from_gpu(inp16), {n}), want = poisoned_cpu({n});
        ops::dropout_forward(want, widened, p, seed, offset);
        Tensor want16 = Tensor::empty({n}, half, Device::cuda(0));
        ops::cast(want16, to_gpu(want));
        expect_same_bits(out16, Tensor::from_vector(from_gpu(want16), {n}), "dropout " + std::string(dtype_name(half)));
      }
      ops::dropout_forward(inp_gpu, inp_gpu, p, seed, offset);  // in place
      expect_same_bits(inp_gpu, out, "dropout in place");
    }
  }
}

// Dropout inside residual_forward and residual_layernorm_forward on the GPU: the bits of
// dropout_forward into b followed by the plain op, in f32, bf16 and f16, on the 16-byte vector path
// (C = 768) and the scalar one (C = 100, and views one element in), with the step counter in a
// device offset_base; b is not written.
TEST(CudaElementwise, DropoutInsideTheResidualOpsEqualsDropoutThenTheOp) {
  WW_REQUIRE_CUDA();
  const uint64_t seed = 77, offset = (uint64_t(2) << 32) + 9;
  Tensor step = Tensor::empty({1}, DType::I64);
  step.data<int64_t>()[0] = int64_t(5) << 16;
  const Tensor step_gpu = step.to(Device::cuda(0));
  for (const auto& [N, C, shift] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {64, 768, 0}, {7, 100, 0}, {9, 768, 1}}) {
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C) + " shift=" + std::to_string(shift) + " " +
                   std::string(dtype_name(dtype)));
      // Operands `shift` elements into their buffers (shift 1: not 16-byte aligned).
      auto operand = [&](uint64_t data_seed, Tensor& owner) {
        owner = gpu_as(random_cpu({N * C + shift}, data_seed), dtype);
        return Tensor::view(static_cast<char*>(owner.raw()) + shift * dtype_size(dtype), {N, C}, dtype,
                            Device::cuda(0));
      };
      Tensor a_owner, b_owner;
      const Tensor a = operand(21, a_owner), b = operand(22, b_owner);
      const Tensor weight = to_gpu(random_cpu({C}, 23)), bias = to_gpu(random_cpu({C}, 24));
      const ops::ElementDropout drop{0.1f, seed, offset, step_gpu};
      Tensor dropped = Tensor::empty({N, C}, dtype, Device::cuda(0));
      ops::dropout_forward(dropped, b, 0.1f, seed, offset, step_gpu);
      const std::vector<float> b_before = from_gpu(b);

      Tensor want = Tensor::empty({N, C}, dtype, Device::cuda(0)), got = Tensor::empty({N, C}, dtype, Device::cuda(0));
      ops::residual_forward(want, a, dropped);
      ops::residual_forward(got, a, b, drop);
      expect_same_bits(got, Tensor::from_vector(from_gpu(want), {N, C}), "residual + dropout");

      auto f32 = [&](const Shape& shape) { return Tensor::empty(shape, DType::F32, Device::cuda(0)); };
      Tensor out_want = Tensor::empty({N, C}, dtype, Device::cuda(0)), sum_want = Tensor::empty({N, C}, dtype, Device::cuda(0));
      Tensor mean_want = f32({N}), rstd_want = f32({N});
      ops::residual_layernorm_forward(out_want, sum_want, mean_want, rstd_want, a, dropped, weight, bias, 1e-5f);
      Tensor out = Tensor::empty({N, C}, dtype, Device::cuda(0)), sum = Tensor::empty({N, C}, dtype, Device::cuda(0));
      Tensor mean = f32({N}), rstd = f32({N});
      ops::residual_layernorm_forward(out, sum, mean, rstd, a, b, weight, bias, 1e-5f, drop);
      expect_same_bits(sum, Tensor::from_vector(from_gpu(sum_want), {N, C}), "residual LayerNorm + dropout: sum");
      expect_same_bits(out, Tensor::from_vector(from_gpu(out_want), {N, C}), "residual LayerNorm + dropout: out");
      expect_same_bits(mean, Tensor::from_vector(from_gpu(mean_want), {N}), "mean");
      expect_same_bits(rstd, Tensor::from_vector(from_gpu(rstd_want), {N}), "rstd");
      EXPECT_EQ(from_gpu(b), b_before) << "b must not be written";
    }
  }
}

// Inference's residual LayerNorm keeps no sum (sum undefined): the same out, mean and rstd bits as
// with the sum stored, with and without dropout, on the vector path (33 rows: parameters
// prefetched; 1,100: not), the scalar one (C = 100) and
// rows longer than a lane's register cache (C = 1,536 on the vector path, 2,001 on the scalar
// one), which recompute a + b where the kept-sum kernel re-reads it.
TEST(CudaElementwise, ResidualLayerNormWithoutTheSumMatchesTheKeptSum) {
  WW_REQUIRE_CUDA();
  Tensor step = Tensor::empty({1}, DType::I64);
  step.data<int64_t>()[0] = int64_t(3) << 16;
  const Tensor step_gpu = step.to(Device::cuda(0));
  for (const auto& [N, C] :
       std::vector<std::pair<int64_t, int64_t>>{{33, 768}, {1100, 768}, {5, 100}, {6, 1536}, {3, 2001}}) {
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      for (float p : {0.0f, 0.1f}) {
        SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C) + " " + std::string(dtype_name(dtype)) +
                     " p=" + std::to_string(p));
        const Tensor a = gpu_as(random_cpu({N, C}, 31), dtype), b = gpu_as(random_cpu({N, C}, 32), dtype);
        const Tensor weight = to_gpu(random_cpu({C}, 33)), bias = to_gpu(random_cpu({C}, 34));
        const ops::ElementDropout drop{p, 99, 7, step_gpu};
        auto f32 = [&](const Shape& shape) { return Tensor::empty(shape, DType::F32, Device::cuda(0)); };
        Tensor out_want = Tensor::empty({N, C}, dtype, Device::cuda(0)), sum = Tensor::empty({N, C}, dtype, Device::cuda(0));
        Tensor mean_want = f32({N}), rstd_want = f32({N});
        ops::residual_layernorm_forward(out_want, sum, mean_want, rstd_want, a, b, weight, bias, 1e-5f, drop);
        Tensor out = Tensor::empty({N, C}, dtype, Device::cuda(0)), mean = f32({N}), rstd = f32({N});
        ops::residual_layernorm_forward(out, Tensor(), mean, rstd, a, b, weight, bias, 1e-5f, drop);
        expect_same_bits(out, Tensor::from_vector(from_gpu(out_want), {N, C}), "out without the sum");
        expect_same_bits(mean, Tensor::from_vector(from_gpu(mean_want), {N}), "mean without the sum");
        expect_same_bits(rstd, Tensor::from_vector(from_gpu(rstd_want), {N}), "rstd without the sum");
      }
    }
  }
}

TEST(CudaElementwise, ResidualAddScaleAndTokenSelectionMatchCpu) {
  WW_REQUIRE_CUDA();
  for (int64_t n : {int64_t(1), int64_t(257), int64_t(70001)}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    Tensor a = random_cpu({n}, 1), b = random_cpu({n}, 2);
    Tensor a_gpu = to_gpu(a), b_gpu = to_gpu(b);
    Tensor out = poisoned_cpu({n}), out_gpu = poisoned_gpu({n});
    ops::residual_forward(out, a, b);
    ops::residual_forward(out_gpu, a_gpu, b_gpu);
    expect_same_bits(out_gpu, out, "residual");
    ops::add_inplace(a, b);
    ops::add_inplace(a_gpu, b_gpu);
    expect_same_bits(a_gpu, a, "add_inplace");
    ops::scale_inplace(a, 0.37f);
    ops::scale_inplace(a_gpu, 0.37f);
    expect_same_bits(a_gpu, a, "scale_inplace");
  }
  struct Case {
    int64_t B, T, C, index;
  };
  for (const Case k : {Case{2, 5, 7, 0}, Case{3, 4, 130, 3}, Case{1, 1, 1, 0}}) {
    SCOPED_TRACE("B=" + std::to_string(k.B) + " T=" + std::to_string(k.T) + " C=" + std::to_string(k.C));
    Tensor inp = random_cpu({k.B, k.T, k.C}, 3);
    Tensor out = poisoned_cpu({k.B, k.C}), out_gpu = poisoned_gpu({k.B, k.C});
    ops::select_token_forward(out, inp, k.index);
    ops::select_token_forward(out_gpu, to_gpu(inp), k.index);
    expect_same_bits(out_gpu, out, "select_token forward");
    Tensor dout = random_cpu({k.B, k.C}, 4), dinp = random_cpu({k.B, k.T, k.C}, 5), dinp_gpu = to_gpu(dinp);
    ops::select_token_backward(dinp, dout, k.index);
    ops::select_token_backward(dinp_gpu, to_gpu(dout), k.index);
    expect_same_bits(dinp_gpu, dinp, "select_token backward");
  }
}

TEST(CudaElementwise, MaskedMeanMatchesCpuWithRaggedPadding) {
  WW_REQUIRE_CUDA();
  struct Case {
    int64_t B, T, C;
  };
  for (const Case k : {Case{2, 5, 7}, Case{4, 300, 130}, Case{3, 1, 1}}) {
    SCOPED_TRACE("B=" + std::to_string(k.B) + " T=" + std::to_string(k.T) + " C=" + std::to_string(k.C));
    Tensor inp = random_cpu({k.B, k.T, k.C}, 6), mask = ints_cpu(ragged_mask(k.B, k.T, 7), {k.B, k.T});
    Tensor mask_gpu = to_gpu(mask);
    Tensor out = poisoned_cpu({k.B, k.C}), out_gpu = poisoned_gpu({k.B, k.C});
    ops::masked_mean_forward(out, inp, mask);
    ops::masked_mean_forward(out_gpu, to_gpu(inp), mask_gpu);
    expect_close(out_gpu, out, "masked_mean forward");
    Tensor dout = random_cpu({k.B, k.C}, 8);
    Tensor dinp = poisoned_cpu({k.B, k.T, k.C}), dinp_gpu = poisoned_gpu({k.B, k.T, k.C});
    ops::masked_mean_backward(dinp, dout, mask);
    ops::masked_mean_backward(dinp_gpu, to_gpu(dout), mask_gpu);
    expect_close(dinp_gpu, dinp, "masked_mean backward");
  }
  std::vector<int32_t> bad(2 * 4, 1);
  bad[5] = 2;
  Tensor bad_gpu = to_gpu(ints_cpu(bad, {2, 4}));
  Tensor out = poisoned_gpu({2, 3});
  expect_error(
      [&] {
        ops::masked_mean_forward(out, to_gpu(random_cpu({2, 4, 3}, 9)), bad_gpu);
        ops::check_device_input_errors();
      },
      {"mask value 2", "batch row 1", "position 1"});
}

TEST(CudaElementwise, SoftmaxMatchesCpu) {
  WW_REQUIRE_CUDA();
  for (const auto& [rows, cols] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 5}, {7, 300}, {4, 1000}, {2, 4099}}) {
    SCOPED_TRACE("rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
    Tensor inp = random_cpu({rows, cols}, uint64_t(rows + cols), 10.0f), inp_gpu = to_gpu(inp);
    Tensor out = poisoned_cpu({rows, cols}), out_gpu = poisoned_gpu({rows, cols});
    ops::softmax_forward(out, inp);
    ops::softmax_forward(out_gpu, inp_gpu);
    expect_close(out_gpu, out, "softmax forward");
    ops::softmax_forward(inp_gpu, inp_gpu);  // in place
    expect_close(inp_gpu, out, "softmax forward in place");

    // Backward from a moderate softmax (unit-scale logits): with a very peaked one, dout − dot cancels
    // and the one-ulp difference of the two fp32 dot products (summed in different orders) would
    // exceed the tolerance although both are right.
    Tensor moderate = random_cpu({rows, cols}, uint64_t(rows * cols), 1.0f);
    ops::softmax_forward(out, moderate);
    ops::softmax_forward(out_gpu, to_gpu(moderate));
    Tensor dout = random_cpu({rows, cols}, 3), dout_gpu = to_gpu(dout);
    Tensor dinp = poisoned_cpu({rows, cols}), dinp_gpu = poisoned_gpu({rows, cols});
    ops::softmax_backward(dinp, out, dout);
    ops::softmax_backward(dinp_gpu, out_gpu, dout_gpu);
    expect_close(dinp_gpu, dinp, "softmax backward");
    ops::softmax_backward(dout_gpu, out_gpu, dout_gpu);  // dinp aliases dout
    expect_close(dout_gpu, dinp, "softmax backward in place");
  }
}

TEST(CudaElementwise, CrossEntropyAndMseMatchCpu) {
  WW_REQUIRE_CUDA();
  for (const auto& [N, K] : std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {5, 3}, {9, 1000}, {4, 30522}, {33, 50257}}) {
    for (float smoothing : {0.0f, 0.1f}) {
      SCOPED_TRACE("N=" + std::to_string(N) + " K=" + std::to_string(K) + " eps=" + std::to_string(smoothing));
      Tensor logits = random_cpu({N, K}, uint64_t(N * K), 4.0f), logits_gpu = to_gpu(logits);
      std::vector<int32_t> label_values = random_ids(N, K, uint64_t(N + K));
      if (N > 1) label_values[1] = -100;  // an ignored row
      Tensor labels = ints_cpu(label_values, {N}), labels_gpu = to_gpu(labels);
      const int64_t valid = ops::count_valid_labels(labels);
      EXPECT_EQ(ops::count_valid_labels(labels_gpu), valid);
      Tensor losses = poisoned_cpu({N}), losses_gpu = poisoned_gpu({N});
      ops::cross_entropy_forward(losses, logits, labels, smoothing);
      ops::cross_entropy_forward(losses_gpu, logits_gpu, labels_gpu, smoothing);
      expect_close(losses_gpu, losses, "cross_entropy losses");
      const float scale = 1.0f / float(valid);
      Tensor dlogits = poisoned_cpu({N, K}), dlogits_gpu = poisoned_gpu({N, K});
      ops::cross_entropy_backward(dlogits, logits, labels, smoothing, scale);
      ops::cross_entropy_backward(dlogits_gpu, logits_gpu, labels_gpu, smoothing, scale);
      expect_close(dlogits_gpu, dlogits, "cross_entropy dlogits");
      ops::cross_entropy_backward(logits_gpu, logits_gpu, labels_gpu, smoothing, scale);  // in place
      expect_close(logits_gpu, dlogits, "cross_entropy dlogits in place");
    }
  }
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

  for (int64_t N : {int64_t(1), int64_t(1001)}) {
    Tensor pred = random_cpu({N}, 10), target = random_cpu({N}, 11);
    Tensor losses_cpu = poisoned_cpu({N}), losses_gpu = poisoned_gpu({N});
    ops::mse_forward(losses_cpu, pred, target);
    ops::mse_forward(losses_gpu, to_gpu(pred), to_gpu(target));
    expect_close(losses_gpu, losses_cpu, "mse losses");
    Tensor dpred = poisoned_cpu({N}), dpred_gpu = poisoned_gpu({N});
    ops::mse_backward(dpred, pred, target, 0.25f);
    ops::mse_backward(dpred_gpu, to_gpu(pred), to_gpu(target), 0.25f);
    expect_close(dpred_gpu, dpred, "mse dpred");
  }
}

// GPT-2's LM head: K = 50,257 (odd, so consecutive rows start at every 16-byte alignment and the
// staged kernel's unaligned head/tail paths run), f32 and 16-bit logits, ignored rows, the first and last
// class as labels, label smoothing. The fused kernel gives the separate kernels' bits, also in place
// (dlogits aliasing logits, as gpt2.cpp calls it); a dlogits at another offset modulo 16 bytes than
// logits takes the scalar path with the same values.
TEST(CudaElementwise, CrossEntropyAtGpt2VocabFusedEqualsSeparate) {
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
TEST(CudaElementwise, CrossEntropyOnPaddedGpt2RowsMatchesCpu) {
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
