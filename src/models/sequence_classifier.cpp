// SequenceClassifier (BERT, DistilBERT): parameters, loading and saving, layer_forward and
// layer_backward, the pooling head and its loss, and the CUDA-graph training step. Quantization of
// the encoder linears lives in sequence_classifier_quantize.cpp; the shared machinery in runtime.cpp.
#include "wattwise/models/sequence_classifier.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "wattwise/core/rng.h"
#include "wattwise/io/safetensors.h"
#include "wattwise/ops/ops.h"

namespace ww::models {

namespace {
// Dropout sites per step: 0 embeddings, 1+3l attention probabilities, 2+3l attention output,
// 3+3l feed-forward output, 1+3L the classifier input.
constexpr int kSiteEmbeddings = 0;
int site_attention_probs(int64_t layer) { return int(1 + 3 * layer); }
int site_attention_output(int64_t layer) { return int(2 + 3 * layer); }
int site_ffn_output(int64_t layer) { return int(3 + 3 * layer); }

bool is_layernorm_or_bias(const std::string& name) {
  auto ends_with = [&](const char* s) {
    std::string suffix(s);
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".bias") || name.find("LayerNorm") != std::string::npos ||
         name.find("layer_norm") != std::string::npos;
}

// Tensors of pre-training heads and buffers that a classifier legitimately ignores.
bool is_ignorable_checkpoint_tensor(const std::string& name) {
  for (const char* prefix : {"cls.predictions.", "cls.seq_relationship.", "vocab_transform.",
                             "vocab_layer_norm.", "vocab_projector.", "lm_head."})
    if (name.rfind(prefix, 0) == 0) return true;
  return name.size() >= 12 && name.compare(name.size() - 12, 12, "position_ids") == 0;
}
}  // namespace

std::string SequenceClassifier::prefix() const {
  return config_.arch == Architecture::Bert ? "bert." : "distilbert.";
}

SequenceClassifier::SequenceClassifier(const ModelConfig& config, Device device, ModelPurpose purpose)
    : ModelRuntime(device, purpose, {"fine-tune it", "ModelPurpose::Inference (or LoadOptions::purpose)"}),
      config_(config) {
  config_.validate("model config");
  // f32 masters, plus their gradients when training: refused before any allocation.
  config_.check_fits(inference_only() ? Device::cpu() : device_, inference_only() ? 4 : 8, "model config");
  register_parameters();
  allocate_parameters();
}

void SequenceClassifier::register_parameters() {
  const int64_t C = config_.hidden_size, I = config_.intermediate_size;
  auto add = [&](const std::string& name, const Shape& shape) {
    params_.add(name, shape, !is_layernorm_or_bias(name));
  };
  const std::string p = prefix();
  word_emb_ = p + "embeddings.word_embeddings.weight";
  pos_emb_ = p + "embeddings.position_embeddings.weight";
  emb_ln_w_ = p + "embeddings.LayerNorm.weight";
  emb_ln_b_ = p + "embeddings.LayerNorm.bias";
  add(word_emb_, {config_.vocab_size, C});
  add(pos_emb_, {config_.max_position_embeddings, C});
  if (config_.type_vocab_size > 0) {
    type_emb_ = p + "embeddings.token_type_embeddings.weight";
    add(type_emb_, {config_.type_vocab_size, C});
  }
  add(emb_ln_w_, {C});
  add(emb_ln_b_, {C});

  for (int64_t l = 0; l < config_.num_layers; ++l) {
    layer_offsets_.push_back(params_.numel());
    LayerNames n;
    std::string q, k, v;
    if (config_.arch == Architecture::Bert) {
      std::string base = p + "encoder.layer." + std::to_string(l) + ".";
      q = base + "attention.self.query", k = base + "attention.self.key", v = base + "attention.self.value";
      n.attn_out_w = base + "attention.output.dense.weight", n.attn_out_b = base + "attention.output.dense.bias";
      n.ln1_w = base + "attention.output.LayerNorm.weight", n.ln1_b = base + "attention.output.LayerNorm.bias";
      n.ffn_in_w = base + "intermediate.dense.weight", n.ffn_in_b = base + "intermediate.dense.bias";
      n.ffn_out_w = base + "output.dense.weight", n.ffn_out_b = base + "output.dense.bias";
      n.ln2_w = base + "output.LayerNorm.weight", n.ln2_b = base + "output.LayerNorm.bias";
    } else {
      std::string base = p + "transformer.layer." + std::to_string(l) + ".";
      q = base + "attention.q_lin", k = base + "attention.k_lin", v = base + "attention.v_lin";
      n.attn_out_w = base + "attention.out_lin.weight", n.attn_out_b = base + "attention.out_lin.bias";
      n.ln1_w = base + "sa_layer_norm.weight", n.ln1_b = base + "sa_layer_norm.bias";
      n.ffn_in_w = base + "ffn.lin1.weight", n.ffn_in_b = base + "ffn.lin1.bias";
      n.ffn_out_w = base + "ffn.lin2.weight", n.ffn_out_b = base + "ffn.lin2.bias";
      n.ln2_w = base + "output_layer_norm.weight", n.ln2_b = base + "output_layer_norm.bias";
    }
    // Query, key and value adjacent: together they are one packed [3C, C] projection.
    add(q + ".weight", {C, C});
    add(k + ".weight", {C, C});
    add(v + ".weight", {C, C});
    add(q + ".bias", {C});
    add(k + ".bias", {C});
    add(v + ".bias", {C});
    n.qkv_first_w = q + ".weight", n.qkv_last_w = v + ".weight";
    n.qkv_first_b = q + ".bias", n.qkv_last_b = v + ".bias";
    add(n.attn_out_w, {C, C});
    add(n.attn_out_b, {C});
    add(n.ln1_w, {C});
    add(n.ln1_b, {C});
    add(n.ffn_in_w, {I, C});
    add(n.ffn_in_b, {I});
    add(n.ffn_out_w, {C, I});
    add(n.ffn_out_b, {C});
    add(n.ln2_w, {C});
    add(n.ln2_b, {C});
    layer_names_.push_back(n);
  }
  layers_end_ = params_.numel();
  if (config_.arch == Architecture::Bert) {
    head_w_ = p + "pooler.dense.weight", head_b_ = p + "pooler.dense.bias";
  } else {
    head_w_ = "pre_classifier.weight", head_b_ = "pre_classifier.bias";
  }
  // Without the dense head its parameters do not exist (nothing unused is trained or saved).
  if (has_dense_head()) {
    add(head_w_, {C, C});
    add(head_b_, {C});
  }
  cls_w_ = "classifier.weight", cls_b_ = "classifier.bias";
  add(cls_w_, {config_.num_labels, C});
  add(cls_b_, {config_.num_labels});
}

void SequenceClassifier::init_parameter(const Parameter& p, float* w, const NormalFill& normal) const {
  const int64_t n = shape_numel(p.shape);
  const bool bias = p.name.size() > 5 && p.name.compare(p.name.size() - 5, 5, ".bias") == 0;
  if (bias) {
    std::fill(w, w + n, 0.0f);
  } else if (!p.weight_decay) {  // LayerNorm weight
    std::fill(w, w + n, 1.0f);
  } else {
    normal(w, n, config_.initializer_range);
  }
  if (p.name == word_emb_)
    std::fill(w + config_.pad_token_id * config_.hidden_size, w + (config_.pad_token_id + 1) * config_.hidden_size, 0.0f);
}

void SequenceClassifier::init_weights(uint64_t seed) {
  Tensor host = Tensor::empty({params_.numel()}, DType::F32);
  for (const auto& p : params_.all())
    init_parameter(p, host.data<float>() + p.offset,
                   [&](float* w, int64_t, float std) { fill_parameter_normal(w, p, std, seed); });
  params_.flat_values().copy_from(host);
  params_.mark_updated();
}

SequenceClassifier SequenceClassifier::from_pretrained(const std::filesystem::path& dir, Device device,
                                                       const LoadOptions& options) {
  ModelConfig config = load_model_config(dir);
  if (options.pooling) config.pooling = *options.pooling;
  io::SafetensorsCheckpoint checkpoint = io::SafetensorsCheckpoint::open(dir);
  if (options.allow_nonfinite) checkpoint.set_nonfinite(io::NonFinite::warn);
  const std::string config_path = (std::filesystem::is_directory(dir) ? dir / "config.json" : dir).string();
  check_config_matches_checkpoint(config.parameter_count(), config.sizes(), checkpoint.total_elements(),
                                  config_path, checkpoint.description());
  config.check_fits(options.purpose == ModelPurpose::Inference ? Device::cpu() : device,
                    options.purpose == ModelPurpose::Inference ? 4 : 8, config_path);
  SequenceClassifier model(config, device, options.purpose);
  const std::string where = checkpoint.path().string();

  std::vector<std::string> names = checkpoint.names();
  std::set<std::string> unused(names.begin(), names.end());
  auto find = [&](const std::string& ours) -> std::optional<std::string> {
    std::vector<std::string> candidates = {ours};
    const std::string p = model.prefix();
    if (ours.rfind(p, 0) == 0) candidates.push_back(ours.substr(p.size()));  // bare encoder names
    for (std::string c : std::vector<std::string>(candidates)) {  // pre-2019 LayerNorm names
      auto replace_tail = [&](const char* from, const char* to) {
        std::string f(from);
        if (c.size() > f.size() && c.compare(c.size() - f.size(), f.size(), f) == 0 &&
            c.find("LayerNorm") != std::string::npos)
          candidates.push_back(c.substr(0, c.size() - f.size()) + to);
      };
      replace_tail(".weight", ".gamma");
      replace_tail(".bias", ".beta");
    }
    for (const auto& c : candidates)
      if (checkpoint.find(c)) return c;
    return std::nullopt;
  };

  std::vector<std::string> missing_head;
  Tensor staging;
  for (auto& p : model.params_.all()) {
    auto name = find(p.name);
    if (!name) {
      bool head = p.name == model.cls_w_ || p.name == model.cls_b_ || p.name == model.head_w_ ||
                  p.name == model.head_b_;
      if (head) {
        missing_head.push_back(p.name);
        continue;
      }
      fail(where, ": missing tensor '", p.name, "' (a ", architecture_name(config.arch),
           " model with this config.json needs it)");
    }
    unused.erase(*name);
    if (p.value.device().is_cpu()) {
      checkpoint.read_into(*name, p.value);
    } else {
      staging = Tensor::empty(p.shape, DType::F32);
      checkpoint.read_into(*name, staging);
      p.value.copy_from(staging);
    }
  }
  // A pooling without the dense head leaves the checkpoint's pooler / pre_classifier unused.
  std::set<std::string> dense_head_names;
  if (!model.has_dense_head())
    for (const std::string& ours : {model.head_w_, model.head_b_}) {
      dense_head_names.insert(ours);
      if (ours.rfind(model.prefix(), 0) == 0) dense_head_names.insert(ours.substr(model.prefix().size()));
    }
  for (const auto& name : unused) {
    if (is_ignorable_checkpoint_tensor(name) || dense_head_names.count(name)) continue;
    fail(where, ": unexpected tensor '", name, "' (not part of a ", architecture_name(config.arch),
         " sequence classifier with this config.json)");
  }
  if (!missing_head.empty()) {
    if (!options.allow_new_head)
      fail(where, ": missing classification head tensor '", missing_head.front(),
           "'; this looks like a bare encoder checkpoint: fine-tune it first (a new head is "
           "initialised when training starts from it)");
    Rng rng(options.head_seed, /*stream=*/7);
    for (const auto& p : model.params_.all()) {
      if (std::find(missing_head.begin(), missing_head.end(), p.name) == missing_head.end()) continue;
      Tensor host = Tensor::empty(p.shape, DType::F32);
      // Sequential draws from one stream, not fill_normal's per-parameter streams: a head is small,
      // and a seed keeps giving the head it gave (the documented MiniLM runs start from it).
      model.init_parameter(p, host.data<float>(), [&](float* w, int64_t n, float std) {
        for (int64_t i = 0; i < n; ++i) w[i] = rng.normal() * std;
      });
      p.value.copy_from(host);
    }
    std::fprintf(stderr,
                 "wattwise: note: %s has no classification head; initialised %zu new tensors (seed %llu, pooling %s)\n",
                 where.c_str(), missing_head.size(), (unsigned long long)options.head_seed,
                 pooling_name(config.pooling));
  }
  model.params_.mark_updated();
  return model;
}

void SequenceClassifier::save(const std::filesystem::path& dir, DType store_dtype) const {
  prepare_save(dir, store_dtype);
  std::vector<std::pair<std::string, Tensor>> tensors;
  Tensor host;  // the host copy the views below point into: alive until the file is written
  for (size_t i = 0; i < params_.all().size(); ++i)
    if (!dropped_parameters_.count(params_.all()[i].name))
      tensors.emplace_back(params_.all()[i].name, value_to_save(i, store_dtype, host));
  io::save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}}, store_dtype);
  if (!has_dense_head())
    std::fprintf(stderr,
                 "wattwise: note: %s: pooling %s is recorded as \"wattwise_pooling\" in config.json; transformers' "
                 "%sForSequenceClassification would not compute the same function from this folder (see "
                 "docs/PRETRAINED.md)\n",
                 dir.string().c_str(), pooling_name(config_.pooling),
                 config_.arch == Architecture::Bert ? "Bert" : "DistilBert");
  ModelConfig out = config_;
  set_config_json_dtype(out.extra, torch_dtype_name(store_dtype));
  save_model_config(out, dir / "config.json");
}

