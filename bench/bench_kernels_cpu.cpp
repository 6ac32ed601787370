// CPU kernel timings at DistilBERT shapes (N = 32 sequences × 128 tokens, C = 768, FFN 3072).
// Run: build/bench/bench_kernels_cpu [--benchmark_filter=Linear]
#include <benchmark/benchmark.h>

#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/layernorm.h"
#include "wattwise/ops/linear.h"

namespace {

constexpr int64_t kTokens = 32 * 128;
constexpr int64_t kHidden = 768;

ww::Tensor random_tensor(const ww::Shape& shape, uint64_t seed) {
  ww::Tensor t = ww::Tensor::empty(shape, ww::DType::F32);
  ww::Rng rng(seed);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = 0.05f * rng.normal();
  return t;
}

// Counts 2·N·IC·OC flops per matrix product.
void set_flops(benchmark::State& state, double products, int64_t IC, int64_t OC) {
  state.counters["GFLOP/s"] = benchmark::Counter(products * 2.0 * double(kTokens) * double(IC) * double(OC),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

void BM_LinearForward(benchmark::State& state) {
  const int64_t IC = state.range(0), OC = state.range(1);
  ww::Tensor inp = random_tensor({kTokens, IC}, 1), weight = random_tensor({OC, IC}, 2), bias = random_tensor({OC}, 3);
  ww::Tensor out = ww::Tensor::empty({kTokens, OC}, ww::DType::F32);
  for (auto _ : state) {
    ww::ops::linear_forward(out, inp, weight, bias);
    benchmark::DoNotOptimize(out.raw());
  }
  set_flops(state, 1, IC, OC);
}

void BM_LinearBackward(benchmark::State& state) {
  const int64_t IC = state.range(0), OC = state.range(1);
  ww::Tensor inp = random_tensor({kTokens, IC}, 1), weight = random_tensor({OC, IC}, 2), dout = random_tensor({kTokens, OC}, 3);
  ww::Tensor dinp = ww::Tensor::empty({kTokens, IC}, ww::DType::F32);
  ww::Tensor dweight = ww::Tensor::zeros({OC, IC}, ww::DType::F32), dbias = ww::Tensor::zeros({OC}, ww::DType::F32);
  for (auto _ : state) {
    ww::ops::linear_backward(dinp, dweight, dbias, dout, inp, weight);
    benchmark::DoNotOptimize(dinp.raw());
  }
  set_flops(state, 2, IC, OC);
}

void BM_LayerNormForward(benchmark::State& state) {
  ww::Tensor inp = random_tensor({kTokens, kHidden}, 1), weight = random_tensor({kHidden}, 2),
             bias = random_tensor({kHidden}, 3);
  ww::Tensor out = ww::Tensor::empty({kTokens, kHidden}, ww::DType::F32);
  ww::Tensor mean = ww::Tensor::empty({kTokens}, ww::DType::F32), rstd = ww::Tensor::empty({kTokens}, ww::DType::F32);
  for (auto _ : state) {
    ww::ops::layernorm_forward(out, mean, rstd, inp, weight, bias, 1e-12f);
    benchmark::DoNotOptimize(out.raw());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * 2 * kTokens * kHidden * int64_t(sizeof(float)));
}

void BM_LayerNormBackward(benchmark::State& state) {
  ww::Tensor inp = random_tensor({kTokens, kHidden}, 1), weight = random_tensor({kHidden}, 2),
             bias = random_tensor({kHidden}, 3), dout = random_tensor({kTokens, kHidden}, 4);
  ww::Tensor out = ww::Tensor::empty({kTokens, kHidden}, ww::DType::F32);
  ww::Tensor mean = ww::Tensor::empty({kTokens}, ww::DType::F32), rstd = ww::Tensor::empty({kTokens}, ww::DType::F32);
  ww::ops::layernorm_forward(out, mean, rstd, inp, weight, bias, 1e-12f);
  ww::Tensor dinp = ww::Tensor::empty({kTokens, kHidden}, ww::DType::F32);
  ww::Tensor dweight = ww::Tensor::zeros({kHidden}, ww::DType::F32), dbias = ww::Tensor::zeros({kHidden}, ww::DType::F32);
  for (auto _ : state) {
    ww::ops::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd);
    benchmark::DoNotOptimize(dinp.raw());
  }
  // Reads inp and dout twice (input gradient, then parameter gradients), writes dinp.
  state.SetBytesProcessed(int64_t(state.iterations()) * 5 * kTokens * kHidden * int64_t(sizeof(float)));
}

// {IC, OC}: attention output projection, FFN in, FFN out.
BENCHMARK(BM_LinearForward)->Args({kHidden, kHidden})->Args({kHidden, 4 * kHidden})->Args({4 * kHidden, kHidden})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LinearBackward)->Args({kHidden, kHidden})->Args({kHidden, 4 * kHidden})->Args({4 * kHidden, kHidden})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LayerNormForward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LayerNormBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
