#pragma once
// ModelRuntime: what every model family shares, so that a model's own files hold only what makes it
// that model: its parameters (names, shapes, initialisation, loading and saving), layer_forward and
// layer_backward over its own struct of kept activations, and its head and loss, the way llm.c's
// train_gpt2.c reads. The runtime owns the rest:
//  - the f32 master weights and gradients (ParameterStore) and the ExecutionOptions (execution.h),
//    including TF32, which reaches the GEMMs through tf32_scope() around the work a model launches;
//  - working weights: the compute-dtype copy a training model's GEMMs read, re-cast when the
//    masters moved, and an inference-only model's InferenceWeights (what its forward reads, built
//    once, after which the masters are released);
//  - the activation arena, sized per step shape (a key the model chooses) and grown only;
//  - CUDA graphs: inference forwards and whole training steps, recorded once per key and replayed;
//  - checkpoint segments (LayerStack below): where each layer's activations live and the backward
//    that recomputes a segment just before it needs it;
//  - the dropout stream (seed, step, the device-side offset base), the host-to-device uploader and
//    the loss bookkeeping of the last step.
//
// Why a base class rather than a member the models forward to: the runtime is most of a model's
// public surface (set_execution, parameters(), backward(), prepare_for_inference(), ...). As a
// member, every family would re-declare those forwarding methods, the copies this class removes.
// As a base, a family implements only the hooks below and calls the helpers.
//
// What a family provides: forward() and train_step_graphed() (their order of kernels is the
// model), backward_kernels(), weight_uses(), and an Activations struct that it lays out in the
// arena. Nothing here depends on tokens, attention or layer norms: a convolutional network keys its
// activations by [batch, height, width, training], keeps a LayerStack of its blocks (each slot's
// `out` is the block's output; the boundaries it allocates may differ in shape per stage) and runs
// its convolutions and batch norms through ops:: like the transformers run theirs.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "wattwise/core/arena.h"
#include "wattwise/core/tensor.h"
#include "wattwise/core/upload.h"
#include "wattwise/models/execution.h"
#include "wattwise/models/model.h"
#include "wattwise/models/parameters.h"
#include "wattwise/ops/graph.h"
#include "wattwise/ops/linear.h"

namespace ww::models {

// Where each layer's activations live during a step, under activation checkpointing by segments
// (Checkpointing, execution.h). Training without checkpointing keeps one Slot per layer; with it,
// one Slot per layer of a segment plus the input of every segment after the first (the
// boundaries); inference reuses one Slot for every layer (a layer reads its input before it writes
// its output). Slot is the model's struct of what one layer keeps for its backward; its `out` is
// where the layer writes its output when that is not a boundary.
template <typename Slot>
struct LayerStack {
  int64_t layers = 0;   // layers in the stack
  int64_t segment = 0;  // layers per checkpoint segment (`layers` without checkpointing)
  bool training = false;
  Tensor input;                    // layer 0's input
  std::vector<Slot> slots;
  std::vector<Tensor> boundaries;  // [s]: input of segment s >= 1 (empty without checkpointing)

  // Sizes slots and boundaries for a step; the model then lays out every slot and boundaries[1..]
  // in its arena.
  void plan(int64_t num_layers, bool train, const Checkpointing& checkpointing) {
    layers = num_layers;
    training = train;
    segment = train ? checkpointing.segment_layers(num_layers) : num_layers;
    const bool recompute = train && segment < num_layers;
    slots.assign(size_t(!train ? 1 : recompute ? segment : num_layers), Slot{});
    boundaries.assign(recompute ? size_t((num_layers + segment - 1) / segment) : 0, Tensor());
  }
  Slot& slot(int64_t l) { return training ? slots[size_t(l % int64_t(slots.size()))] : slots[0]; }
  const Slot& slot(int64_t l) const { return const_cast<LayerStack*>(this)->slot(l); }
  // Layer l's output: the next segment's saved input at a segment's end, its slot's `out` otherwise.
  Tensor output(int64_t l) {
    const bool segment_end = (l + 1) % segment == 0;
    if (!boundaries.empty() && segment_end && l + 1 < layers) return boundaries[size_t((l + 1) / segment)];
    return slot(l).out;
  }
  Tensor input_of(int64_t l) { return l == 0 ? input : output(l - 1); }
  // Backward through the layers, last to first, one segment at a time: the last segment's
  // activations are still in place; an earlier one's are recomputed from its saved input first
  // (recompute(l): layer l's training forward, the same dropout masks), then backward(l) runs.
  template <typename Recompute, typename Backward>
  void backward(Recompute&& recompute, Backward&& backward) {
    const int64_t segments = (layers + segment - 1) / segment;
    for (int64_t seg = segments - 1; seg >= 0; --seg) {
      const int64_t first = seg * segment, last = std::min(layers, first + segment) - 1;
      if (seg != segments - 1)
        for (int64_t l = first; l <= last; ++l) recompute(l);
      for (int64_t l = last; l >= first; --l) backward(l);
    }
  }
};

// The few words in which the families' errors differ (kept as users have seen them).
struct RuntimeWording {
  const char* train_it = "train it";  // "...; build it for training to <train_it>"
  const char* inference_purpose = "ModelPurpose::Inference";  // how a user builds an inference-only model
};

class ModelRuntime : public TrainableModel {
 public:
  // ---- TrainableModel: the same for every family (forward and train_step_graphed are each one's)
  float loss() const override { return loss_; }
  // Gradients of the last forward's mean loss times `loss_scale` (fp16 loss scaling), accumulated
  // into parameters().flat_grads() (f32).
  void backward(float loss_scale = 1.0f) override;
  bool can_graph_training(const Batch& batch) const override;
  ParameterStore& parameters() override { return params_; }
  const ParameterStore& parameters() const { return params_; }
  void zero_grad() override { params_.zero_grad(); }
  // Seeds dropout; each training forward advances the stream so masks differ step to step.
  void set_dropout_seed(uint64_t seed) override { dropout_seed_ = seed; }
  uint64_t dropout_step() const override { return dropout_step_; }
  void set_dropout_step(uint64_t step) override { dropout_step_ = step; }
  // Label smoothing of the cross-entropy loss (a trainer option; Hugging Face models have none).
  void set_label_smoothing(float epsilon) override { label_smoothing_ = epsilon; }
  Device device() const override { return device_; }
  // Each layer's first offset, last layer first, then 0 (the embeddings); see model.h.
  std::vector<int64_t> gradient_boundaries() const override;
  std::vector<std::pair<int64_t, int64_t>> layer_gradient_ranges() const override;
  void drop_recordings() override { drop_graphs(); }