void SequenceClassifier::set_dropout(float hidden, float attention, float classifier) {
  ModelConfig updated = config_;
  updated.hidden_dropout = hidden, updated.attention_dropout = attention, updated.classifier_dropout = classifier;
  updated.validate("dropout override");
  config_ = updated;
}

void SequenceClassifier::set_label_names(const std::vector<std::string>& names) {
  if (int64_t(names.size()) != config_.num_labels)
    fail("the model has ", config_.num_labels, " labels but ", names.size(), " label names were given");
  config_.id2label = names;
}

void SequenceClassifier::set_class_weights(const std::vector<float>& weights) {
  if (!weights.empty()) {
    if (config_.regression) fail("class weights: a regression model (one output) has no classes to weight");
    if (int64_t(weights.size()) != config_.num_labels)
      fail("class weights: ", weights.size(), " weights for a model with ", config_.num_labels, " labels");
    for (size_t k = 0; k < weights.size(); ++k)
      if (!(std::isfinite(weights[k]) && weights[k] > 0))
        fail("class weights: the weight of class ", k, " is ", weights[k], " (expected a finite number > 0)");
  }
  class_weights_host_ = weights;
  class_weights_ = weights.empty() ? Tensor() : Tensor::from_vector(weights, {int64_t(weights.size())}).to(device_);
  class_weight_sum_ = weights.empty() ? Tensor() : Tensor::zeros({1}, DType::F32, device_);
  drop_graphs();  // recorded steps ran the loss without (or with other) weights
}

