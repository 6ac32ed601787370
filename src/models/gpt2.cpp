// GPT2LMHeadModel: parameters, loading and saving (Conv1D layout), forward, chunked LM loss,
// backward and the CUDA-graph training step. Generation lives in gpt2_generate.cpp; the shared
// machinery (execution options, working weights, arena, graphs, checkpoint segments) in runtime.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "wattwise/core/rng.h"
#include "wattwise/io/safetensors.h"
#include "wattwise/models/gpt2.h"
#include "wattwise/models/config.h"
#include "wattwise/ops/ops.h"

namespace ww::models {

namespace {
// Dropout sites per step: 0 embeddings, 1+3l attention probabilities, 2+3l attention output,
// 3+3l MLP output.
constexpr int kSiteEmbeddings = 0;
int site_attention_probs(int64_t layer) { return int(1 + 3 * layer); }
int site_attention_output(int64_t layer) { return int(2 + 3 * layer); }
int site_mlp_output(int64_t layer) { return int(3 + 3 * layer); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Hugging Face's Conv1D weights ([in, out] in the file; [out, in] here).
bool is_conv1d_weight(const std::string& name) {
  return ends_with(name, ".weight") && (name.find(".attn.c_attn.") != std::string::npos ||
                                        name.find(".attn.c_proj.") != std::string::npos ||
                                        name.find(".mlp.c_fc.") != std::string::npos ||
                                        name.find(".mlp.c_proj.") != std::string::npos);
}

// dst[c, r] = src[r, c] for a rows×cols host f32 matrix.
void transpose_into(float* dst, const float* src, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
}

// The same for elements of `size` bytes (saving 16-bit working copies).
void transpose_into(void* dst, const void* src, int64_t rows, int64_t cols, size_t size) {
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) std::memcpy(d + size_t(c * rows + r) * size, s + size_t(r * cols + c) * size, size);
}
}  // namespace

Gpt2LMHeadModel::Gpt2LMHeadModel(const Gpt2Config& config, Device device, ModelPurpose purpose)
    : ModelRuntime(device, purpose), config_(config) {
  config_.validate("GPT-2 config");
  // f32 masters, plus their gradients when training: refused before any allocation.
  config_.check_fits(inference_only() ? Device::cpu() : device_, inference_only() ? 4 : 8, "GPT-2 config");
  register_parameters();
  allocate_parameters();
}

void Gpt2LMHeadModel::register_parameters() {
  const int64_t C = config_.n_embd, I = config_.inner_size();
  auto add = [&](const std::string& name, const Shape& shape) {
    const bool decay = !ends_with(name, ".bias") && name.find(".ln_") == std::string::npos;
    params_.add(name, shape, decay);
  };
  wte_ = "transformer.wte.weight", wpe_ = "transformer.wpe.weight";
  add(wte_, {config_.vocab_size, C});
  add(wpe_, {config_.n_positions, C});
  for (int64_t l = 0; l < config_.n_layer; ++l) {
    layer_offsets_.push_back(params_.numel());
    const std::string b = "transformer.h." + std::to_string(l) + ".";
    LayerNames n;
    n.ln1_w = b + "ln_1.weight", n.ln1_b = b + "ln_1.bias";
    n.attn_w = b + "attn.c_attn.weight", n.attn_b = b + "attn.c_attn.bias";
    n.attn_proj_w = b + "attn.c_proj.weight", n.attn_proj_b = b + "attn.c_proj.bias";
    n.ln2_w = b + "ln_2.weight", n.ln2_b = b + "ln_2.bias";
    n.fc_w = b + "mlp.c_fc.weight", n.fc_b = b + "mlp.c_fc.bias";
    n.mlp_proj_w = b + "mlp.c_proj.weight", n.mlp_proj_b = b + "mlp.c_proj.bias";
    // nn.Linear layout [out, in]; the packed [3C, C] query/key/value projection as in BERT.
    add(n.ln1_w, {C});
    add(n.ln1_b, {C});
    add(n.attn_w, {3 * C, C});
    add(n.attn_b, {3 * C});
    add(n.attn_proj_w, {C, C});
    add(n.attn_proj_b, {C});
    add(n.ln2_w, {C});
    add(n.ln2_b, {C});
    add(n.fc_w, {I, C});
    add(n.fc_b, {I});
    add(n.mlp_proj_w, {C, I});
    add(n.mlp_proj_b, {C});
    layer_names_.push_back(n);
  }
  layers_end_ = params_.numel();
  lnf_w_ = "transformer.ln_f.weight", lnf_b_ = "transformer.ln_f.bias";
  add(lnf_w_, {C});
  add(lnf_b_, {C});
}

void Gpt2LMHeadModel::init_weights(uint64_t seed) {
  Tensor host = Tensor::empty({params_.numel()}, DType::F32);
  const float residual_std = config_.initializer_range / std::sqrt(2.0f * float(config_.n_layer));
  for (const auto& p : params_.all()) {
    float* w = host.data<float>() + p.offset;
    const int64_t n = shape_numel(p.shape);
    if (ends_with(p.name, ".bias")) {
      std::fill(w, w + n, 0.0f);
    } else if (!p.weight_decay) {  // LayerNorm weight
      std::fill(w, w + n, 1.0f);
    } else {
      const bool residual = ends_with(p.name, ".c_proj.weight");
      const float std = residual ? residual_std : config_.initializer_range;
      fill_parameter_normal(w, p, std, seed);
    }
  }
  params_.flat_values().copy_from(host);
  params_.mark_updated();
}

Gpt2LMHeadModel Gpt2LMHeadModel::from_pretrained(const std::filesystem::path& dir, Device device,
                                                 ModelPurpose purpose, bool allow_nonfinite) {
  Gpt2Config config = Gpt2Config::load(dir);
  io::SafetensorsCheckpoint checkpoint = io::SafetensorsCheckpoint::open(dir);
  if (allow_nonfinite) checkpoint.set_nonfinite(io::NonFinite::warn);
  const std::string config_path = (std::filesystem::is_directory(dir) ? dir / "config.json" : dir).string();
  check_config_matches_checkpoint(config.parameter_count(), config.sizes(), checkpoint.total_elements(),
                                  config_path, checkpoint.description());
  config.check_fits(purpose == ModelPurpose::Inference ? Device::cpu() : device,
                    purpose == ModelPurpose::Inference ? 4 : 8, config_path);
  Gpt2LMHeadModel model(config, device, purpose);
  const std::string where = checkpoint.path().string();
  const std::string prefix = "transformer.";

  const std::vector<std::string>& names = checkpoint.names();
  std::set<std::string> unused(names.begin(), names.end());
  Tensor host = Tensor::empty({model.params_.numel()}, DType::F32);
  for (const auto& p : model.params_.all()) {
    std::string name = p.name;
    if (!checkpoint.find(name) && checkpoint.find(p.name.substr(prefix.size()))) name = p.name.substr(prefix.size());
    if (!checkpoint.find(name))
      fail(where, ": missing tensor '", p.name, "' (a GPT-2 with this config.json needs it, shape ",
           shape_str(is_conv1d_weight(p.name) ? Shape{p.shape[1], p.shape[0]} : p.shape), ")");
    unused.erase(name);
    float* dst = host.data<float>() + p.offset;
    if (is_conv1d_weight(p.name)) {
      const int64_t out = p.shape[0], in = p.shape[1];
      Tensor staging = Tensor::empty({in, out}, DType::F32);  // the file's Conv1D layout
      checkpoint.read_into(name, staging);
      transpose_into(dst, staging.data<float>(), in, out);
    } else {
      checkpoint.read_into(name, Tensor::view(dst, p.shape, DType::F32));
    }
  }
  for (const auto& name : unused) {
    // Causal-mask buffers of older transformers versions.
    if (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias")) continue;
    if (name == "lm_head.weight") {
      // Tied: must equal the token embedding (transformers writes it when untied on save).
      const Parameter& wte = model.params_.all().front();
      Tensor head = Tensor::empty(wte.shape, DType::F32);
      checkpoint.read_into(name, head);
      if (std::memcmp(head.raw(), host.data<float>() + wte.offset, head.nbytes()) != 0)
        fail(where, ": lm_head.weight differs from transformer.wte.weight; wattwise's GPT-2 ties them "
                    "(tie_word_embeddings) and cannot load an untied head");
      continue;
    }
    fail(where, ": unexpected tensor '", name, "' (not part of a GPT2LMHeadModel with this config.json)");
  }
  model.params_.flat_values().copy_from(host);
  model.params_.mark_updated();
  return model;
}

void Gpt2LMHeadModel::save(const std::filesystem::path& dir, DType store_dtype) const {
  prepare_save(dir, store_dtype);
  // The f32 masters, or (an inference-only model that released them) the copies its forward reads.
  Tensor host;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (size_t i = 0; i < params_.all().size(); ++i) {
    const Parameter& p = params_.all()[i];
    Tensor value = value_to_save(i, store_dtype, host);
    if (is_conv1d_weight(p.name)) {
      const Tensor src = value.device().is_cpu() ? value : value.to(Device::cpu());
      const int64_t out = p.shape[0], in = p.shape[1];
      Tensor t = Tensor::empty({in, out}, src.dtype());
      transpose_into(t.raw(), src.raw(), out, in, dtype_size(src.dtype()));
      tensors.emplace_back(p.name, t);
    } else {
      tensors.emplace_back(p.name, value);
    }
  }
  io::save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}}, store_dtype);
  Gpt2Config out = config_;
  set_config_json_dtype(out.extra, torch_dtype_name(store_dtype));
  out.save(dir / "config.json");
}