  // Precision (and TF32), attention kernel, checkpointing and CUDA graphs; checked against the
  // device (16-bit, TF32 and fused attention need a GPU). Takes effect at the next forward. An
  // inference-only model that released its masters keeps the compute dtype it was prepared for
  // (another one is an error).
  void set_execution(const ExecutionOptions& options);
  const ExecutionOptions& execution() const { return exec_; }
  // The attention kernel the model runs on its device (Auto resolved).
  AttentionKernel attention_kernel() const { return resolve_attention_kernel(exec_.attention, device_); }

  ModelPurpose purpose() const { return purpose_; }
  bool inference_only() const { return purpose_ == ModelPurpose::Inference; }
  // Inference-only models: puts on the device the weights the forward reads under the current
  // execution options (weight_uses()), then releases the f32 masters. A forward does it when
  // needed; call it to release them earlier. An error for a model built for training.
  void prepare_for_inference();
  bool prepared_for_inference() const { return params_.values_released(); }
  // Device bytes of what an inference-only model's forward reads (0 before it is prepared).
  size_t inference_weight_bytes() const { return inference_.bytes(); }
  // Bytes of the activation arena (every tensor the forward keeps for backward, plus scratch).
  size_t activation_bytes() const { return arena_.capacity(); }
  // Rewinds the dropout stream (tests replay the exact masks of a step).
  void set_dropout_step_for_testing(uint64_t step) { dropout_step_ = step; }

 protected:
  // Data parallel: where each layer's parameters begin in the flat buffers (a family records them
  // as it registers its layers, between its embeddings and its head), and the call a family makes
  // after each layer's backward (and with 0 after the embeddings'): gradients_final_from(offset).
  std::vector<int64_t> layer_offsets_;
  int64_t layers_end_ = 0;  // where the last layer's parameters end
  void gradients_final_from(int64_t offset) const {
    if (hook_) hook_(offset);
  }
  ModelRuntime(Device device, ModelPurpose purpose, RuntimeWording wording = {});

  // ---- what each family provides
  // How an inference-only forward reads each parameter (ParameterStore order): in f32, in the
  // compute dtype, both, or not at all.
  virtual std::vector<WeightUse> weight_uses() const = 0;
  // The backward pass of the last training forward (backward() has checked that it may run).
  virtual void backward_kernels(float loss_scale) = 0;
  // A family whose forward reads quantized copies of some weights (they are not in weight_uses())
  // says so, and checks before its inference weights are built that those copies are current.
  virtual bool reads_quantized_weights() const { return false; }
  virtual void check_quantized_weights() const {}

  // ---- parameters
  // After registering them: the f32 masters on the device (in host memory for an inference-only
  // model, whose device only ever gets what its forward reads) and the dropout offset base.
  void allocate_parameters();
  // An error for an inference-only model, naming `what` was asked of it.
  void check_trainable(const char* what) const;
  // Saving: the folder exists and store_dtype is f32, f16 or bf16 (else an error naming it).
  static void prepare_save(const std::filesystem::path& dir, DType store_dtype);
  // config.json's "dtype" for the weights saved as store_dtype ("float32", "float16", "bfloat16").
  static const char* torch_dtype_name(DType store_dtype);
  // What save() writes for parameter `index`: a view of the f32 masters (copied to the host once,
  // into `host`, which must outlive the view), or for an inference-only model that released them,
  // the copy its forward reads (an error naming the parameter when that cannot be stored so).
  Tensor value_to_save(size_t index, DType store_dtype, Tensor& host) const;

