#pragma once
// BertForSequenceClassification and DistilBertForSequenceClassification with explicit forward and
// backward passes. Both are post-LayerNorm encoders with the same layer shape; they differ in tensor
// names, token-type embeddings and the head (BERT: tanh pooler; DistilBERT: pre_classifier + ReLU),
// so one class implements both and the model code is shared by every device: it only calls ops::.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "wattwise/core/tensor.h"
#include "wattwise/models/config.h"
#include "wattwise/models/execution.h"
#include "wattwise/models/model.h"
#include "wattwise/models/parameters.h"
#include "wattwise/models/runtime.h"
#include "wattwise/ops/quantized.h"

namespace ww::models {

struct LoadOptions {
  // A checkpoint without the classification head (a bare encoder) gets a freshly initialised one
  // instead of an error (seeded by head_seed).
  bool allow_new_head = false;
  uint64_t head_seed = 42;
  // Pooling of the classifier (overrides config.json's "wattwise_pooling"; unset: keep it). A
  // checkpoint's pooler / pre_classifier tensors are ignored when the pooling does not use them;
  // a pooling that needs them where the checkpoint has none initialises them (allow_new_head).
  std::optional<Pooling> pooling;
  // Inference: the loaded model never allocates gradients and releases its f32 masters at its
  // first forward (see ModelPurpose in model.h).
  ModelPurpose purpose = ModelPurpose::Training;
  // NaN or Inf in a weight is refused (naming the tensor) unless this is set: then it loads with
  // a warning (the CLI's --allow-nonfinite).
  bool allow_nonfinite = false;
};

// Post-training quantization of the encoder's linear layers (query/key/value, attention output,
// feed-forward in and out) for inference; see include/wattwise/ops/quantized.h for the methods.
// The embeddings, LayerNorms, attention, pooler and classifier head stay in the compute dtype.
struct QuantizationOptions {
  ops::QuantMethod method = ops::QuantMethod::Int8Weight;
  // Forward passes over these batches calibrate the static input scales of Int8 and Fp8: the
  // max |x| of each quantized layer's inputs over all of them (max-abs calibration). Int8Weight
  // needs none (and ignores them).
  std::vector<Batch> calibration;
};

// The model on the shared runtime (runtime.h: execution options, working weights, activation
// arena, CUDA graphs, checkpoint segments, inference preparation); this class holds what makes it
// BERT or DistilBERT: the parameters, layer_forward / layer_backward, the pooling head and the loss,
// and the post-training quantization of its encoder linears.
class SequenceClassifier : public ModelRuntime {
 public:
  SequenceClassifier(const ModelConfig& config, Device device, ModelPurpose purpose = ModelPurpose::Training);

  // Reads config.json + model.safetensors (or a sharded index) from a Hugging Face model folder.
  static SequenceClassifier from_pretrained(const std::filesystem::path& dir, Device device,
                                            const LoadOptions& options = {});
  // Hugging Face's initialisation: N(0, initializer_range) for linear and embedding weights, zero
  // biases, unit LayerNorm, the padding embedding row zeroed.
  void init_weights(uint64_t seed);
  // Writes config.json and model.safetensors into `dir` (created if needed), HF names; floating
  // weights stored as `store_dtype` (f32, f16 or bf16). A model whose pooling is cls or mean is
  // saved with "wattwise_pooling" in config.json and without pooler tensors: transformers'
  // *ForSequenceClassification does not compute the same function from it (a note says so).
  // An inference-only model that released its f32 masters saves the copies its forward reads: the
  // same file a training model with those weights writes at store_dtype = its compute dtype (f16 or
  // bf16; f32 when it computes in f32). Any other store_dtype, or a quantized model, is an error
  // naming the parameter and the reason (widening 16-bit weights would pretend a precision they
  // lost; quantized weights have no Hugging Face form).
  void save(const std::filesystem::path& dir, DType store_dtype = DType::F32) const;