void Gpt2LMHeadModel::set_dropout(float hidden, float attention) {
  Gpt2Config updated = config_;
  updated.resid_pdrop = updated.embd_pdrop = hidden;
  updated.attn_pdrop = attention;
  updated.validate("dropout override");
  config_ = updated;
}

void Gpt2LMHeadModel::set_loss_chunk_rows(int64_t rows) {
  if (rows < 1) fail("loss chunk rows must be at least 1, got ", rows);
  loss_chunk_rows_ = rows;
  replan_activations();
  drop_graphs();
}

std::vector<WeightUse> Gpt2LMHeadModel::weight_uses() const {
  std::set<std::string> f32_read = {wte_, wpe_, lnf_w_, lnf_b_};
  for (const LayerNames& n : layer_names_)
    for (const std::string* name : {&n.ln1_w, &n.ln1_b, &n.ln2_w, &n.ln2_b}) f32_read.insert(*name);
  const bool f32_compute = exec_.compute_dtype == DType::F32;
  std::vector<WeightUse> uses(params_.all().size());
  for (size_t i = 0; i < uses.size(); ++i) {
    const std::string& name = params_.all()[i].name;
    uses[i].f32 = f32_compute || f32_read.count(name);
    // The token embedding is also the tied head's GEMM weight.
    uses[i].working = !f32_compute && (!f32_read.count(name) || name == wte_);
  }
  return uses;
}

