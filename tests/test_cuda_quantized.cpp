// Whole quantized models on CUDA against the CPU model (the quantized layers themselves:
// tests/ops/quantized_test.cpp). Tolerance: relative Frobenius error of the logits, GPU vs CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cuda_compare.h"
#include "cuda_test_util.h"
#include "test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/ops/elementwise.h"
#include "wattwise/ops/quantized.h"
#ifdef WW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

using namespace ww;
using ops::QuantMethod;
using ww::testing::cpu_tensor;
using ww::testing::expect_error;
using ww::testing::random_normals;

namespace {

double relative_frobenius(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += double(got[i] - want[i]) * double(got[i] - want[i]);
    den += double(want[i]) * double(want[i]);
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

bool fp8_supported() {
#ifdef WW_HAVE_CUDA
  int device = 0;
  cudaDeviceProp props{};
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&props, device) != cudaSuccess) return false;
  return props.major * 10 + props.minor >= 89;
#else
  return false;
#endif
}

models::Batch random_batch(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(B * T)), mask(static_cast<size_t>(B * T), 1);
  for (auto& id : ids) id = 1 + int32_t(rng.uniform() * float(vocab - 1));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = T - b; t < T; ++t) mask[size_t(b * T + t)] = 0, ids[size_t(b * T + t)] = 0;
  models::Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {B, T});
  batch.attention_mask = Tensor::from_vector(mask, {B, T});
  return batch;
}

// A tiny BERT quantized on the GPU (f32 and f16 compute, CUDA graphs on: the second forward
// replays) against the same model quantized on the CPU.
TEST(CudaQuantized, ModelMatchesTheCpuModel) {
  WW_REQUIRE_CUDA();
  models::ModelConfig config = models::preset_config(models::Architecture::Bert, "tiny", 200);
  config.max_position_embeddings = 32;
  config.initializer_range = 0.1f;
  models::SequenceClassifier cpu(config, Device::cpu()), gpu(config, Device::cuda(0));
  cpu.init_weights(5);
  gpu.init_weights(5);
  const models::Batch batch = random_batch(6, 16, 200, 8);
  const std::vector<float> f32 = gpu.forward(batch, false).to_float_vector();
  for (QuantMethod method : {QuantMethod::Int8Weight, QuantMethod::Int8, QuantMethod::Fp8}) {
    SCOPED_TRACE(ops::quant_method_name(method));
    models::QuantizationOptions options;
    options.method = method;
    options.calibration = {random_batch(4, 16, 200, 20), random_batch(4, 12, 200, 21)};
    if (method == QuantMethod::Fp8) {
      if (!fp8_supported()) {
        expect_error([&] { gpu.quantize_for_inference(options); }, {"fp8 needs compute capability 8.9+"});
        continue;
      }
      // No CPU model runs fp8: against the unquantized GPU model (the layers are checked above).
      gpu.quantize_for_inference(options);
      const double error = relative_frobenius(gpu.forward(batch, false).to_float_vector(), f32);
      std::printf("fp8 model vs f32: relative logit error %.2e\n", error);
      EXPECT_LT(error, 0.15);
      EXPECT_GT(error, 0.0);
      gpu.clear_quantization();
      continue;
    }
    cpu.quantize_for_inference(options);
    const std::vector<float> want = cpu.forward(batch, false).to_float_vector();
    for (DType dtype : {DType::F32, DType::F16}) {
      models::ExecutionOptions exec;
      exec.compute_dtype = dtype;
      gpu.set_execution(exec);
      gpu.quantize_for_inference(options);
      const std::vector<float> first = gpu.forward(batch, false).to_float_vector();
      const std::vector<float> replayed = gpu.forward(batch, false).to_float_vector();
      EXPECT_EQ(first, replayed) << "CUDA graph replay";
      // f32: the calibrated scales may differ in the last bit between devices (the attention and
      // LayerNorm sums round differently), moving a few int8 inputs by one step.
      const double bound = dtype == DType::F32 ? (method == QuantMethod::Int8 ? 5e-3 : 1e-4) : 3e-2;
      const double error = relative_frobenius(first, want);
      std::printf("%s model, %s compute: GPU vs CPU relative logit error %.2e\n", ops::quant_method_name(method),
                  std::string(dtype_name(dtype)).c_str(), error);
      EXPECT_LT(error, bound) << dtype_name(dtype);
    }
    cpu.clear_quantization();
    gpu.clear_quantization();
    gpu.set_execution({});
  }
}

}  // namespace
