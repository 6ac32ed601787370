// GPT-2 text generation: last-token logits, a key/value cache and the token samplers.
//
// The cache keeps every layer's packed query/key/value rows ([n_positions, 3C] per layer, one
// sequence). A step embeds only the new tokens, writes their projections into the cache rows and
// runs the ordinary causal attention op over the cached prefix, so past keys and values are never
// recomputed and everything runs through ops:: on the CPU and on CUDA. (The attention call also
// recomputes the past queries' outputs, which it discards: a one-query decode kernel would remove
// that O(t²) term.)
#include <algorithm>
#include <cmath>
#include <numeric>

#include "wattwise/core/rng.h"
#include "wattwise/models/gpt2.h"
#include "wattwise/ops/ops.h"

namespace ww::models {

Tensor Gpt2LMHeadModel::last_token_logits(const Batch& batch) {
  if (batch.labels.defined()) fail("last_token_logits: the batch must not carry labels");
  check_batch(batch);
  const auto tf32 = tf32_scope();
  const int64_t B = batch.input_ids.size(0), T = batch.input_ids.size(1), C = config_.n_embd;
  plan_activations(B, T, /*training=*/false, /*full_logits=*/true);
  prepare_weights_for_forward();
  const Batch staged = stage_inputs(batch);
  trunk_forward(staged, /*training=*/false);
  // Each row's last real token (right padding).
  std::vector<int64_t> last(size_t(B), T - 1);
  if (batch.attention_mask.defined()) {
    Tensor mask = batch.attention_mask.device().is_cpu() ? batch.attention_mask : batch.attention_mask.to(Device::cpu());
    for (int64_t b = 0; b < B; ++b) {
      int64_t real = 0;
      for (int64_t t = 0; t < T; ++t) real += mask.data<int32_t>()[b * T + t] != 0;
      last[size_t(b)] = std::max<int64_t>(real - 1, 0);
    }
  }
  Tensor rows = Tensor::empty({B, C}, act_.dtype, device_);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t r = b * T + last[size_t(b)];
    rows.slice(b, b + 1).copy_from(act_.lnf_out.slice(r, r + 1));
  }
  Tensor logits = Tensor::empty({B, config_.vocab_size}, act_.dtype, device_);
  ops::linear_forward(logits, rows, gemm_weight(wte_), Tensor());
  if (act_.dtype != DType::F32) {
    Tensor f = Tensor::empty(logits.shape(), DType::F32, device_);
    ops::cast(f, logits);
    logits = f;
  }
  return logits.device().is_cpu() ? logits : logits.to(Device::cpu());
}

namespace {

// Picks the next token from one row of f32 logits; `rng` draws the sampling uniform.
int32_t pick_token(const float* logits, int64_t V, const GenerateOptions& o, Rng& rng) {
  for (int64_t v = 0; v < V; ++v)
    if (!std::isfinite(logits[v]))
      fail("generate: the model's next-token logits are not finite (", logits[v], " for token ", v,
           "); its weights or its arithmetic overflow (a 16-bit precision may: try fp32)");
  if (o.greedy || o.top_k == 1) return int32_t(std::max_element(logits, logits + V) - logits);
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  // Most likely first; ties by the lower id, so a one-token set is the greedy choice.
  auto better = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  int64_t keep = V;
  if (o.top_k > 0 && o.top_k < V) {
    keep = o.top_k;
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), better);
  } else {
    std::sort(order.begin(), order.end(), better);
  }
  const double inv_t = 1.0 / double(o.temperature);
  const double top = double(logits[order[0]]) * inv_t;
  std::vector<double> p(static_cast<size_t>(keep));
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += p[size_t(i)] = std::exp(double(logits[order[size_t(i)]]) * inv_t - top);
  if (o.top_p < 1.0f) {
    // The smallest prefix whose probability reaches top_p (at least one token).
    double cumulative = 0;
    int64_t n = 0;
    while (n < keep) {
      cumulative += p[size_t(n)] / sum;
      ++n;
      if (cumulative >= double(o.top_p)) break;
    }
    keep = n;
    sum = std::accumulate(p.begin(), p.begin() + keep, 0.0);
  }
  const double u = double(rng.uniform()) * sum;
  double acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += p[size_t(i)];
    if (u < acc) return order[size_t(i)];
  }
  return order[size_t(keep - 1)];
}

}  // namespace