  // Logits [B, num_labels] (a view valid until the next forward). With labels, also the mean loss.
  Tensor forward(const Batch& batch, bool training) override;
  // One training micro-step for a GPU model as a CUDA graph: forward (training), loss, backward and
  // `tail` (the trainer passes its optimizer's kernels), recorded at the first batch of each shape
  // (batch, length, token types, valid labels, loss scale) and replayed after that, so a step costs
  // one launch. The batch must be on the CPU with labels (it is uploaded into fixed buffers); the
  // loss is read back afterwards (loss()). Gradients accumulate as in backward().
  void train_step_graphed(const Batch& batch, float loss_scale,
                          const std::function<void()>& tail) override;
  // Quantizes the encoder's linear layers for inference (calibrating first where the method needs
  // it). The f32 master weights stay as they are (saving the model writes them unchanged); the
  // quantized copies are made from them now, so a later weight change is an error at the next
  // forward. Training a quantized model is an error. Calling it again replaces the quantization.
  // An inference-only model must be quantized before its first forward (it then drops the masters
  // of the quantized weights with the rest).
  void quantize_for_inference(const QuantizationOptions& options);
  // Back to the unquantized linears (an error once an inference-only model released its masters).
  void clear_quantization();
  std::optional<ops::QuantMethod> quantization() const { return quant_method_; }

  const ModelConfig& config() const { return config_; }
  // Dropout overrides (hidden, attention, classifier), as the trainer's options; 0 turns one off.
  void set_dropout(float hidden, float attention, float classifier);
  // Label names written as id2label when the model is saved (size must equal num_labels).
  void set_label_names(const std::vector<std::string>& names);
  // Class weights of the cross-entropy loss, one per label (finite, > 0), as torch's
  // CrossEntropyLoss(weight=w): the loss of a batch becomes Σ_n loss[n] / Σ_n w[y_n] with
  // loss[n] = (1−ε)·w[y]·(−log p[y]) + (ε/K)·Σ_k w[k]·(−log p[k]) (ops/cross_entropy.h), in
  // training and in the loss a forward with labels reports. Empty: none (every class 1). An error
  // for a regression model or a count other than num_labels. Takes effect at the next forward.
  void set_class_weights(const std::vector<float>& weights);
  const std::vector<float>& class_weights() const { return class_weights_host_; }
  // What layer l's attention kept in the last training forward (qkv, context, the fused kernel's
  // lse; undefined under the reference kernel) and that batch's key mask, so a test can replay
  // the layer's attention backward on a real model's activations. Fails without a training forward.
  struct AttentionTensors {
    Tensor qkv, context, lse, key_mask;
  };
  AttentionTensors attention_tensors_for_testing(int64_t layer) const;
  // What the activation arena needs for a batch of this shape under the current execution options.
  size_t planned_activation_bytes(int64_t batch, int64_t seq_len, bool training) const;
  // Prefix of every encoder tensor name ("bert." or "distilbert.").
  std::string prefix() const;
  // Layer reduction without retraining: only the first k encoder layers run from now on
  // (config().num_layers becomes k; 1 <= k <= the current count, else an error naming both). The
  // dropped layers' weights stay allocated but are never read, trained or saved.
  void keep_first_layers(int64_t k);

 private:
  struct LayerNames {
    std::string qkv_first_w, qkv_last_w, qkv_first_b, qkv_last_b;
    std::string attn_out_w, attn_out_b, ln1_w, ln1_b, ffn_in_w, ffn_in_b, ffn_out_w, ffn_out_b,
        ln2_w, ln2_b;
  };
  // What one layer keeps for its backward pass. probs (reference attention) or lse (fused) is
  // set, not both.
  struct LayerActivations {
    Tensor qkv, probs, lse, context, res1, ln1_mean, ln1_rstd, h1, ffn_pre, res2, ln2_mean,
        ln2_rstd, out;
  };
  struct Activations {
    int64_t batch = 0, seq_len = 0;
    bool training = false;
    DType dtype = DType::F32;
    AttentionKernel attention = AttentionKernel::Reference;
    Tensor emb_sum, emb_mean, emb_rstd, emb_out;
    // The encoder layers' activations (stack.input is emb_out) and checkpoint segments.
    LayerStack<LayerActivations> stack;
    bool graphed = false;             // inference through CUDA graphs over fixed inputs:
    Tensor in_ids, in_mask, in_types, in_labels;
    Tensor proj, ffn_act;             // per-layer scratch (not kept: recomputed where needed)
    Tensor cls, head_pre, head_act, head_drop, logits, losses;
    Tensor quant_workspace;           // scratch of the quantized GEMMs (inference, quantized only)
    // Backward scratch.
    Tensor d_a, d_b, d_c, d_ffn, d_qkv, d_scratch, d_cls, d_head, d_logits, ln_workspace;
  };