void Gpt2LMHeadModel::check_batch(const Batch& batch) const {
  const Tensor& ids = batch.input_ids;
  if (!ids.defined() || ids.dim() != 2) fail("batch: input_ids must be a [batch, seq_len] tensor");
  check_dtype(ids, DType::I32, "batch input_ids");
  const int64_t B = ids.size(0), T = ids.size(1);
  if (B == 0 || T == 0) fail("batch: empty batch ", shape_str(ids.shape()));
  if (T > config_.n_positions)
    fail("sequence length ", T, " exceeds the model's n_positions ", config_.n_positions);
  if (batch.attention_mask.defined()) {
    check_shape(batch.attention_mask, {B, T}, "batch attention_mask");
    check_dtype(batch.attention_mask, DType::I32, "batch attention_mask");
  }
  if (batch.token_type_ids.defined()) fail("batch: token_type_ids given but GPT-2 has no token types");
  if (batch.labels.defined()) {
    check_shape(batch.labels, {B, T}, "batch labels (causal LM: aligned with input_ids)");
    check_dtype(batch.labels, DType::I32, "batch labels");
  }
  check_batch_devices(batch);
}

void Gpt2LMHeadModel::allocate_activations(Arena& arena, Activations& a, int64_t B, int64_t T, bool training,
                                           bool full_logits) const {
  const int64_t N = B * T, C = config_.n_embd, I = config_.inner_size(), H = config_.n_head,
                V = config_.vocab_size, layers = config_.n_layer;
  a.batch = B, a.seq_len = T, a.training = training, a.full_logits = full_logits;
  a.dtype = exec_.compute_dtype;
  a.attention = attention_kernel();
  a.chunk = std::min(N, loss_chunk_rows_);
  const bool fused = a.attention == AttentionKernel::Fused;
  auto act = [&](const Shape& s) { return arena.alloc(s, a.dtype); };
  auto f32 = [&](const Shape& s) { return arena.alloc(s, DType::F32); };
  if (device_.is_cuda()) {
    a.in_ids = arena.alloc({B, T}, DType::I32);
    a.in_mask = arena.alloc({B, T}, DType::I32);
    a.in_labels = arena.alloc({N}, DType::I32);
  } else {
    a.in_ids = a.in_mask = Tensor();
    a.in_labels = arena.alloc({N}, DType::I32);  // the shifted labels
  }
  a.emb = act({B, T, C});
  a.stack.plan(layers, training, exec_.checkpointing);
  a.stack.input = a.emb;
  for (auto& l : a.stack.slots) {
    l.ln1_out = act({N, C});
    l.ln1_mean = f32({N});
    l.ln1_rstd = f32({N});
    l.qkv = act({B, T, 3 * C});
    if (fused) l.lse = f32({B, H, T});
    else l.probs = act({B, H, T, T});
    l.context = act({B, T, C});
    l.res1 = act({N, C});
    // Inference keeps nothing for a backward pass: the second LayerNorm reuses the first one's
    // output buffer (read only by the q/k/v projection) and GELU overwrites its input.
    l.ln2_out = training ? act({N, C}) : l.ln1_out;
    l.ln2_mean = f32({N});
    l.ln2_rstd = f32({N});
    l.fc_pre = act({N, I});
    // Training keeps GELU's output too (the MLP projection's weight gradient reads it): written by
    // the same GEMM as fc_pre, so the backward recomputes nothing. Inference writes GELU's output
    // over fc_pre.
    l.fc_act = training ? act({N, I}) : Tensor();
    l.out = act({B, T, C});
  }
  for (size_t s = 1; s < a.stack.boundaries.size(); ++s) a.stack.boundaries[s] = act({B, T, C});
  a.proj = act({N, C});
  a.lnf_out = act({N, C});
  a.lnf_mean = f32({N});
  a.lnf_rstd = f32({N});
  // The loss chunks' rows padded to a multiple of 64 elements (50,257 → 50,304): 16-byte-aligned
  // rows let the head's three GEMMs run cuBLASLt's vectorised kernels (38% of a GPT-2 small step
  // went to the unaligned ones). Full logits for inference stay [N, V], as returned.
  a.logits = full_logits ? act({N, V}) : act({a.chunk, padded_vocab_size()});
  a.losses = f32({N});
  if (training) {
    a.d_a = act({N, C});
    a.d_b = act({N, C});
    a.d_c = act({N, C});
    a.d_fc = act({N, I});
    a.d_qkv = act({B, T, 3 * C});
    a.d_scratch = fused ? f32({B, H, T}) : act({B, H, T, T});
    a.d_lnf = act({N, C});
    a.ln_workspace = arena.alloc({ops::layernorm_backward_workspace_bytes(N, C)}, DType::U8);
  } else {
    a.d_a = a.d_b = a.d_c = a.d_fc = a.d_qkv = a.d_scratch = a.d_lnf = a.ln_workspace = Tensor();
  }
}