void SequenceClassifier::check_batch(const Batch& batch) const {
  const Tensor& ids = batch.input_ids;
  if (!ids.defined() || ids.dim() != 2) fail("batch: input_ids must be a [batch, seq_len] tensor");
  check_dtype(ids, DType::I32, "batch input_ids");
  const int64_t B = ids.size(0), T = ids.size(1);
  if (B == 0 || T == 0) fail("batch: empty batch ", shape_str(ids.shape()));
  if (T > config_.max_position_embeddings)
    fail("sequence length ", T, " exceeds the model's max_position_embeddings ", config_.max_position_embeddings,
         " (use a smaller --max-length)");
  if (!batch.attention_mask.defined()) fail("batch: attention_mask is required");
  check_shape(batch.attention_mask, {B, T}, "batch attention_mask");
  check_dtype(batch.attention_mask, DType::I32, "batch attention_mask");
  if (batch.token_type_ids.defined()) {
    check_shape(batch.token_type_ids, {B, T}, "batch token_type_ids");
    check_dtype(batch.token_type_ids, DType::I32, "batch token_type_ids");
    if (config_.type_vocab_size == 0)
      fail("batch: token_type_ids given but ", architecture_name(config_.arch), " has no token types");
  }
  if (batch.labels.defined()) {
    check_shape(batch.labels, {B}, "batch labels");
    check_dtype(batch.labels, config_.regression ? DType::F32 : DType::I32, "batch labels");
  }
  check_batch_devices(batch);
}

