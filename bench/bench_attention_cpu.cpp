// CPU attention at BERT-base size: B=32, T=128, C=768, H=12 (D=64), ragged key-padding mask.
//   build/bench/bench_attention_cpu
// Debian's OpenBLAS 0.3.21 does not recognise recent Xeons (e.g. CPU model 207) and falls back to
// its slow Prescott kernels; OPENBLAS_CORETYPE=SkylakeX (or Cooperlake) picks the AVX-512 ones.
// OPENBLAS_VERBOSE=2 prints the core it chose.
#include <benchmark/benchmark.h>

#include <vector>

#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/ops/attention.h"

namespace {

constexpr int64_t kBatch = 32, kSeqLen = 128, kChannels = 768, kHeads = 12;

struct AttentionBuffers {
  ww::Tensor qkv, key_mask, out, probs, dout, dqkv, scratch;

  AttentionBuffers() {
    ww::Rng rng(1);
    std::vector<float> qkv_values(size_t(kBatch * kSeqLen * 3 * kChannels));
    for (float& x : qkv_values) x = rng.normal();
    qkv = ww::Tensor::from_vector(qkv_values, {kBatch, kSeqLen, 3 * kChannels});
    std::vector<float> dout_values(size_t(kBatch * kSeqLen * kChannels));
    for (float& x : dout_values) x = rng.normal();
    dout = ww::Tensor::from_vector(dout_values, {kBatch, kSeqLen, kChannels});
    // Sequence lengths spread between T/4 and T, as in a padded fine-tuning batch.
    std::vector<int32_t> mask(size_t(kBatch * kSeqLen), 0);
    for (int64_t b = 0; b < kBatch; ++b) {
      int64_t length = kSeqLen / 4 + int64_t(rng.below(uint64_t(3 * kSeqLen / 4 + 1)));
      for (int64_t t = 0; t < length; ++t) mask[size_t(b * kSeqLen + t)] = 1;
    }
    key_mask = ww::Tensor::from_vector(mask, {kBatch, kSeqLen});
    out = ww::Tensor::empty({kBatch, kSeqLen, kChannels}, ww::DType::F32);
    probs = ww::Tensor::empty({kBatch, kHeads, kSeqLen, kSeqLen}, ww::DType::F32);
    dqkv = ww::Tensor::empty(qkv.shape(), ww::DType::F32);
    scratch = ww::Tensor::empty(probs.shape(), ww::DType::F32);
  }
};

// Arg: dropout probability in percent.
void BM_AttentionForward(benchmark::State& state) {
  AttentionBuffers buf;
  const float p = float(state.range(0)) / 100.0f;
  for (auto _ : state) {
    ww::ops::attention_forward(buf.out, buf.probs, buf.qkv, buf.key_mask, kHeads, false, p, 7, 0);
    benchmark::DoNotOptimize(buf.out.raw());
  }
}

void BM_AttentionForwardBackward(benchmark::State& state) {
  AttentionBuffers buf;
  const float p = float(state.range(0)) / 100.0f;
  for (auto _ : state) {
    ww::ops::attention_forward(buf.out, buf.probs, buf.qkv, buf.key_mask, kHeads, false, p, 7, 0);
    ww::ops::attention_backward(buf.dqkv, buf.scratch, buf.dout, buf.qkv, buf.probs, buf.key_mask,
                                kHeads, false, p, 7, 0);
    benchmark::DoNotOptimize(buf.dqkv.raw());
  }
}

}  // namespace

BENCHMARK(BM_AttentionForward)->Arg(0)->Arg(10)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AttentionForwardBackward)->Arg(0)->Arg(10)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