size_t Gpt2LMHeadModel::activation_bytes_for(int64_t batch, int64_t seq_len, bool training, bool full_logits) const {
  Arena counter = Arena::counting(device_);
  Activations plan;
  allocate_activations(counter, plan, batch, seq_len, training, full_logits);
  return counter.peak();
}

size_t Gpt2LMHeadModel::planned_activation_bytes(int64_t batch, int64_t seq_len, bool training) const {
  return activation_bytes_for(batch, seq_len, training, /*full_logits=*/!training);
}

void Gpt2LMHeadModel::ensure_head_weight() {
  const int64_t Vp = padded_vocab_size(), C = config_.n_embd;
  if (head_weight_.defined() && head_weight_.dtype() == exec_.compute_dtype && head_weight_.device() == device_ &&
      head_weight_.size(0) == Vp && head_weight_.size(1) == C)
    return;
  drop_graphs();  // recordings hold the old buffer's address
  head_weight_ = Tensor();
  head_weight_ = Tensor::zeros({Vp, C}, exec_.compute_dtype, device_);  // rows V.. stay zero
}

void Gpt2LMHeadModel::plan_activations(int64_t B, int64_t T, bool training, bool full_logits) {
  ensure_head_weight();  // outside any graph recording: it may allocate
  const StepKey key{B, T, training, full_logits};
  if (activations_planned(key)) return;
  allocate_activations(activation_arena(key, activation_bytes_for(B, T, training, full_logits)), act_, B, T, training,
                       full_logits);
}