void SequenceClassifier::keep_first_layers(int64_t k) {
  if (k < 1 || k > config_.num_layers)
    fail("keep_first_layers(", k, "): the model has ", config_.num_layers, " encoder layers; keep between 1 and ",
         config_.num_layers);
  const std::string p = prefix() + (config_.arch == Architecture::Bert ? "encoder.layer." : "transformer.layer.");
  for (int64_t l = k; l < config_.num_layers; ++l)
    for (const auto& param : params_.all())
      if (param.name.rfind(p + std::to_string(l) + ".", 0) == 0) dropped_parameters_.insert(param.name);
  config_.num_layers = k;
  layer_names_.resize(size_t(k));
  release_activations();  // re-plan the activations (and re-record graphs) for fewer layers
  drop_graphs();
}

std::vector<WeightUse> SequenceClassifier::weight_uses() const {
  std::set<std::string> f32_read = {word_emb_, pos_emb_, emb_ln_w_, emb_ln_b_};
  if (!type_emb_.empty()) f32_read.insert(type_emb_);
  std::set<size_t> quantized;
  for (const LayerNames& n : layer_names_) {
    for (const std::string* name : {&n.ln1_w, &n.ln1_b, &n.ln2_w, &n.ln2_b}) f32_read.insert(*name);
    if (quantized_.empty()) continue;
    for (size_t i = params_.index_of(n.qkv_first_w); i <= params_.index_of(n.qkv_last_w); ++i) quantized.insert(i);
    for (const std::string* name : {&n.attn_out_w, &n.ffn_in_w, &n.ffn_out_w}) quantized.insert(params_.index_of(*name));
  }
  const bool f32_compute = exec_.compute_dtype == DType::F32;
  std::vector<WeightUse> uses(params_.all().size());
  for (size_t i = 0; i < uses.size(); ++i) {
    const std::string& name = params_.all()[i].name;
    if (dropped_parameters_.count(name) || quantized.count(i)) continue;  // never read
    if (f32_read.count(name) || f32_compute) uses[i].f32 = true;
    else uses[i].working = true;
  }
  return uses;
}

void SequenceClassifier::allocate_activations(Arena& arena, Activations& a, int64_t B, int64_t T,
                                              bool training) const {
  const int64_t N = B * T, C = config_.hidden_size, I = config_.intermediate_size,
                H = config_.num_heads, L = config_.num_labels, layers = config_.num_layers;
  a.batch = B, a.seq_len = T, a.training = training;
  a.dtype = exec_.compute_dtype;
  a.attention = attention_kernel();
  const bool fused = a.attention == AttentionKernel::Fused;
  auto act = [&](const Shape& s) { return arena.alloc(s, a.dtype); };
  auto f32 = [&](const Shape& s) { return arena.alloc(s, DType::F32); };
  // On a GPU the inputs live in fixed buffers (uploaded without a host wait), which is also what
  // lets inference replay CUDA graphs.
  a.graphed = !training && exec_.cuda_graphs && device_.is_cuda();
  if (device_.is_cuda()) {
    a.in_ids = arena.alloc({B, T}, DType::I32);
    a.in_mask = arena.alloc({B, T}, DType::I32);
    a.in_types = arena.alloc({B, T}, DType::I32);
    a.in_labels = arena.alloc({B}, config_.regression ? DType::F32 : DType::I32);
  } else {
    a.in_ids = a.in_mask = a.in_types = a.in_labels = Tensor();
  }
  a.emb_sum = act({B, T, C});
  a.emb_mean = f32({N});
  a.emb_rstd = f32({N});
  // Inference keeps nothing for a backward pass: the embeddings' LayerNorm writes over its input,
  // the residual sums are not stored (the fused residual + LayerNorm allows it) and the activation
  // overwrites the feed-forward input.
  a.emb_out = training ? act({B, T, C}) : a.emb_sum;
  if (!training) a.proj = act({N, C});
  // Training keeps every layer's activations for backward (or a segment's, when checkpointing);
  // inference reuses one set (a layer reads its input before it overwrites `out`).
  a.stack.plan(layers, training, exec_.checkpointing);
  a.stack.input = a.emb_out;
  for (auto& l : a.stack.slots) {
    l.qkv = act({B, T, 3 * C});
    if (fused) l.lse = f32({B, H, T});
    else l.probs = act({B, H, T, T});
    l.context = act({B, T, C});
    l.res1 = training ? act({N, C}) : Tensor();  // the residual sums: backward's LayerNorm inputs
    l.ln1_mean = f32({N});
    l.ln1_rstd = f32({N});
    // Inference: the first LayerNorm's output goes over the attention context, which the output
    // projection has read by then (BERT-base at batch 256 × 128: 48 MiB less peak memory).
    l.h1 = training ? act({N, C}) : l.context;
    l.ffn_pre = act({N, I});
    l.res2 = training ? act({N, C}) : Tensor();
    l.ln2_mean = f32({N});
    l.ln2_rstd = f32({N});
    // Inference: every layer works in place on the hidden state (the embeddings' buffer): its input
    // is last read by the first LayerNorm, before the second one writes the output (BERT-base at
    // batch 256 × 128: 48 MiB less peak memory).
    l.out = training ? act({B, T, C}) : a.emb_out;
  }
  for (size_t s = 1; s < a.stack.boundaries.size(); ++s) a.stack.boundaries[s] = act({B, T, C});
  if (training) a.proj = act({N, C});
  a.ffn_act = training ? act({N, I}) : a.stack.slots.front().ffn_pre;
  a.cls = act({B, C});
  a.head_pre = act({B, C});
  a.head_act = act({B, C});
  a.head_drop = act({B, C});
  a.logits = act({B, L});
  a.losses = f32({B});
  a.quant_workspace = Tensor();
  if (!quantized_.empty() && !training) {
    size_t bytes = 0;
    for (const auto& q : quantized_)
      bytes = std::max(bytes, ops::quantized_linear_workspace_bytes(q, N, a.dtype, device_));
    if (bytes) a.quant_workspace = arena.alloc({int64_t(bytes)}, DType::U8);
  }
  if (training) {
    a.d_a = act({N, C});
    a.d_b = act({N, C});
    a.d_c = act({N, C});
    a.d_ffn = act({N, I});
    a.d_qkv = act({B, T, 3 * C});
    a.d_scratch = fused ? f32({B, H, T}) : act({B, H, T, T});
    // LayerNorm backward's partial sums, so a training step allocates nothing.
    a.ln_workspace = arena.alloc({ops::layernorm_backward_workspace_bytes(N, C)}, DType::U8);
    a.d_cls = act({B, C});
    a.d_head = act({B, C});
    a.d_logits = act({B, L});
  } else {
    a.d_a = a.d_b = a.d_c = a.d_ffn = a.d_qkv = a.d_scratch = a.d_cls = a.d_head = a.d_logits = Tensor();
    a.ln_workspace = Tensor();
  }
}