std::vector<int32_t> Gpt2LMHeadModel::generate(const std::vector<int32_t>& prompt_ids, const GenerateOptions& o) {
  if (prompt_ids.empty()) fail("generate: the prompt is empty (give at least one token)");
  if (o.max_new_tokens < 0) fail("generate: max_new_tokens must be >= 0, got ", o.max_new_tokens);
  if (int64_t(prompt_ids.size()) + o.max_new_tokens > config_.n_positions)
    fail("generate: prompt of ", prompt_ids.size(), " tokens + ", o.max_new_tokens,
         " new tokens exceeds the model's n_positions ", config_.n_positions);
  if (!o.greedy) {
    if (!(o.temperature > 0.0f) || !std::isfinite(o.temperature))
      fail("generate: temperature must be > 0, got ", o.temperature);
    if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) fail("generate: top_p must be in (0, 1], got ", o.top_p);
    if (o.top_k < 0) fail("generate: top_k must be >= 0, got ", o.top_k);
  }
  for (int32_t id : prompt_ids)
    if (id < 0 || id >= config_.vocab_size)
      fail("generate: prompt token id ", id, " is outside the vocabulary [0, ", config_.vocab_size, ")");

  const auto tf32 = tf32_scope();
  Rng rng(o.seed, /*stream=*/0x6e6e);
  const int64_t V = config_.vocab_size;
  std::vector<int32_t> sequence = prompt_ids, generated;
  auto emit = [&](int32_t token) {
    generated.push_back(token);
    sequence.push_back(token);
    const bool stop_callback = o.on_token && !o.on_token(token);
    return !(stop_callback || (o.eos_token_id >= 0 && token == o.eos_token_id));
  };

  if (!o.use_cache) {
    for (int64_t step = 0; step < o.max_new_tokens; ++step) {
      Batch batch;
      batch.input_ids = Tensor::from_vector(sequence, {1, int64_t(sequence.size())});
      Tensor logits = last_token_logits(batch);
      if (!emit(pick_token(logits.data<float>(), V, o, rng))) break;
    }
    return generated;
  }
  if (o.max_new_tokens == 0) return generated;

  prepare_weights_for_forward();
  const DType dt = exec_.compute_dtype;
  const int64_t C = config_.n_embd, I = config_.inner_size(), H = config_.n_head, Tmax = config_.n_positions;
  const AttentionKernel kernel = attention_kernel();
  // Per layer: the packed q/k/v rows of every position so far.
  std::vector<Tensor> cache(size_t(config_.n_layer));
  for (auto& c : cache) c = Tensor::empty({Tmax, 3 * C}, dt, device_);
  const int64_t P0 = int64_t(prompt_ids.size());
  Tensor x = Tensor::empty({P0, C}, dt, device_), h = Tensor::empty({P0, C}, dt, device_);
  Tensor res = Tensor::empty({P0, C}, dt, device_), proj = Tensor::empty({P0, C}, dt, device_);
  Tensor fc = Tensor::empty({P0, I}, dt, device_), mean = Tensor::empty({P0}, DType::F32, device_);
  Tensor rstd = Tensor::empty({P0}, DType::F32, device_), context = Tensor::empty({Tmax, C}, dt, device_);
  Tensor probs = kernel == AttentionKernel::Fused ? Tensor() : Tensor::empty({H * Tmax * Tmax}, dt, device_);
  Tensor lse = kernel == AttentionKernel::Fused ? Tensor::empty({H * Tmax}, DType::F32, device_) : Tensor();
  Tensor logits = Tensor::empty({1, V}, dt, device_), logits_f32 = Tensor::empty({1, V}, DType::F32, device_);
  Tensor ids_dev = Tensor::empty({1, P0}, DType::I32, device_);

  // Runs the new tokens `ids` at positions [pos, pos + n) through the model; returns the next token.
  auto step = [&](const std::vector<int32_t>& ids, int64_t pos) {
    const int64_t n = int64_t(ids.size()), total = pos + n;
    const Tensor xs = x.slice(0, n), hs = h.slice(0, n), rs = res.slice(0, n), ps = proj.slice(0, n);
    const Tensor fs = fc.slice(0, n), ms = mean.slice(0, n), ss = rstd.slice(0, n);
    const Tensor id = ids_dev.reshape({P0}).slice(0, n).reshape({1, n});
    id.copy_from(Tensor::from_vector(ids, {1, n}));
    ops::embeddings_forward(xs.reshape({1, n, C}), id, Tensor(), f32_weight(wte_), f32_weight(wpe_), Tensor(), pos);
    for (int64_t l = 0; l < config_.n_layer; ++l) {
      const LayerNames& nm = layer_names_[size_t(l)];
      ops::layernorm_forward(hs, ms, ss, xs, f32_weight(nm.ln1_w), f32_weight(nm.ln1_b), config_.layer_norm_epsilon);
      ops::linear_forward(cache[size_t(l)].slice(pos, total), hs, gemm_weight(nm.attn_w), gemm_weight(nm.attn_b));
      const Tensor qkv = cache[size_t(l)].slice(0, total).reshape({1, total, 3 * C});
      const Tensor ctx = context.slice(0, total).reshape({1, total, C});
      if (kernel == AttentionKernel::Fused)
        ops::attention_forward_fused(ctx, lse.slice(0, H * total).reshape({1, H, total}), qkv, Tensor(), H, true,
                                     0.0f, 0, 0);
      else
        ops::attention_forward(ctx, probs.slice(0, H * total * total).reshape({1, H, total, total}), qkv, Tensor(),
                               H, true, 0.0f, 0, 0);
      ops::linear_forward(ps, context.slice(pos, total), gemm_weight(nm.attn_proj_w), gemm_weight(nm.attn_proj_b));
      ops::residual_layernorm_forward(hs, rs, ms, ss, xs, ps, f32_weight(nm.ln2_w), f32_weight(nm.ln2_b),
                                      config_.layer_norm_epsilon);
      ops::linear_forward(fs, hs, gemm_weight(nm.fc_w), gemm_weight(nm.fc_b));
      ops::gelu_tanh_forward(fs, fs);
      ops::linear_forward(ps, fs, gemm_weight(nm.mlp_proj_w), gemm_weight(nm.mlp_proj_b));
      ops::residual_forward(xs, rs, ps);
    }
    // Only the last token's logits are needed.
    const Tensor last = xs.slice(n - 1, n);
    ops::layernorm_forward(hs.slice(0, 1), ms.slice(0, 1), ss.slice(0, 1), last, f32_weight(lnf_w_), f32_weight(lnf_b_),
                           config_.layer_norm_epsilon);
    ops::linear_forward(logits, hs.slice(0, 1), gemm_weight(wte_), Tensor());
    ops::cast(logits_f32, logits);
    Tensor host = device_.is_cpu() ? logits_f32 : logits_f32.to(Device::cpu());
    return pick_token(host.data<float>(), V, o, rng);
  };

  int32_t next = step(prompt_ids, 0);  // prefill
  for (int64_t produced = 1;; ++produced) {
    if (!emit(next) || produced == o.max_new_tokens) break;
    next = step({next}, int64_t(sequence.size()) - 1);
  }
  return generated;
}

}  // namespace ww::models