Batch Gpt2LMHeadModel::stage_inputs(const Batch& batch) {
  Activations& a = act_;
  const int64_t B = a.batch, T = a.seq_len, N = B * T;
  // Shifted labels, built on the host: row (b, t) is scored against labels[b, t+1].
  std::vector<int32_t> shifted;
  num_valid_ = 0;
  if (batch.labels.defined()) {
    Tensor labels = batch.labels.device().is_cpu() ? batch.labels : batch.labels.to(Device::cpu());
    const int32_t* l = labels.data<int32_t>();
    shifted.assign(size_t(N), -100);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t + 1 < T; ++t) {
        shifted[size_t(b * T + t)] = l[b * T + t + 1];
        num_valid_ += l[b * T + t + 1] != -100;
      }
  }
  const int64_t base_value = dropout_base_value();
  Batch fixed = batch;
  if (device_.is_cpu()) {
    *dropout_base_.data<int64_t>() = base_value;
    if (!shifted.empty()) {
      std::memcpy(a.in_labels.raw(), shifted.data(), shifted.size() * sizeof(int32_t));
      shifted_labels_ = a.in_labels;
    }
    return fixed;
  }
  const Tensor base_host = Tensor::view(const_cast<int64_t*>(&base_value), {1}, DType::I64);
  const Tensor shifted_host = Tensor::view(shifted.data(), {int64_t(shifted.size())}, DType::I32);
  const bool from_host = batch.input_ids.device().is_cpu();
  uploader_.begin();
  uploader_.upload(dropout_base_, base_host);
  if (from_host) {
    uploader_.upload(a.in_ids, batch.input_ids);
    fixed.input_ids = a.in_ids;
    if (batch.attention_mask.defined()) {
      uploader_.upload(a.in_mask, batch.attention_mask);
      fixed.attention_mask = a.in_mask;
    }
  }
  if (!shifted.empty()) {
    uploader_.upload(a.in_labels, shifted_host);
    shifted_labels_ = a.in_labels;
  }
  uploader_.end();
  return fixed;
}