size_t SequenceClassifier::planned_activation_bytes(int64_t batch, int64_t seq_len, bool training) const {
  Arena counter = Arena::counting(device_);
  Activations plan;
  allocate_activations(counter, plan, batch, seq_len, training);
  return counter.peak();
}

void SequenceClassifier::plan_activations(int64_t B, int64_t T, bool training) {
  const StepKey key{B, T, training};
  if (activations_planned(key)) return;
  allocate_activations(activation_arena(key, planned_activation_bytes(B, T, training)), act_, B, T, training);
}

SequenceClassifier::AttentionTensors SequenceClassifier::attention_tensors_for_testing(int64_t layer) const {
  const LayerStack<LayerActivations>& stack = act_.stack;
  if (!act_.training || stack.slots.empty() || !last_batch_.input_ids.defined())
    fail("attention_tensors_for_testing: needs a training forward first");
  if (layer < 0 || layer >= config_.num_layers)
    fail("attention_tensors_for_testing: layer ", layer, " is outside 0..", config_.num_layers - 1);
  if (int64_t(stack.slots.size()) != config_.num_layers)
    fail("attention_tensors_for_testing: activation checkpointing keeps only some layers' tensors");
  const LayerActivations& s = stack.slots[size_t(layer)];
  return {s.qkv, s.context, s.lse, last_batch_.attention_mask};
}

void SequenceClassifier::layer_forward(int64_t l, const Tensor& x_in, LayerActivations& s, const Tensor& out,
                                       bool training, const Tensor& key_mask) {
  Activations& a = act_;
  const LayerNames& n = layer_names_[size_t(l)];
  const int64_t B = a.batch, T = a.seq_len, N = B * T, C = config_.hidden_size;
  const float p_hidden = training ? config_.hidden_dropout : 0.0f;
  const float p_attn = training ? config_.attention_dropout : 0.0f;
  const float p_attn_out = config_.arch == Architecture::Bert ? p_hidden : 0.0f;  // DistilBERT has none
  const uint64_t seed = dropout_seed_;
  const Tensor x = x_in.reshape({N, C});
  const Tensor proj = a.proj.reshape({N, C});

  encoder_linear(l, kQkv, s.qkv.reshape({N, 3 * C}), x, gemm_weight_span(n.qkv_first_b, n.qkv_last_b, {3 * C}));
  if (a.attention == AttentionKernel::Fused)
    ops::attention_forward_fused(s.context, s.lse, s.qkv, key_mask, config_.num_heads, /*causal=*/false, p_attn,
                                 seed, dropout_offset(site_attention_probs(l)), dropout_base_);
  else
    ops::attention_forward(s.context, s.probs, s.qkv, key_mask, config_.num_heads, /*causal=*/false, p_attn, seed,
                           dropout_offset(site_attention_probs(l)), dropout_base_);
  encoder_linear(l, kAttentionOut, proj, s.context.reshape({N, C}), gemm_weight(n.attn_out_b));
  // The output dropouts run inside the residual + LayerNorm kernels. Inference keeps no sums (res1,
  // res2 undefined): only backward reads them.
  ops::residual_layernorm_forward(s.h1, s.res1, s.ln1_mean, s.ln1_rstd, x, proj, f32_weight(n.ln1_w),
                                  f32_weight(n.ln1_b), config_.layer_norm_eps,
                                  {p_attn_out, seed, dropout_offset(site_attention_output(l)), dropout_base_});
  encoder_linear(l, kFfnIn, s.ffn_pre, s.h1, gemm_weight(n.ffn_in_b));
  if (config_.activation == Activation::Gelu) ops::gelu_forward(a.ffn_act, s.ffn_pre);
  else ops::relu_forward(a.ffn_act, s.ffn_pre);
  encoder_linear(l, kFfnOut, proj, a.ffn_act, gemm_weight(n.ffn_out_b));
  ops::residual_layernorm_forward(out.reshape({N, C}), s.res2, s.ln2_mean, s.ln2_rstd, s.h1, proj,
                                  f32_weight(n.ln2_w), f32_weight(n.ln2_b), config_.layer_norm_eps,
                                  {p_hidden, seed, dropout_offset(site_ffn_output(l)), dropout_base_});
}

