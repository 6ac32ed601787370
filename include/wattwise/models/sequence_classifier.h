#pragma once
// BertForSequenceClassification and DistilBertForSequenceClassification with explicit forward and
// backward passes. Both are post-LayerNorm encoders with the same layer shape; they differ in tensor
// names, token-type embeddings and the head (BERT: tanh pooler; DistilBERT: pre_classifier + ReLU),
// so one class implements both and the model code is shared by every device: it only calls ops::.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <tuple>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "wattwise/core/arena.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "wattwise/core/upload.h"
#include "wattwise/models/config.h"
#include "wattwise/models/model.h"
#include "wattwise/models/parameters.h"
#include "wattwise/ops/graph.h"
#include "wattwise/ops/quantized.h"

namespace ww::models {


// How the encoder runs, independent of the checkpoint: precision of the activations, attention
// kernel and activation checkpointing. Master weights and their gradients are always f32.
enum class AttentionKernel { Auto, Fused, Reference };  // Auto: fused on a GPU, reference on the CPU

// Activation checkpointing by segments of consecutive layers: only each segment's input is kept
// during the forward pass; backward recomputes a segment's layers (the same dropout masks, from
// the counter-based RNG) just before it needs them. every = segments of 1 layer, every-k = k
// layers, sqrt = ceil(√L) layers.
struct Checkpointing {
  enum class Mode { None, Every, EveryK, Sqrt } mode = Mode::None;
  int64_t k = 1;  // layers per segment for EveryK
  // Layers per segment for a model of `num_layers` layers (num_layers when off).
  int64_t segment_layers(int64_t num_layers) const;
  std::string str() const;  // "none", "every", "every-3", "sqrt"
};
// "none", "every", "every-K" (K >= 1) or "sqrt"; an error names the value otherwise.
Checkpointing parse_checkpointing(const std::string& text);
AttentionKernel parse_attention_kernel(const std::string& text);  // "auto", "fused", "reference"
// The kernel a model runs: Auto is fused on a GPU and the reference path on the CPU.
AttentionKernel resolve_attention_kernel(AttentionKernel requested, Device device);
const char* attention_kernel_name(AttentionKernel kernel);

struct ExecutionOptions {
  DType compute_dtype = DType::F32;  // F32, F16 or BF16 activations (16-bit: CUDA only)
  AttentionKernel attention = AttentionKernel::Auto;
  Checkpointing checkpointing;
  // Inference on a GPU records the forward pass once per batch shape as a CUDA graph and replays it.
  bool cuda_graphs = true;
};

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

class SequenceClassifier : public TrainableModel {
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
  float loss() const override { return loss_; }
  // Gradients of the last forward's mean loss times `loss_scale` (fp16 loss scaling), accumulated
  // into parameters().flat_grads() (f32).
  void backward(float loss_scale = 1.0f) override;
  // One training micro-step for a GPU model as a CUDA graph: forward (training), loss, backward and
  // `tail` (the trainer passes its optimizer's kernels), recorded at the first batch of each shape
  // (batch, length, token types, valid labels, loss scale) and replayed after that, so a step costs
  // one launch. The batch must be on the CPU with labels (it is uploaded into fixed buffers); the
  // loss is read back afterwards (loss()). Gradients accumulate as in backward().
  void train_step_graphed(const Batch& batch, float loss_scale,
                          const std::function<void()>& tail) override;
  bool can_graph_training(const Batch& batch) const override;
  // Precision, attention kernel and checkpointing; checked against the device (16-bit and fused
  // attention need a GPU). Takes effect at the next forward. An inference-only model that released
  // its masters keeps the compute dtype it was prepared for (another one is an error).
  void set_execution(const ExecutionOptions& options);
  const ExecutionOptions& execution() const { return exec_; }
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
  // The attention kernel the model runs on its device (Auto resolved).
  AttentionKernel attention_kernel() const;
  void zero_grad() override { params_.zero_grad(); }