void Gpt2LMHeadModel::layer_forward(int64_t l, const Tensor& x_in, LayerActivations& s, const Tensor& out,
                                    bool training, const Tensor& key_mask) {
  Activations& a = act_;
  const LayerNames& n = layer_names_[size_t(l)];
  const int64_t N = a.batch * a.seq_len, C = config_.n_embd;
  const float p_resid = training ? config_.resid_pdrop : 0.0f;
  const float p_attn = training ? config_.attn_pdrop : 0.0f;
  const uint64_t seed = dropout_seed_;
  const Tensor x = x_in.reshape({N, C});
  const Tensor proj = a.proj.reshape({N, C});

  ops::layernorm_forward(s.ln1_out, s.ln1_mean, s.ln1_rstd, x, f32_weight(n.ln1_w), f32_weight(n.ln1_b),
                         config_.layer_norm_epsilon);
  ops::linear_forward(s.qkv.reshape({N, 3 * C}), s.ln1_out, gemm_weight(n.attn_w), gemm_weight(n.attn_b));
  if (a.attention == AttentionKernel::Fused)
    ops::attention_forward_fused(s.context, s.lse, s.qkv, key_mask, config_.n_head, /*causal=*/true, p_attn, seed,
                                 dropout_offset(site_attention_probs(l)), dropout_base_);
  else
    ops::attention_forward(s.context, s.probs, s.qkv, key_mask, config_.n_head, /*causal=*/true, p_attn, seed,
                           dropout_offset(site_attention_probs(l)), dropout_base_);
  ops::linear_forward(proj, s.context.reshape({N, C}), gemm_weight(n.attn_proj_w), gemm_weight(n.attn_proj_b));
  // res1 = x + dropout(attention branch), ln2_out = LayerNorm(res1): the dropout inside the kernel.
  ops::residual_layernorm_forward(s.ln2_out, s.res1, s.ln2_mean, s.ln2_rstd, x, proj, f32_weight(n.ln2_w),
                                  f32_weight(n.ln2_b), config_.layer_norm_epsilon,
                                  {p_resid, seed, dropout_offset(site_attention_output(l)), dropout_base_});
  // fc_act = GELU(fc_pre), fc_pre = ln2_out · W_fcᵀ + b_fc: one GEMM with GELU in its epilogue.
  const Tensor& mlp_hidden = s.fc_act.defined() ? s.fc_act : s.fc_pre;
  ops::linear_gelu_tanh_forward(mlp_hidden, s.fc_act.defined() ? s.fc_pre : Tensor(), s.ln2_out, gemm_weight(n.fc_w),
                                gemm_weight(n.fc_b));
  ops::linear_forward(proj, mlp_hidden, gemm_weight(n.mlp_proj_w), gemm_weight(n.mlp_proj_b));
  ops::residual_forward(out.reshape({N, C}), s.res1, proj,
                        {p_resid, seed, dropout_offset(site_mlp_output(l)), dropout_base_});
}

void Gpt2LMHeadModel::trunk_forward(const Batch& batch, bool training) {
  Activations& a = act_;
  const int64_t N = a.batch * a.seq_len, C = config_.n_embd;
  ops::embeddings_forward(a.emb, batch.input_ids, Tensor(), f32_weight(wte_), f32_weight(wpe_), Tensor());
  ops::dropout_forward(a.emb, a.emb, training ? config_.embd_pdrop : 0.0f, dropout_seed_,
                       dropout_offset(kSiteEmbeddings), dropout_base_);
  LayerStack<LayerActivations>& stack = a.stack;
  for (int64_t l = 0; l < config_.n_layer; ++l)
    layer_forward(l, stack.input_of(l), stack.slot(l), stack.output(l), training, batch.attention_mask);
  ops::layernorm_forward(a.lnf_out, a.lnf_mean, a.lnf_rstd, stack.output(config_.n_layer - 1).reshape({N, C}),
                         f32_weight(lnf_w_), f32_weight(lnf_b_), config_.layer_norm_epsilon);
}

