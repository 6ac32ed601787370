#include "wattwise/ops/attention.h"

#include <cmath>

#include "kernels/cpu/attention.h"
#ifdef WW_HAVE_CUDA
#include "kernels/cuda/attention.h"
#endif
#include "ops/checks.h"
#include "wattwise/ops/linear.h"

namespace ww::ops {
namespace {

// Reads B, T, H, D from qkv [B, T, 3C] and checks the arguments both directions share.
kernels::cpu::AttentionConfig attention_config(const char* op, const Tensor& qkv,
                                               const Tensor& key_mask, int64_t num_heads,
                                               bool causal, float dropout_p, uint64_t seed,
                                               uint64_t offset) {
  require_activation(qkv, op, "qkv");
  if (qkv.dim() != 3 || qkv.size(2) == 0 || qkv.size(2) % 3 != 0)
    fail(op, ": qkv must be [B, T, 3C] with C > 0, got ", qkv.describe());
  const int64_t channels = qkv.size(2) / 3;
  if (num_heads <= 0 || channels % num_heads != 0)
    fail(op, ": num_heads ", num_heads, " must be positive and divide C = ", channels,
         " (qkv ", qkv.describe(), ")");
  if (!(dropout_p >= 0.0f && dropout_p < 1.0f))
    fail(op, ": dropout_p must be in [0, 1), got ", dropout_p);
  const int64_t batch = qkv.size(0), seq_len = qkv.size(1);
  if (key_mask.defined()) {
    if (key_mask.dtype() != DType::I32)
      fail(op, ": key_mask must be i32 [B, T] (1 = real token, 0 = padding), got ",
           key_mask.describe());
    require_numel(key_mask, batch * seq_len, op, "key_mask");
    require_same_device(key_mask, qkv, op);
  }
  kernels::cpu::AttentionConfig config;
  config.batch = batch;
  config.seq_len = seq_len;
  config.num_heads = num_heads;
  config.head_dim = channels / num_heads;
  config.causal = causal;
  config.dropout_p = dropout_p;
  config.seed = seed;
  config.offset = offset;
  return config;
}

int64_t probs_numel(const kernels::cpu::AttentionConfig& c) {
  return c.batch * c.num_heads * c.seq_len * c.seq_len;
}

const int32_t* mask_data(const Tensor& key_mask) {
  return key_mask.defined() ? key_mask.data<int32_t>() : nullptr;
}

#ifdef WW_HAVE_CUDA
// ops::allow_tf32() (linear.h) covers these f32 GEMMs too.
kernels::cuda::GemmPrecision gemm_precision(DType dtype) {
  return dtype == DType::F32 && allow_tf32() ? kernels::cuda::GemmPrecision::Tf32
                                             : kernels::cuda::GemmPrecision::Fp32;
}
#endif

}  // namespace

void attention_forward(const Tensor& out, const Tensor& probs, const Tensor& qkv,
                       const Tensor& key_mask, int64_t num_heads, bool causal, float dropout_p,
                       uint64_t seed, uint64_t offset) {
  const char* op = "attention_forward";
  auto config = attention_config(op, qkv, key_mask, num_heads, causal, dropout_p, seed, offset);
  require_activation_like(out, qkv, op, "out", "qkv");
  require_activation_like(probs, qkv, op, "probs", "qkv");
  require_numel(out, qkv.numel() / 3, op, "out");
  require_numel(probs, probs_numel(config), op, "probs");
  require_same_device(out, qkv, op);
  require_same_device(probs, qkv, op);
  if (out.raw() == qkv.raw()) fail(op, ": out must not alias qkv");

  if (qkv.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    return kernels::cuda::attention_forward(out.raw(), probs.raw(), qkv.raw(), mask_data(key_mask), qkv.dtype(),
                                            config, gemm_precision(qkv.dtype()));
#else
    fail(op, ": the CUDA backend does not implement this yet");
#endif
  }
  kernels::cpu::attention_forward(out.data<float>(), probs.data<float>(), qkv.data<float>(),
                                  mask_data(key_mask), config);
}

void attention_backward(const Tensor& dqkv, const Tensor& scratch, const Tensor& dout,
                        const Tensor& qkv, const Tensor& probs, const Tensor& key_mask,
                        int64_t num_heads, bool causal, float dropout_p, uint64_t seed,
                        uint64_t offset) {
  const char* op = "attention_backward";
  auto config = attention_config(op, qkv, key_mask, num_heads, causal, dropout_p, seed, offset);
  require_activation_like(dqkv, qkv, op, "dqkv", "qkv");
  require_activation_like(scratch, qkv, op, "scratch", "qkv");
  require_activation_like(dout, qkv, op, "dout", "qkv");
  require_activation_like(probs, qkv, op, "probs", "qkv");
  require_numel(dqkv, qkv.numel(), op, "dqkv");
  require_numel(scratch, probs_numel(config), op, "scratch");
  require_numel(dout, qkv.numel() / 3, op, "dout");
  require_numel(probs, probs_numel(config), op, "probs");
  for (const Tensor* t : {&dqkv, &scratch, &dout, &probs}) require_same_device(*t, qkv, op);
  if (dqkv.raw() == qkv.raw() || dqkv.raw() == dout.raw())
    fail(op, ": dqkv must not alias qkv or dout");
  if (scratch.raw() == probs.raw()) fail(op, ": scratch must not alias probs");

  if (qkv.device().is_cuda()) {
#ifdef WW_HAVE_CUDA
    return kernels::cuda::attention_backward(dqkv.raw(), scratch.raw(), dout.raw(), qkv.raw(), probs.raw(),
                                             mask_data(key_mask), qkv.dtype(), config,
                                             gemm_precision(qkv.dtype()));
#else
    fail(op, ": the CUDA backend does not implement this yet");
#endif
  }
  kernels::cpu::attention_backward(dqkv.data<float>(), scratch.data<float>(), dout.data<float>(),
                                   qkv.data<float>(), probs.data<float>(), mask_data(key_mask),
                                   config);
}

}  // namespace ww::ops