void SequenceClassifier::compute_logits(const Batch& batch, bool training) {
  Activations& a = act_;
  const int64_t N = a.batch * a.seq_len;
  const float p_hidden = training ? config_.hidden_dropout : 0.0f;
  const float p_cls = training ? config_.classifier_dropout : 0.0f;
  const uint64_t seed = dropout_seed_;

  ops::embeddings_forward(a.emb_sum, batch.input_ids, batch.token_type_ids, f32_weight(word_emb_),
                          f32_weight(pos_emb_), type_emb_.empty() ? Tensor() : f32_weight(type_emb_));
  ops::layernorm_forward(a.emb_out, a.emb_mean, a.emb_rstd, a.emb_sum.reshape({N, -1}), f32_weight(emb_ln_w_),
                         f32_weight(emb_ln_b_), config_.layer_norm_eps);
  ops::dropout_forward(a.emb_out, a.emb_out, p_hidden, seed, dropout_offset(kSiteEmbeddings), dropout_base_);

  LayerStack<LayerActivations>& stack = a.stack;
  for (int64_t l = 0; l < config_.num_layers; ++l)
    layer_forward(l, stack.input_of(l), stack.slot(l), stack.output(l), training, batch.attention_mask);
  const Tensor x = stack.output(config_.num_layers - 1);

  // Head: pool ([CLS] or the masked mean), the dense head when the pooling has one, dropout, classifier.
  if (config_.pooling == Pooling::Mean) ops::masked_mean_forward(a.cls, x, batch.attention_mask);
  else ops::select_token_forward(a.cls, x, 0);
  Tensor pooled = a.cls;
  if (has_dense_head()) {
    ops::linear_forward(a.head_pre, a.cls, gemm_weight(head_w_), gemm_weight(head_b_));
    if (config_.arch == Architecture::Bert) ops::tanh_forward(a.head_act, a.head_pre);
    else ops::relu_forward(a.head_act, a.head_pre);
    pooled = a.head_act;
  }
  ops::dropout_forward(a.head_drop, pooled, p_cls, seed, dropout_offset(site_attention_probs(config_.num_layers)), dropout_base_);
  ops::linear_forward(a.logits, a.head_drop, gemm_weight(cls_w_), gemm_weight(cls_b_));
}

Batch SequenceClassifier::stage_inputs(const Batch& batch) {
  const int64_t base_value = dropout_base_value();
  if (device_.is_cpu()) {
    *dropout_base_.data<int64_t>() = base_value;
    return batch;
  }
  Activations& a = act_;
  const Tensor base_host = Tensor::view(const_cast<int64_t*>(&base_value), {1}, DType::I64);
  const bool from_host = batch.input_ids.device().is_cpu();
  // A batch already on the GPU is used in place, unless a graph needs it in the fixed buffers.
  Batch fixed = batch;
  std::vector<std::pair<Tensor, Tensor>> copies;
  if (from_host || a.graphed) {
    fixed = Batch();
    copies = {{a.in_ids, batch.input_ids}, {a.in_mask, batch.attention_mask}};
    fixed.input_ids = a.in_ids;
    fixed.attention_mask = a.in_mask;
    if (batch.token_type_ids.defined()) copies.emplace_back(fixed.token_type_ids = a.in_types, batch.token_type_ids);
    if (batch.labels.defined()) copies.emplace_back(fixed.labels = a.in_labels, batch.labels);
  }
  // One upload group: the step's dropout offset (training only: an inference forward has no
  // dropout) and, from the host, the batch. An inference batch already on the GPU uploads nothing.
  if (a.training || from_host) {
    uploader_.begin();
    if (a.training) uploader_.upload(dropout_base_, base_host);
    if (from_host)
      for (const auto& [dst, src] : copies) uploader_.upload(dst, src);
    uploader_.end();
  }
  if (!from_host)
    for (const auto& [dst, src] : copies) dst.copy_from(src);
  return fixed;
}