void Gpt2LMHeadModel::head_loss(const Tensor& shifted_labels, bool with_grad, float scale) {
  Activations& a = act_;
  const int64_t N = a.batch * a.seq_len, V = config_.vocab_size;
  const Tensor wte = gemm_weight(wte_);
  // The padded head weight: wte's current GEMM copy over the zero rows. The padded logit columns
  // then come out 0 and, read back by the dX GEMM, add 0·0.
  ops::cast(head_weight_.slice(0, V), wte);
  for (int64_t r0 = 0; r0 < N; r0 += a.chunk) {
    const int64_t r1 = std::min(N, r0 + a.chunk), rows = r1 - r0;
    const Tensor logits = a.logits.slice(0, rows);  // [rows, padded V]: the classes are the first V columns
    const Tensor x = a.lnf_out.slice(r0, r1);
    const Tensor labels = shifted_labels.slice(r0, r1);
    ops::linear_forward(logits, x, head_weight_, Tensor());
    if (!with_grad) {
      ops::cross_entropy_forward_padded(a.losses.slice(r0, r1), logits, V, labels, label_smoothing_);
      continue;
    }
    // Losses and the gradient (in place) in one pass over the chunk's logits.
    ops::cross_entropy_forward_backward_padded(a.losses.slice(r0, r1), logits, logits, V, labels, label_smoothing_,
                                               scale);
    // dWte from the first V columns only (the gradient has no padding rows); d_lnf through the
    // padded weight (its zero rows meet the zero padding columns).
    ops::linear_backward_padded(Tensor(), params_.grad(wte_), logits, x, wte);
    ops::linear_backward(a.d_lnf.slice(r0, r1), Tensor(), Tensor(), logits, x, head_weight_);
  }
}

Tensor Gpt2LMHeadModel::forward(const Batch& batch, bool training) {
  check_batch(batch);
  if (training) check_trainable("forward(training=true)");
  const auto tf32 = tf32_scope();
  const int64_t B = batch.input_ids.size(0), T = batch.input_ids.size(1);
  const bool with_labels = batch.labels.defined();
  plan_activations(B, T, training, /*full_logits=*/!with_labels);
  prepare_weights_for_forward();
  if (training) ++dropout_step_;
  const Batch staged = stage_inputs(batch);
  trunk_forward(staged, training);
  last_batch_ = staged;
  can_backward_ = training && with_labels;
  loss_ = 0.0f;
  if (!with_labels) {
    ops::linear_forward(act_.logits, act_.lnf_out, gemm_weight(wte_), Tensor());
    return act_.logits.reshape({B, T, config_.vocab_size});
  }
  head_loss(shifted_labels_, /*with_grad=*/false, 0.0f);
  read_mean_loss(act_.losses);
  return Tensor();
}

void Gpt2LMHeadModel::layer_backward(int64_t l, const Tensor& x_in, LayerActivations& s, const Tensor& key_mask) {
  Activations& a = act_;
  const ParameterStore& P = params_;
  const LayerNames& n = layer_names_[size_t(l)];
  const int64_t B = a.batch, T = a.seq_len, N = B * T, C = config_.n_embd;
  const float p_resid = config_.resid_pdrop, p_attn = config_.attn_pdrop;
  const uint64_t seed = dropout_seed_;
  const Tensor x = x_in.reshape({N, C});

  // d_a: gradient of the layer's output on entry (= of res1 through the residual), of x on exit.
  ops::dropout_backward(a.d_b, a.d_a, p_resid, seed, dropout_offset(site_mlp_output(l)), dropout_base_);
  // d_fc = gradient of fc_pre: the projection's input gradient times GELU' in one GEMM.
  ops::linear_backward_gelu_tanh(a.d_fc, P.grad(n.mlp_proj_w), P.grad(n.mlp_proj_b), a.d_b, s.fc_act,
                                 gemm_weight(n.mlp_proj_w), s.fc_pre);
  ops::linear_backward(a.d_b, P.grad(n.fc_w), P.grad(n.fc_b), a.d_fc, s.ln2_out, gemm_weight(n.fc_w));
  ops::layernorm_backward(a.d_a, P.grad(n.ln2_w), P.grad(n.ln2_b), a.d_b, s.res1, P.value(n.ln2_w), s.ln2_mean,
                          s.ln2_rstd, /*accumulate=*/true, a.ln_workspace);  // d res1 total
  ops::dropout_backward(a.d_b, a.d_a, p_resid, seed, dropout_offset(site_attention_output(l)), dropout_base_);
  ops::linear_backward(a.d_c, P.grad(n.attn_proj_w), P.grad(n.attn_proj_b), a.d_b, s.context.reshape({N, C}),
                       gemm_weight(n.attn_proj_w));
  if (a.attention == AttentionKernel::Fused)
    ops::attention_backward_fused(a.d_qkv, a.d_scratch, a.d_c.reshape({B, T, C}), s.qkv, s.context, s.lse, key_mask,
                                  config_.n_head, /*causal=*/true, p_attn, seed,
                                  dropout_offset(site_attention_probs(l)), dropout_base_);
  else
    ops::attention_backward(a.d_qkv, a.d_scratch, a.d_c.reshape({B, T, C}), s.qkv, s.probs, key_mask,
                            config_.n_head, /*causal=*/true, p_attn, seed, dropout_offset(site_attention_probs(l)),
                            dropout_base_);
  ops::linear_backward(a.d_b, P.grad(n.attn_w), P.grad(n.attn_b), a.d_qkv.reshape({N, 3 * C}), s.ln1_out,
                       gemm_weight(n.attn_w));
  ops::layernorm_backward(a.d_a, P.grad(n.ln1_w), P.grad(n.ln1_b), a.d_b, x, P.value(n.ln1_w), s.ln1_mean,
                          s.ln1_rstd, /*accumulate=*/true, a.ln_workspace);  // d x total
}

