// CPU inference throughput of a random-init DistilBERT/BERT-base classifier at a fixed shape.
//   build/bench/bench_inference_cpu --benchmark_min_time=5
// Reports ms per example (counter "ms_per_example"); set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS
// to pin the core count.
#include <benchmark/benchmark.h>

#include "kernels/cpu/blas_setup.h"
#include "wattwise/core/rng.h"
#include "wattwise/models/sequence_classifier.h"

using namespace ww;
using namespace ww::models;

static void run(benchmark::State& state, Architecture arch) {
  const int64_t B = state.range(0), T = state.range(1);
  ModelConfig config = preset_config(arch, "base", 30522);
  SequenceClassifier model(config, Device::cpu());
  model.init_weights(1);
  Rng rng(2);
  std::vector<int32_t> ids(size_t(B * T)), mask(size_t(B * T), 1);
  for (auto& id : ids) id = int32_t(1 + rng.below(30521));
  Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {B, T});
  batch.attention_mask = Tensor::from_vector(mask, {B, T});
  model.forward(batch, false);  // warm-up: sizes the activation arena
  for (auto _ : state) benchmark::DoNotOptimize(model.forward(batch, false).raw());
  state.counters["ms_per_example"] =
      benchmark::Counter(double(B) * 1e-3, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(state.iterations() * B);
}

static void BM_DistilBertBaseInference(benchmark::State& state) { run(state, Architecture::DistilBert); }
static void BM_BertBaseInference(benchmark::State& state) { run(state, Architecture::Bert); }
BENCHMARK(BM_DistilBertBaseInference)->Args({32, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_BertBaseInference)->Args({32, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
int main(int argc, char** argv) {
  ww::kernels::cpu::reexec_with_fast_runtime_if_needed(argv);  // same BLAS kernels as the CLI
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
