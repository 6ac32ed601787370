#include "wattwise/ops/attention.h"

#include <cmath>
#include <cstdint>

#include "kernels/attention.h"
#include "ops/checks.h"
#include "ops/dispatch.h"
#include "wattwise/ops/dropout.h"
#include "wattwise/ops/linear.h"

namespace ww::ops {
namespace {

// Reads B, T, H, D from qkv [B, T, 3C] and checks what every attention op shares (not qkv's
// dtype or device: each path has its own rule for those).
kernels::AttentionConfig qkv_config(const char* op, const Tensor& qkv, const Tensor& key_mask,
                                         int64_t num_heads, bool causal, float dropout_p, uint64_t seed,
                                         uint64_t offset) {
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
  kernels::AttentionConfig config;
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

// The reference path: qkv an activation (f32 on the CPU; f32/f16/bf16 on a GPU).
kernels::AttentionConfig attention_config(const char* op, const Tensor& qkv,
                                               const Tensor& key_mask, int64_t num_heads,
                                               bool causal, float dropout_p, uint64_t seed,
                                               uint64_t offset) {
  require_activation(qkv, op, "qkv");
  return qkv_config(op, qkv, key_mask, num_heads, causal, dropout_p, seed, offset);
}

// The dropout offset base: a device pointer for the CUDA kernels; folded into the offset on the CPU.
void apply_offset_base(kernels::AttentionConfig& config, const Tensor& offset_base, const Tensor& qkv,
                       const char* op) {
  const uint64_t* base = dropout_offset_base(offset_base, qkv, op);
  if (!base) return;
  if (qkv.device().is_cuda()) config.offset_base = base;
  else config.offset += *base;
}

int64_t probs_numel(const kernels::AttentionConfig& c) {
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

// ---- fused path: its own checks, since it also takes f16 / bf16 -----------------------------

// Head dims the fused kernels handle (kept in step with flash_attention_supports_head_dim, which
// is only compiled with CUDA).
bool fused_head_dim_supported(int64_t head_dim) {
  return head_dim > 0 && head_dim <= 128 && head_dim % 8 == 0;
}

bool is_fused_element_type(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

// A defined tensor of `dtype` with n elements on the device of `like`.
void require_fused_tensor(const Tensor& t, DType dtype, int64_t n, const Tensor& like, const char* op,
                          const char* arg) {
  if (!t.defined())
    fail(op, ": argument '", arg, "' is undefined (expected ", dtype_name(dtype), " with ", n, " elements)");
  if (t.dtype() != dtype)
    fail(op, ": argument '", arg, "' must be ", dtype_name(dtype), ", got ", t.describe(), " (qkv is ",
         like.describe(), ")");
  require_numel(t, n, op, arg);
  require_same_device(t, like, op);
}

// The fused kernels read and write 16-byte vectors.
void require_aligned(const Tensor& t, const char* op, const char* arg) {
  if (reinterpret_cast<uintptr_t>(t.raw()) % 16 != 0)
    fail(op, ": argument '", arg, "' must be 16-byte aligned (fused attention uses vector loads), got ",
         t.describe(), " at an offset of ", reinterpret_cast<uintptr_t>(t.raw()) % 16, " bytes");
}

// B, T, H, D from qkv [B, T, 3C] and the checks both fused directions share (everything but the
// device, so argument errors read the same on every machine).
kernels::AttentionConfig fused_attention_config(const char* op, const Tensor& qkv,
                                                     const Tensor& key_mask, int64_t num_heads,
                                                     bool causal, float dropout_p, uint64_t seed,
                                                     uint64_t offset) {
  if (!qkv.defined()) fail(op, ": argument 'qkv' is undefined (expected [B, T, 3C] f32, f16 or bf16)");
  if (!is_fused_element_type(qkv.dtype()))
    fail(op, ": qkv must be f32, f16 or bf16, got ", qkv.describe());
  kernels::AttentionConfig config = qkv_config(op, qkv, key_mask, num_heads, causal, dropout_p, seed, offset);
  if (!fused_head_dim_supported(config.head_dim))
    fail(op, ": head dim ", config.head_dim, " (C = ", qkv.size(2) / 3, ", num_heads = ", num_heads,
         ") is not supported by fused attention: it needs a multiple of 8 up to 128; use the "
         "reference path (attention_forward) instead");
  return config;
}

// The last check: where the fused kernels can run (there is no CPU kernel).
void require_cuda_for_fused(const Tensor& qkv, const char* op) {
  if (!qkv.device().is_cuda())
    fail(op, ": fused attention needs a cuda device, got qkv ", qkv.describe(),
         "; the reference path (attention_forward / attention_backward) runs on the CPU");
}

// What a build without the CUDA backend says for the fused ops.
auto no_fused_backend(const char* op) {
  return [op] { fail(op, ": this build has no CUDA backend (configure with WW_CUDA=ON)"); };
}

}  // namespace

void attention_forward(const Tensor& out, const Tensor& probs, const Tensor& qkv,
                       const Tensor& key_mask, int64_t num_heads, bool causal, float dropout_p,
                       uint64_t seed, uint64_t offset, const Tensor& offset_base) {
  const char* op = "attention_forward";
  auto config = attention_config(op, qkv, key_mask, num_heads, causal, dropout_p, seed, offset);
  apply_offset_base(config, offset_base, qkv, op);
  require_activation_like(out, qkv, op, "out", "qkv");
  require_activation_like(probs, qkv, op, "probs", "qkv");
  require_numel(out, qkv.numel() / 3, op, "out");
  require_numel(probs, probs_numel(config), op, "probs");
  require_same_device(out, qkv, op);
  require_same_device(probs, qkv, op);
  if (out.raw() == qkv.raw()) fail(op, ": out must not alias qkv");

  dispatch(
      op, qkv.device(),
      [&] {
        kernels::cpu::attention_forward(out.data<float>(), probs.data<float>(), qkv.data<float>(),
                                        mask_data(key_mask), config);
      },
      WW_CUDA([&] {
        kernels::cuda::attention_forward(out.raw(), probs.raw(), qkv.raw(), mask_data(key_mask), qkv.dtype(), config,
                                         gemm_precision(qkv.dtype()));
      }));
}

void attention_backward(const Tensor& dqkv, const Tensor& scratch, const Tensor& dout,
                        const Tensor& qkv, const Tensor& probs, const Tensor& key_mask,
                        int64_t num_heads, bool causal, float dropout_p, uint64_t seed,
                        uint64_t offset, const Tensor& offset_base) {
  const char* op = "attention_backward";
  auto config = attention_config(op, qkv, key_mask, num_heads, causal, dropout_p, seed, offset);
  apply_offset_base(config, offset_base, qkv, op);
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

  dispatch(
      op, qkv.device(),
      [&] {
        kernels::cpu::attention_backward(dqkv.data<float>(), scratch.data<float>(), dout.data<float>(),
                                         qkv.data<float>(), probs.data<float>(), mask_data(key_mask), config);
      },
      WW_CUDA([&] {
        kernels::cuda::attention_backward(dqkv.raw(), scratch.raw(), dout.raw(), qkv.raw(), probs.raw(),
                                          mask_data(key_mask), qkv.dtype(), config, gemm_precision(qkv.dtype()));
      }));
}

void attention_forward_fused(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                             const Tensor& key_mask, int64_t num_heads, bool causal, float dropout_p,
                             uint64_t seed, uint64_t offset, const Tensor& offset_base) {
  const char* op = "attention_forward_fused";
  auto config = fused_attention_config(op, qkv, key_mask, num_heads, causal, dropout_p, seed, offset);
  apply_offset_base(config, offset_base, qkv, op);
  const int64_t rows = config.batch * config.num_heads * config.seq_len;
  require_fused_tensor(out, qkv.dtype(), qkv.numel() / 3, qkv, op, "out");
  require_fused_tensor(lse, DType::F32, rows, qkv, op, "lse");
  if (out.raw() == qkv.raw()) fail(op, ": out must not alias qkv");
  require_aligned(qkv, op, "qkv");
  require_aligned(out, op, "out");
  require_cuda_for_fused(qkv, op);
  dispatch(
      qkv.device(), [] {},
      WW_CUDA([&] {
        kernels::cuda::flash_attention_forward(out.raw(), lse.data<float>(), qkv.raw(), mask_data(key_mask), config,
                                               qkv.dtype());
      }),
      no_fused_backend(op));
}

void attention_backward_fused(const Tensor& dqkv, const Tensor& workspace, const Tensor& dout,
                              const Tensor& qkv, const Tensor& out, const Tensor& lse,
                              const Tensor& key_mask, int64_t num_heads, bool causal,
                              float dropout_p, uint64_t seed, uint64_t offset, const Tensor& offset_base) {
  const char* op = "attention_backward_fused";
  auto config = fused_attention_config(op, qkv, key_mask, num_heads, causal, dropout_p, seed, offset);
  apply_offset_base(config, offset_base, qkv, op);
  const int64_t rows = config.batch * config.num_heads * config.seq_len;
  require_fused_tensor(dqkv, qkv.dtype(), qkv.numel(), qkv, op, "dqkv");
  require_fused_tensor(dout, qkv.dtype(), qkv.numel() / 3, qkv, op, "dout");
  require_fused_tensor(out, qkv.dtype(), qkv.numel() / 3, qkv, op, "out");
  require_fused_tensor(lse, DType::F32, rows, qkv, op, "lse");
  require_fused_tensor(workspace, DType::F32, rows, qkv, op, "workspace");
  if (dqkv.raw() == qkv.raw() || dqkv.raw() == dout.raw() || dqkv.raw() == out.raw())
    fail(op, ": dqkv must not alias qkv, dout or out");
  if (workspace.raw() == lse.raw()) fail(op, ": workspace must not alias lse");
  require_aligned(qkv, op, "qkv");
  require_aligned(dqkv, op, "dqkv");
  require_aligned(dout, op, "dout");
  require_aligned(out, op, "out");
  require_cuda_for_fused(qkv, op);
  dispatch(
      qkv.device(), [] {},
      WW_CUDA([&] {
        kernels::cuda::flash_attention_backward(dqkv.raw(), workspace.data<float>(), dout.raw(), qkv.raw(), out.raw(),
                                                lse.data<float>(), mask_data(key_mask), config, qkv.dtype());
      }),
      no_fused_backend(op));
}

}  // namespace ww::ops