void Gpt2LMHeadModel::backward_kernels(float loss_scale) {
  const float scale = num_valid_ ? loss_scale / float(num_valid_) : 0.0f;
  head_loss(shifted_labels_, /*with_grad=*/true, scale);
  trunk_backward();
}

void Gpt2LMHeadModel::trunk_backward() {
  Activations& a = act_;
  const ParameterStore& P = params_;
  const Batch& batch = last_batch_;
  const int64_t B = a.batch, T = a.seq_len, N = B * T, C = config_.n_embd, layers = config_.n_layer;
  LayerStack<LayerActivations>& stack = a.stack;

  ops::layernorm_backward(a.d_a, P.grad(lnf_w_), P.grad(lnf_b_), a.d_lnf, stack.output(layers - 1).reshape({N, C}),
                          P.value(lnf_w_), a.lnf_mean, a.lnf_rstd, /*accumulate=*/false, a.ln_workspace);
  // Layers, last to first, one checkpoint segment at a time (an earlier one recomputed first).
  stack.backward(
      [&](int64_t l) {
        layer_forward(l, stack.input_of(l), stack.slot(l), stack.output(l), /*training=*/true, batch.attention_mask);
      },
      [&](int64_t l) {
        layer_backward(l, stack.input_of(l), stack.slot(l), batch.attention_mask);
        gradients_final_from(layer_offsets_[size_t(l)]);
      });
  ops::dropout_backward(a.d_b, a.d_a, config_.embd_pdrop, dropout_seed_, dropout_offset(kSiteEmbeddings),
                        dropout_base_);
  // The token embedding is also the head's weight: its gradient is final only now.
  ops::embeddings_backward(P.grad(wte_), P.grad(wpe_), Tensor(), a.d_b.reshape({B, T, C}), batch.input_ids,
                           Tensor());
  gradients_final_from(0);
}

void Gpt2LMHeadModel::train_step_graphed(const Batch& batch, float loss_scale, const std::function<void()>& tail) {
  check_batch(batch);
  check_trainable("train_step_graphed");
  check_graphed_step(batch, loss_scale);
  const auto tf32 = tf32_scope();
  const int64_t B = batch.input_ids.size(0), T = batch.input_ids.size(1);
  plan_activations(B, T, /*training=*/true, /*full_logits=*/false);
  allocate_working_weights();
  ++dropout_step_;
  const Batch fixed = stage_inputs(batch);  // counts the scored tokens on the host
  last_batch_ = fixed;
  const float scale = num_valid_ ? loss_scale / float(num_valid_) : 0.0f;
  uint32_t scale_bits = 0;
  std::memcpy(&scale_bits, &loss_scale, sizeof scale_bits);
  run_training_step_graph({B, T, fixed.attention_mask.defined(), num_valid_, scale_bits}, [&] {
    trunk_forward(fixed, /*training=*/true);
    head_loss(shifted_labels_, /*with_grad=*/true, scale);  // loss and its gradient in one pass
    trunk_backward();
  }, tail);
  read_mean_loss(act_.losses);
}

}  // namespace ww::models