Tensor SequenceClassifier::forward(const Batch& batch, bool training) {
  check_batch(batch);
  if (training) check_trainable("forward(training=true)");
  if (quant_method_ && training)
    fail("the model is quantized for inference (", ops::quant_method_name(*quant_method_),
         "): training needs the unquantized model (load it again, or clear_quantization())");
  check_quantized_weights();
  const auto tf32 = tf32_scope();
  const int64_t B = batch.input_ids.size(0), T = batch.input_ids.size(1);
  plan_activations(B, T, training);
  prepare_weights_for_forward();
  if (training) ++dropout_step_;
  Activations& a = act_;
  const Batch staged = stage_inputs(batch);
  // Inference on a GPU: recorded per shape (and token types) over the fixed input buffers, which
  // stage_inputs filled.
  if (a.graphed)
    run_forward_graph({B, T, staged.token_type_ids.defined()}, [&] { compute_logits(staged, /*training=*/false); });
  else
    compute_logits(staged, training);

  last_batch_ = staged;
  can_backward_ = training && staged.labels.defined();
  loss_ = 0.0f;
  if (staged.labels.defined()) {
    loss_kernels(staged);
    num_valid_ = config_.regression ? B : ops::count_valid_labels(staged.labels);
    read_mean_loss(a.losses, class_weight_sum_);
  }
  return a.logits;
}

void SequenceClassifier::loss_kernels(const Batch& batch) {
  Activations& a = act_;
  if (config_.regression) {
    ops::mse_forward(a.losses, a.logits.reshape({a.batch}), batch.labels);
    return;
  }
  // Weighted: the batch's Σ w[y] on the device, the denominator of the mean (read back with the
  // losses, divided by in the backward).
  if (class_weights_.defined()) ops::class_weight_sum(class_weight_sum_, batch.labels, class_weights_);
  ops::cross_entropy_forward(a.losses, a.logits, batch.labels, label_smoothing_, class_weights_);
}

void SequenceClassifier::train_step_graphed(const Batch& batch, float loss_scale, const std::function<void()>& tail) {
  check_batch(batch);
  check_trainable("train_step_graphed");
  if (quant_method_)
    fail("the model is quantized for inference (", ops::quant_method_name(*quant_method_),
         "): training needs the unquantized model");
  check_graphed_step(batch, loss_scale);
  const auto tf32 = tf32_scope();
  const int64_t B = batch.input_ids.size(0), T = batch.input_ids.size(1);
  plan_activations(B, T, /*training=*/true);
  allocate_working_weights();
  ++dropout_step_;
  const Batch fixed = stage_inputs(batch);
  // Valid labels counted on the host (the batch is there): no read-back inside the step.
  if (config_.regression) {
    num_valid_ = B;
  } else {
    num_valid_ = 0;
    const int32_t* labels = batch.labels.data<int32_t>();
    for (int64_t i = 0; i < B; ++i) num_valid_ += labels[i] != -100;
  }
  last_batch_ = fixed;
  uint32_t scale_bits = 0;
  std::memcpy(&scale_bits, &loss_scale, sizeof scale_bits);
  run_training_step_graph({B, T, fixed.token_type_ids.defined(), num_valid_, scale_bits}, [&] {
    compute_logits(fixed, /*training=*/true);
    loss_kernels(fixed);
    backward_kernels(loss_scale);
  }, tail);
  read_mean_loss(act_.losses, class_weight_sum_);
}

void SequenceClassifier::layer_backward(int64_t l, const Tensor& x_in, LayerActivations& s, const Tensor& key_mask) {
  Activations& a = act_;
  const ParameterStore& P = params_;
  const LayerNames& n = layer_names_[size_t(l)];
  const int64_t B = a.batch, T = a.seq_len, N = B * T, C = config_.hidden_size;
  const float p_hidden = config_.hidden_dropout;
  const float p_attn = config_.attention_dropout;
  const float p_attn_out = config_.arch == Architecture::Bert ? p_hidden : 0.0f;
  const uint64_t seed = dropout_seed_;
  const Tensor x = x_in.reshape({N, C});

  // d_a holds the gradient of the layer's output on entry, of its input on exit.
  ops::layernorm_backward(a.d_b, P.grad(n.ln2_w), P.grad(n.ln2_b), a.d_a, s.res2, P.value(n.ln2_w), s.ln2_mean,
                          s.ln2_rstd, /*accumulate=*/false, a.ln_workspace);
  ops::dropout_backward(a.d_c, a.d_b, p_hidden, seed, dropout_offset(site_ffn_output(l)), dropout_base_);
  // The activation's output is not kept: recompute it (one elementwise pass) for the weight gradient.
  const bool gelu = config_.activation == Activation::Gelu;
  if (gelu) ops::gelu_forward(a.ffn_act, s.ffn_pre);
  else ops::relu_forward(a.ffn_act, s.ffn_pre);
  ops::linear_backward(a.d_ffn, P.grad(n.ffn_out_w), P.grad(n.ffn_out_b), a.d_c, a.ffn_act, gemm_weight(n.ffn_out_w));
  if (gelu) ops::gelu_backward(a.d_ffn, s.ffn_pre, a.d_ffn);
  else ops::relu_backward(a.d_ffn, s.ffn_pre, a.d_ffn);
  ops::linear_backward(a.d_c, P.grad(n.ffn_in_w), P.grad(n.ffn_in_b), a.d_ffn, s.h1, gemm_weight(n.ffn_in_w));
  ops::add_inplace(a.d_b, a.d_c);  // residual: d h1 = d res2 + d(ffn input)
  ops::layernorm_backward(a.d_a, P.grad(n.ln1_w), P.grad(n.ln1_b), a.d_b, s.res1, P.value(n.ln1_w), s.ln1_mean,
                          s.ln1_rstd, /*accumulate=*/false, a.ln_workspace);
  ops::dropout_backward(a.d_b, a.d_a, p_attn_out, seed, dropout_offset(site_attention_output(l)), dropout_base_);
  ops::linear_backward(a.d_c, P.grad(n.attn_out_w), P.grad(n.attn_out_b), a.d_b, s.context.reshape({N, C}),
                       gemm_weight(n.attn_out_w));
  if (a.attention == AttentionKernel::Fused)
    ops::attention_backward_fused(a.d_qkv, a.d_scratch, a.d_c.reshape({B, T, C}), s.qkv, s.context, s.lse, key_mask,
                                  config_.num_heads, /*causal=*/false, p_attn, seed,
                                  dropout_offset(site_attention_probs(l)), dropout_base_);
  else
    ops::attention_backward(a.d_qkv, a.d_scratch, a.d_c.reshape({B, T, C}), s.qkv, s.probs, key_mask,
                            config_.num_heads, /*causal=*/false, p_attn, seed, dropout_offset(site_attention_probs(l)), dropout_base_);
  ops::linear_backward(a.d_b, P.span(n.qkv_first_w, n.qkv_last_w, {3 * C, C}, true),
                       P.span(n.qkv_first_b, n.qkv_last_b, {3 * C}, true), a.d_qkv.reshape({N, 3 * C}), x,
                       gemm_weight_span(n.qkv_first_w, n.qkv_last_w, {3 * C, C}));
  ops::add_inplace(a.d_a, a.d_b);  // residual: d x = d res1 + d(attention input)
}