  // ---- weights the kernels read
  // The weight a GEMM reads: the compute-dtype working copy of a parameter (the f32 master itself
  // when computing in f32; an inference-only model's copy once built). The span form is
  // consecutive parameters as one tensor (a packed query/key/value projection).
  Tensor gemm_weight(const std::string& name) const;
  Tensor gemm_weight_span(const std::string& first, const std::string& last, const Shape& shape) const;
  // A parameter the kernels read in f32 (embedding tables, LayerNorm): the master, or an
  // inference-only model's f32 copy.
  Tensor f32_weight(const std::string& name) const;
  // A training model's working copy: re-cast when the masters moved since (16-bit compute only).
  void refresh_working_weights();
  // Allocates the working copy before a CUDA graph records (the step itself refreshes its contents).
  void allocate_working_weights();
  // The weights of the next forward: the working copy (training models) or the inference weights
  // (inference-only models, which also release their masters).
  void prepare_weights_for_forward();
  // Builds the inference weights when they are missing or stale (masters still held); an error once
  // the masters are gone and the forward would need other ones.
  void ensure_inference_weights();

  // ---- activations, planned per step shape
  using StepKey = std::vector<int64_t>;
  bool activations_planned(const StepKey& key) const { return arena_.capacity() && key == planned_; }
  // The arena for a step of `key` needing `bytes`: grown (never shrunk: a smaller later step reuses
  // it, so a steady loop allocates nothing), reset, and `key` recorded as planned.
  Arena& activation_arena(const StepKey& key, size_t bytes);
  void replan_activations() { planned_.clear(); }  // the next step plans again
  void release_activations();                       // frees the arena too

  // ---- CUDA graphs (recordings hold the addresses of weights and activations: dropped when those move)
  void drop_graphs();          // every recording
  void drop_forward_graphs();  // the inference forwards' only
  // An inference forward of `key`: replayed when recorded, else run directly (which also lets
  // cuBLASLt and lazy module loading set up outside a recording) and recorded for the next ones.
  void run_forward_graph(const StepKey& key, const std::function<void()>& forward);
  // A training micro-step of `key` (the model's forward, loss and backward kernels, then the
  // trainer's `tail`) in the same way, with the 16-bit working copy re-cast from the masters inside
  // the step (the optimizer moves them in place). Afterwards the working copy is current and there
  // is nothing left to backward.
  void run_training_step_graph(const StepKey& key, const std::function<void()>& step_kernels,
                               const std::function<void()>& tail);
  // train_step_graphed's checks of the batch and the loss scale.
  void check_graphed_step(const Batch& batch, float loss_scale) const;

  // ---- a step's bookkeeping
  // The TF32 choice of exec_ for the GEMMs launched while the returned scope lives: every entry
  // point that launches work opens one.
  ops::Tf32Scope tf32_scope() const { return ops::Tf32Scope(exec_.allow_tf32); }
  // A dropout site's offset; the step's share, dropout_step_ << 16, lives in dropout_base_ (on the
  // model's device), which every dropout and attention op adds when it runs: a CUDA graph recorded
  // at one step then draws the next step's masks. Effective offset = (step << 16) | site.
  static uint64_t dropout_offset(int site) { return uint64_t(site); }
  int64_t dropout_base_value() const { return int64_t(dropout_step_ << 16); }
  // All of a batch on the model's device, or all on the CPU (a GPU model uploads it).
  void check_batch_devices(const Batch& batch) const;
  // loss_ = Σ losses / num_valid_ (reads them back: waits for the stream); with a divisor (f32 [1]
  // on the device, e.g. a weighted loss's Σ w[y]), Σ losses / divisor instead (0 without a valid row).
  void read_mean_loss(const Tensor& losses, const Tensor& divisor = Tensor());

  Device device_;
  ModelPurpose purpose_ = ModelPurpose::Training;
  ParameterStore params_;
  ExecutionOptions exec_;
  HostToDevice uploader_;
  Tensor dropout_base_;  // i64 [1] on the device: dropout_step_ << 16 (see dropout_offset)
  uint64_t dropout_seed_ = 0, dropout_step_ = 0;
  Batch last_batch_;      // the last forward's batch as the kernels saw it
  bool can_backward_ = false;
  float loss_ = 0.0f;
  float label_smoothing_ = 0.0f;
  int64_t num_valid_ = 0;  // scored examples (or tokens) of the last batch

 private:
  RuntimeWording wording_;
  Tensor working_;  // compute-dtype copy of the flat parameters (16-bit only; training models)
  uint64_t working_version_ = 0;
  // What an inference-only model's forward reads, built for this compute dtype and quantization.
  InferenceWeights inference_;
  DType inference_dtype_ = DType::F32;
  bool inference_quantized_ = false;
  uint64_t inference_version_ = 0;  // params_.version() they were made from (rebuilt while the masters exist)
  Arena arena_;
  StepKey planned_;  // the step shape the arena is laid out for (empty: none)
  std::map<StepKey, ops::CapturedWork> forward_graphs_, step_graphs_;
};

}  // namespace ww::models
