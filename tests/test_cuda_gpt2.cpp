// GPT-2 on a CUDA device: the tanh-GELU kernel against the CPU reference, parity with transformers
// on the tiny fixture in f32 (fused and reference attention) and bf16, the CUDA-graph training step,
// KV-cache generation against the CPU, and inference-only models (ModelPurpose::Inference) against
// training models: bit-identical logits, loss and tokens in f32/f16/bf16 with no f32 masters and no
// gradients on the GPU. Skips with the reason when no GPU is usable.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "cuda_test_util.h"
#include "gpt2_test_util.h"
#include "test_util.h"
#include "wattwise/core/rng.h"
#include "wattwise/ops/activation.h"
#include "wattwise/ops/elementwise.h"

namespace ww {
namespace {

using namespace ww::models;
using ww::testing::gpt2_batch;
using ww::testing::gpt2_fixture_dir;
using ww::testing::int_vector;

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  return a.size() == b.size() ? worst : INFINITY;
}

TEST(CudaGpt2, GeluTanhMatchesCpu) {
  WW_REQUIRE_CUDA();
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(100003)}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    Rng rng{uint64_t(n)};
    std::vector<float> x(static_cast<size_t>(n)), d(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = rng.normal() * 3.0f, d[size_t(i)] = rng.normal();
    Tensor inp = Tensor::from_vector(x, {n}), dout = Tensor::from_vector(d, {n});
    Tensor out = Tensor::empty({n}, DType::F32), dinp = Tensor::empty({n}, DType::F32);
    ops::gelu_tanh_forward(out, inp);
    ops::gelu_tanh_backward(dinp, inp, dout);
    Tensor inp_g = inp.to(Device::cuda(0)), dout_g = dout.to(Device::cuda(0));
    Tensor out_g = Tensor::empty({n}, DType::F32, Device::cuda(0)), dinp_g = Tensor::empty({n}, DType::F32, Device::cuda(0));
    ops::gelu_tanh_forward(out_g, inp_g);
    ops::gelu_tanh_backward(dinp_g, inp_g, dout_g);
    EXPECT_LE(max_abs_diff(out_g.to_float_vector(), out.to_float_vector()), 1e-5);
    EXPECT_LE(max_abs_diff(dinp_g.to_float_vector(), dinp.to_float_vector()), 1e-5);
    // bf16: the same math, one rounding on store.
    Tensor inp_b = Tensor::empty({n}, DType::BF16, Device::cuda(0)), out_b = Tensor::empty({n}, DType::BF16, Device::cuda(0));
    ops::cast(inp_b, inp_g);
    ops::gelu_tanh_forward(out_b, inp_b);
    std::vector<float> ob = out_b.to_float_vector(), of = out.to_float_vector();
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(ob[size_t(i)], of[size_t(i)], 2e-2 * (1 + std::abs(of[size_t(i)]))) << i;
  }
}

TEST(CudaGpt2, FixtureParityInF32WithBothAttentionKernels) {
  WW_REQUIRE_CUDA();
  for (AttentionKernel kernel : {AttentionKernel::Fused, AttentionKernel::Reference}) {
    const std::string label = std::string("gpt2_tiny cuda f32 ") + attention_kernel_name(kernel);
    Gpt2LMHeadModel model = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cuda(0));
    ExecutionOptions e;
    e.attention = kernel;
    model.set_execution(e);
    testing::expect_gpt2_parity(testing::measure_gpt2_parity(model), label);
  }
}

TEST(CudaGpt2, FixtureParityInBf16) {
  WW_REQUIRE_CUDA();
  Gpt2LMHeadModel model = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cuda(0));
  ExecutionOptions e;
  e.compute_dtype = DType::BF16;
  model.set_execution(e);
  // bf16 activations (8 significant bits): logits of magnitude ~1 within a few 1e-2.
  testing::expect_gpt2_parity(testing::measure_gpt2_parity(model), "gpt2_tiny cuda bf16", 5e-2, 1e-2, 5e-2);
}

TEST(CudaGpt2, GraphedTrainingStepEqualsDirectStep) {
  WW_REQUIRE_CUDA();
  io::SafetensorsFile expected = io::SafetensorsFile::open(gpt2_fixture_dir() / "expected.safetensors");
  const Batch batch = gpt2_batch(expected, true);
  Gpt2LMHeadModel direct = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cuda(0));
  direct.set_dropout_seed(5);
  direct.set_loss_chunk_rows(16);  // several chunks, the last one partial
  direct.zero_grad();
  direct.forward(batch, true);
  direct.backward(2.0f);
  const std::vector<float> want = direct.parameters().flat_grads().to_float_vector();

  Gpt2LMHeadModel graphed = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cuda(0));
  graphed.set_dropout_seed(5);
  graphed.set_loss_chunk_rows(16);
  ASSERT_TRUE(graphed.can_graph_training(batch));
  for (int run = 0; run < 2; ++run) {  // run 0 records, run 1 replays
    SCOPED_TRACE(run == 0 ? "recorded" : "replayed");
    graphed.zero_grad();
    graphed.set_dropout_step_for_testing(0);
    graphed.train_step_graphed(batch, 2.0f, [] {});
    EXPECT_NEAR(graphed.loss(), direct.loss(), 1e-6);
    EXPECT_LE(max_abs_diff(graphed.parameters().flat_grads().to_float_vector(), want), 1e-6);
  }
}