  ModelPurpose purpose() const { return purpose_; }
  bool inference_only() const { return purpose_ == ModelPurpose::Inference; }
  // Inference-only models: puts on the device the weights the forward reads under the current
  // execution options and quantization, then releases the f32 masters. forward() does it when
  // needed; call it to release them earlier. An error for a model built for training.
  void prepare_for_inference();
  bool prepared_for_inference() const { return params_.values_released(); }
  // Device bytes of what an inference-only model's forward reads (0 before it is prepared).
  size_t inference_weight_bytes() const { return inference_.bytes(); }

  const ModelConfig& config() const { return config_; }
  ParameterStore& parameters() override { return params_; }
  const ParameterStore& parameters() const { return params_; }
  Device device() const override { return device_; }
  // Seeds dropout; each training forward advances the stream so masks differ step to step.
  void set_dropout_seed(uint64_t seed) override { dropout_seed_ = seed; }
  // Dropout overrides (hidden, attention, classifier), as the trainer's options; 0 turns one off.
  void set_dropout(float hidden, float attention, float classifier);
  // Label names written as id2label when the model is saved (size must equal num_labels).
  void set_label_names(const std::vector<std::string>& names);
  // Label smoothing of the cross-entropy loss (a trainer option; Hugging Face models have none).
  void set_label_smoothing(float epsilon) override { label_smoothing_ = epsilon; }
  // Rewinds the dropout stream (tests replay the exact masks of a step).
  void set_dropout_step_for_testing(uint64_t step) { dropout_step_ = step; }
  // What layer l's attention kept in the last training forward (qkv, context, the fused kernel's
  // lse; undefined under the reference kernel) and that batch's key mask, so a test can replay
  // the layer's attention backward on a real model's activations. Fails without a training forward.
  struct AttentionTensors {
    Tensor qkv, context, lse, key_mask;
  };
  AttentionTensors attention_tensors_for_testing(int64_t layer) const;
  // Bytes of the activation arena (every tensor the forward keeps for backward, plus scratch).
  size_t activation_bytes() const { return arena_.capacity(); }
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
    int64_t segment = 0;  // layers per checkpoint segment (num_layers: no checkpointing)
    Tensor emb_sum, emb_mean, emb_rstd, emb_out;
    // Training without checkpointing: one per layer; with: one per layer of a segment; inference: 1.
    std::vector<LayerActivations> layers;
    std::vector<Tensor> boundaries;  // input of checkpoint segment s (s >= 1)
    bool graphed = false;             // inference through CUDA graphs over fixed inputs:
    Tensor in_ids, in_mask, in_types, in_labels;
    Tensor proj, ffn_act;             // per-layer scratch (not kept: recomputed where needed)
    Tensor cls, head_pre, head_act, head_drop, logits, losses;
    Tensor quant_workspace;           // scratch of the quantized GEMMs (inference, quantized only)
    // Backward scratch.
    Tensor d_a, d_b, d_c, d_ffn, d_qkv, d_scratch, d_cls, d_head, d_logits, ln_workspace;
  };

