#pragma once
// BertForSequenceClassification and DistilBertForSequenceClassification with explicit forward and
// backward passes. Both are post-LayerNorm encoders with the same layer shape; they differ in tensor
// names, token-type embeddings and the head (BERT: tanh pooler; DistilBERT: pre_classifier + ReLU),
// so one class implements both and the model code is shared by every device: it only calls ops::.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "wattwise/core/arena.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/models/config.h"
#include "wattwise/models/parameters.h"

namespace ww::models {

// One batch of already tokenized, padded examples (all i32 [B,T] except labels).
struct Batch {
  Tensor input_ids;
  Tensor attention_mask;   // 1 real token, 0 padding
  Tensor token_type_ids;   // optional (undefined → all 0)
  Tensor labels;           // optional: i32 [B] (classification) or f32 [B] (regression)
};

struct LoadOptions {
  // A checkpoint without the classification head (a bare encoder) gets a freshly initialised one
  // instead of an error (seeded by head_seed).
  bool allow_new_head = false;
  uint64_t head_seed = 42;
};

class SequenceClassifier {
 public:
  SequenceClassifier(const ModelConfig& config, Device device);

  // Reads config.json + model.safetensors (or a sharded index) from a Hugging Face model folder.
  static SequenceClassifier from_pretrained(const std::filesystem::path& dir, Device device,
                                            const LoadOptions& options = {});
  // Hugging Face's initialisation: N(0, initializer_range) for linear and embedding weights, zero
  // biases, unit LayerNorm, the padding embedding row zeroed.
  void init_weights(uint64_t seed);
  // Writes config.json and model.safetensors into `dir` (created if needed), HF names; floating
  // weights stored as `store_dtype` (f32, f16 or bf16).
  void save(const std::filesystem::path& dir, DType store_dtype = DType::F32) const;

  // Logits [B, num_labels] (a view valid until the next forward). With labels, also the mean loss.
  Tensor forward(const Batch& batch, bool training);
  float loss() const { return loss_; }
  // Gradients of the last forward's mean loss, accumulated into parameters().flat_grads().
  void backward();
  void zero_grad() { params_.zero_grad(); }

  const ModelConfig& config() const { return config_; }
  ParameterStore& parameters() { return params_; }
  const ParameterStore& parameters() const { return params_; }
  Device device() const { return device_; }
  // Seeds dropout; each training forward advances the stream so masks differ step to step.
  void set_dropout_seed(uint64_t seed) { dropout_seed_ = seed; }
  // Dropout overrides (hidden, attention, classifier), as the trainer's options; 0 turns one off.
  void set_dropout(float hidden, float attention, float classifier);
  // Label names written as id2label when the model is saved (size must equal num_labels).
  void set_label_names(const std::vector<std::string>& names);
  // Label smoothing of the cross-entropy loss (a trainer option; Hugging Face models have none).
  void set_label_smoothing(float epsilon) { label_smoothing_ = epsilon; }
  // Rewinds the dropout stream (tests replay the exact masks of a step).
  void set_dropout_step_for_testing(uint64_t step) { dropout_step_ = step; }
  size_t activation_bytes() const { return arena_.capacity(); }
  // Prefix of every encoder tensor name ("bert." or "distilbert.").
  std::string prefix() const;

 private:
  struct LayerNames {
    std::string qkv_first_w, qkv_last_w, qkv_first_b, qkv_last_b;
    std::string attn_out_w, attn_out_b, ln1_w, ln1_b, ffn_in_w, ffn_in_b, ffn_out_w, ffn_out_b,
        ln2_w, ln2_b;
  };
  struct LayerActivations {
    Tensor qkv, probs, context, attn_proj, res1, ln1_mean, ln1_rstd, h1, ffn_pre, ffn_act, ffn_out,
        res2, ln2_mean, ln2_rstd, out;
  };
  struct Activations {
    int64_t batch = 0, seq_len = 0;
    bool training = false;
    Tensor emb_sum, emb_mean, emb_rstd, emb_out;
    std::vector<LayerActivations> layers;
    Tensor cls, head_pre, head_act, head_drop, logits, losses;
    // Backward scratch.
    Tensor d_a, d_b, d_c, d_ffn, d_qkv, d_probs, d_cls, d_head, d_logits;
  };

  void register_parameters();
  // Hugging Face's initialisation of one parameter into w (host memory).
  void init_parameter(const Parameter& p, Rng& rng, float* w) const;
  void plan_activations(int64_t batch, int64_t seq_len, bool training);
  void allocate_activations(Arena& arena, int64_t batch, int64_t seq_len, bool training);
  void check_batch(const Batch& batch) const;
  uint64_t dropout_offset(int site) const;
  bool has_pooler() const { return config_.arch == Architecture::Bert; }

  ModelConfig config_;
  Device device_;
  ParameterStore params_;
  std::vector<LayerNames> layer_names_;
  std::string word_emb_, pos_emb_, type_emb_, emb_ln_w_, emb_ln_b_, head_w_, head_b_, cls_w_, cls_b_;
  Arena arena_;
  Activations act_;
  Batch last_batch_;
  bool can_backward_ = false;
  float loss_ = 0.0f;
  float label_smoothing_ = 0.0f;
  int64_t num_valid_ = 0;
  uint64_t dropout_seed_ = 0, dropout_step_ = 0;
};

}  // namespace ww::models