TEST(CudaGpt2, CachedGreedyGenerationEqualsCpu) {
  WW_REQUIRE_CUDA();
  io::SafetensorsFile expected = io::SafetensorsFile::open(gpt2_fixture_dir() / "expected.safetensors");
  const std::vector<int32_t> prompt = int_vector(expected.read("greedy_prompt"));
  const std::vector<int32_t> hf = int_vector(expected.read("greedy_tokens"));
  Gpt2LMHeadModel cpu = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cpu());
  GenerateOptions o;
  o.max_new_tokens = int64_t(hf.size());
  const std::vector<int32_t> want = cpu.generate(prompt, o);
  for (AttentionKernel kernel : {AttentionKernel::Fused, AttentionKernel::Reference}) {
    SCOPED_TRACE(attention_kernel_name(kernel));
    Gpt2LMHeadModel gpu = Gpt2LMHeadModel::from_pretrained(gpt2_fixture_dir(), Device::cuda(0));
    ExecutionOptions e;
    e.attention = kernel;
    gpu.set_execution(e);
    EXPECT_EQ(gpu.generate(prompt, o), want);
    o.use_cache = false;
    EXPECT_EQ(gpu.generate(prompt, o), want);
    o.use_cache = true;
  }
  EXPECT_EQ(want, hf);
}

TEST(CudaGpt2, InferenceOnlyModelMatchesATrainingModelAndHoldsNoMasters) {
  WW_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  const Gpt2Config config = Gpt2Config::preset("tiny", 300);
  Rng rng(9);
  std::vector<int32_t> ids(2 * 48), mask(2 * 48, 1);
  for (auto& id : ids) id = int32_t(rng.next_u32() % 300);
  for (int t = 40; t < 48; ++t) mask[size_t(48 + t)] = 0;
  Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {2, 48});
  batch.attention_mask = Tensor::from_vector(mask, {2, 48});
  Batch scored = batch;
  scored.labels = batch.input_ids;
  for (DType d : {DType::F32, DType::F16, DType::BF16}) {
    SCOPED_TRACE(std::string(dtype_name(d)));
    Gpt2LMHeadModel inference(config, gpu, ModelPurpose::Inference);
    Gpt2LMHeadModel trained(config, gpu);
    inference.init_weights(3);
    trained.init_weights(3);
    ExecutionOptions e;
    e.compute_dtype = d;
    inference.set_execution(e);
    trained.set_execution(e);
    const std::vector<float> got = inference.forward(batch, false).to_float_vector();
    const std::vector<float> want = trained.forward(batch, false).to_float_vector();
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "logits differ";
    inference.forward(scored, false);
    trained.forward(scored, false);
    EXPECT_EQ(inference.loss(), trained.loss());
    GenerateOptions g;
    g.max_new_tokens = 10;
    EXPECT_EQ(inference.generate({7, 8, 9}, g), trained.generate({7, 8, 9}, g));

    // What the forward reads: 16-bit GEMM weights and tied head, f32 embedding tables and LayerNorms
    // (the token embedding in both forms); in f32 every parameter once.
    const int64_t P = inference.parameters().numel(), C = config.n_embd;
    const int64_t wte = config.vocab_size * C, wpe = config.n_positions * C, ln = (2 + 4 * config.n_layer) * C;
    const size_t weights = d == DType::F32 ? size_t(4 * P) : size_t(2 * (P - wpe - ln) + 4 * (wte + wpe + ln));
    EXPECT_GE(inference.inference_weight_bytes(), weights);
    EXPECT_LE(inference.inference_weight_bytes(), weights + inference.parameters().all().size() * 128 * 6);
    EXPECT_TRUE(inference.prepared_for_inference());
    EXPECT_FALSE(inference.parameters().has_grads());
    if (d != DType::F32) {
      EXPECT_LT(inference.inference_weight_bytes(), size_t(4 * P)) << "the f32 masters are held beside the 16-bit copy";
    }
    ww::testing::expect_error([&] { inference.forward(scored, true); }, {"inference only"});
  }
}

}  // namespace
}  // namespace ww