  void register_parameters();
  // The weight a GEMM reads: the compute-dtype working copy of a parameter (the f32 master itself
  // when computing in f32). `span` forms are the packed query/key/value projection.
  Tensor gemm_weight(const std::string& name) const;
  Tensor gemm_weight_span(const std::string& first, const std::string& last, const Shape& shape) const;
  void refresh_working_weights();
  // A parameter the kernels read in f32 (embedding tables, LayerNorm): the master, or an
  // inference-only model's f32 copy.
  Tensor f32_weight(const std::string& name) const;
  // The weights of the next forward: the working copy (training models) or the inference weights
  // (inference-only models, which also release their masters unless calibrating).
  void prepare_weights_for_forward();
  void ensure_inference_weights();
  std::vector<WeightUse> inference_uses() const;
  void check_trainable(const char* what) const;
  // The encoder's linear layers, by position in a layer (index into quantized_ / observers_).
  enum EncoderLinear { kQkv = 0, kAttentionOut = 1, kFfnIn = 2, kFfnOut = 3, kLinearsPerLayer = 4 };
  // out = inp · wᵀ + b for encoder linear `which` of layer l (w: its dense weight): quantized after
  // quantize_for_inference, observed (then plain) while calibrating, plain otherwise.
  void encoder_linear(int64_t l, EncoderLinear which, const Tensor& out, const Tensor& inp, const Tensor& b);
  Tensor encoder_linear_weight(int64_t l, EncoderLinear which) const;
  void layer_forward(int64_t l, const Tensor& x, LayerActivations& s, const Tensor& out, bool training,
                     const Tensor& key_mask);
  void compute_logits(const Batch& batch, bool training);
  void loss_kernels(const Batch& batch);
  void read_loss();  // loss_ from the per-example losses (waits for the stream)
  void backward_kernels(float loss_scale);
  void compute_logits_graphed(const Batch& fixed);
  // A GPU model's view of a batch: host tensors uploaded (asynchronously) into the fixed input
  // buffers; device tensors used in place unless a CUDA graph needs them in the fixed buffers.
  Batch stage_inputs(const Batch& batch);
  void layer_backward(int64_t l, const Tensor& x, LayerActivations& s, const Tensor& key_mask);
  // Where layer l keeps its activations, and where its output goes.
  LayerActivations& layer_slot(int64_t l);
  Tensor layer_output(int64_t l);
  Tensor layer_input(int64_t l);
  // Hugging Face's initialisation of one parameter into w (host memory); `normal(w, n, std)` draws
  // the normally distributed values.
  using NormalFill = std::function<void(float* w, int64_t n, float std)>;
  void init_parameter(const Parameter& p, float* w, const NormalFill& normal) const;
  void plan_activations(int64_t batch, int64_t seq_len, bool training);
  void allocate_activations(Arena& arena, Activations& a, int64_t batch, int64_t seq_len, bool training) const;
  void check_batch(const Batch& batch) const;
  uint64_t dropout_offset(int site) const;
  // The dense head between the pooled vector and the classifier (BERT's pooler, DistilBERT's
  // pre_classifier) exists only with cls-pooler pooling.
  bool has_dense_head() const { return config_.pooling == Pooling::ClsPooler; }

  ModelConfig config_;
  Device device_;
  ModelPurpose purpose_ = ModelPurpose::Training;
  ParameterStore params_;
  std::vector<LayerNames> layer_names_;
  std::set<std::string> dropped_parameters_;  // weights of layers removed by keep_first_layers
  std::string word_emb_, pos_emb_, type_emb_, emb_ln_w_, emb_ln_b_, head_w_, head_b_, cls_w_, cls_b_;
  ExecutionOptions exec_;
  // Quantized encoder linears (layer l's at l·kLinearsPerLayer + which); empty when not quantized.
  std::optional<ops::QuantMethod> quant_method_;
  std::vector<ops::QuantizedLinear> quantized_;
  uint64_t quantized_version_ = 0;          // params_.version() they were made from
  std::vector<ops::AbsMaxObserver> observers_;  // non-empty while calibrating
  Tensor working_;  // compute-dtype copy of the flat parameters (16-bit only; training models)
  uint64_t working_version_ = 0;
  // What an inference-only model's forward reads, built for this compute dtype and quantization.
  InferenceWeights inference_;
  DType inference_dtype_ = DType::F32;
  bool inference_quantized_ = false;
  uint64_t inference_version_ = 0;  // params_.version() they were made from (rebuilt while the masters exist)
  Arena arena_;
  Activations act_;
  using GraphKey = std::tuple<int64_t, int64_t, bool>;  // batch, seq_len, token types
  std::map<GraphKey, ops::CapturedWork> graphs_;
  // batch, seq_len, token types, valid labels, loss scale bits
  using TrainGraphKey = std::tuple<int64_t, int64_t, bool, int64_t, uint32_t>;
  std::map<TrainGraphKey, ops::CapturedWork> train_graphs_;
  HostToDevice uploader_;
  Tensor dropout_base_;  // i64 [1] on the device: dropout_step_ << 16 (see dropout_offset)
  Batch last_batch_;
  bool can_backward_ = false;
  float loss_ = 0.0f;
  float label_smoothing_ = 0.0f;
  int64_t num_valid_ = 0;
  uint64_t dropout_seed_ = 0, dropout_step_ = 0;
};

}  // namespace ww::models
