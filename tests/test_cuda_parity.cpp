// The whole model on the GPU against Hugging Face transformers on the committed fixtures (the
// numbers the CPU is held to in test_models: logits and loss within 1e-5 absolute, every parameter
// gradient within 1e-4 relative, fp32), with the fused attention and with the reference path; and
// the inference forward (a CUDA-graph replay) giving the same logits as the training forward.
#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "parity_util.h"

using namespace ww;
using namespace ww::models;
using ww::testing::expect_parity;
using ww::testing::measure_parity;

class CudaParity : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaParity, LogitsLossAndEveryGradientMatchTransformers) {
  WW_REQUIRE_CUDA();
  const auto dir = std::filesystem::path(WW_SOURCE_DIR) / "tests" / "fixtures" / GetParam();
  for (AttentionKernel attention : {AttentionKernel::Fused, AttentionKernel::Reference})
    expect_parity(measure_parity(dir, Device::cuda(0), attention),
                  GetParam() + " on cuda:0, " + attention_kernel_name(attention) + " attention");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaParity, ::testing::Values("bert_tiny", "distilbert_tiny"));