  void register_parameters();
  std::vector<WeightUse> weight_uses() const override;
  bool reads_quantized_weights() const override { return !quantized_.empty(); }
  void check_quantized_weights() const override;
  // The runtime's, except that calibration forwards (before quantizing) keep the masters.
  void prepare_weights_for_forward();
  // The encoder's linear layers, by position in a layer (index into quantized_ / observers_).
  enum EncoderLinear { kQkv = 0, kAttentionOut = 1, kFfnIn = 2, kFfnOut = 3, kLinearsPerLayer = 4 };
  // out = inp · wᵀ + b for encoder linear `which` of layer l (w: its dense weight): quantized after
  // quantize_for_inference, observed (then plain) while calibrating, plain otherwise.
  void encoder_linear(int64_t l, EncoderLinear which, const Tensor& out, const Tensor& inp, const Tensor& b);
  Tensor encoder_linear_weight(int64_t l, EncoderLinear which) const;
  void layer_forward(int64_t l, const Tensor& x, LayerActivations& s, const Tensor& out, bool training,
                     const Tensor& key_mask);
  void layer_backward(int64_t l, const Tensor& x, LayerActivations& s, const Tensor& key_mask);
  void compute_logits(const Batch& batch, bool training);
  void loss_kernels(const Batch& batch);
  void backward_kernels(float loss_scale) override;
  // A GPU model's view of a batch: host tensors uploaded (asynchronously) into the fixed input
  // buffers; device tensors used in place unless a CUDA graph needs them in the fixed buffers.
  Batch stage_inputs(const Batch& batch);
  // Hugging Face's initialisation of one parameter into w (host memory); `normal(w, n, std)` draws
  // the normally distributed values.
  using NormalFill = std::function<void(float* w, int64_t n, float std)>;
  void init_parameter(const Parameter& p, float* w, const NormalFill& normal) const;
  void plan_activations(int64_t batch, int64_t seq_len, bool training);
  void allocate_activations(Arena& arena, Activations& a, int64_t batch, int64_t seq_len, bool training) const;
  void check_batch(const Batch& batch) const;
  // The dense head between the pooled vector and the classifier (BERT's pooler, DistilBERT's
  // pre_classifier) exists only with cls-pooler pooling.
  bool has_dense_head() const { return config_.pooling == Pooling::ClsPooler; }

  ModelConfig config_;
  std::vector<LayerNames> layer_names_;
  std::set<std::string> dropped_parameters_;  // weights of layers removed by keep_first_layers
  std::string word_emb_, pos_emb_, type_emb_, emb_ln_w_, emb_ln_b_, head_w_, head_b_, cls_w_, cls_b_;
  // Quantized encoder linears (layer l's at l·kLinearsPerLayer + which); empty when not quantized.
  std::optional<ops::QuantMethod> quant_method_;
  std::vector<ops::QuantizedLinear> quantized_;
  uint64_t quantized_version_ = 0;          // params_.version() they were made from
  std::vector<ops::AbsMaxObserver> observers_;  // non-empty while calibrating
  Activations act_;
  // Class weights (set_class_weights): on the host, and f32 [num_labels] on the device with the
  // batch's Σ w[y] beside it (f32 [1], written by the loss kernels, read by the backward: the same
  // addresses for every step, so a recorded CUDA graph stays valid). Undefined without weights.
  std::vector<float> class_weights_host_;
  Tensor class_weights_, class_weight_sum_;
};

}  // namespace ww::models