void SequenceClassifier::backward_kernels(float loss_scale) {
  Activations& a = act_;
  const ParameterStore& P = params_;
  const Batch& batch = last_batch_;
  const int64_t B = a.batch, T = a.seq_len, N = B * T, C = config_.hidden_size;
  const float p_hidden = config_.hidden_dropout;
  const float p_cls = config_.classifier_dropout;
  const uint64_t seed = dropout_seed_;
  const float scale = num_valid_ ? loss_scale / float(num_valid_) : 0.0f;

  // Head. Weighted: the mean's denominator is the batch's Σ w[y], which the loss kernels left on the
  // device (a graph replays with each batch's own); with no valid label every row's gradient is 0.
  if (config_.regression) ops::mse_backward(a.d_logits.reshape({B}), a.logits.reshape({B}), batch.labels, scale);
  else if (class_weights_.defined())
    ops::cross_entropy_backward(a.d_logits, a.logits, batch.labels, label_smoothing_, loss_scale, class_weights_,
                                class_weight_sum_);
  else ops::cross_entropy_backward(a.d_logits, a.logits, batch.labels, label_smoothing_, scale);
  ops::linear_backward(a.d_head, P.grad(cls_w_), P.grad(cls_b_), a.d_logits, a.head_drop, gemm_weight(cls_w_));
  ops::dropout_backward(a.d_cls, a.d_head, p_cls, seed, dropout_offset(site_attention_probs(config_.num_layers)), dropout_base_);
  if (has_dense_head()) {
    if (config_.arch == Architecture::Bert) ops::tanh_backward(a.d_head, a.head_act, a.d_cls);
    else ops::relu_backward(a.d_head, a.head_pre, a.d_cls);
    ops::linear_backward(a.d_cls, P.grad(head_w_), P.grad(head_b_), a.d_head, a.cls, gemm_weight(head_w_));
  }
  // d_cls: gradient of the pooled vector.
  if (config_.pooling == Pooling::Mean) {
    ops::masked_mean_backward(a.d_a.reshape({B, T, C}), a.d_cls, batch.attention_mask);  // overwrites
  } else {
    a.d_a.fill_zero();
    ops::select_token_backward(a.d_a.reshape({B, T, C}), a.d_cls, 0);
  }

  // Layers, last to first, one checkpoint segment at a time (an earlier one recomputed first).
  LayerStack<LayerActivations>& stack = a.stack;
  stack.backward(
      [&](int64_t l) {
        layer_forward(l, stack.input_of(l), stack.slot(l), stack.output(l), /*training=*/true, batch.attention_mask);
      },
      [&](int64_t l) {
        layer_backward(l, stack.input_of(l), stack.slot(l), batch.attention_mask);
        gradients_final_from(layer_offsets_[size_t(l)]);
      });

  // Embeddings.
  ops::dropout_backward(a.d_b, a.d_a, p_hidden, seed, dropout_offset(kSiteEmbeddings), dropout_base_);
  ops::layernorm_backward(a.d_c, P.grad(emb_ln_w_), P.grad(emb_ln_b_), a.d_b, a.emb_sum.reshape({N, C}),
                          P.value(emb_ln_w_), a.emb_mean, a.emb_rstd, /*accumulate=*/false, a.ln_workspace);
  ops::embeddings_backward(P.grad(word_emb_), P.grad(pos_emb_), type_emb_.empty() ? Tensor() : P.grad(type_emb_),
                           a.d_c.reshape({B, T, C}), batch.input_ids, batch.token_type_ids);
  gradients_final_from(0);
}

}  // namespace ww::models
