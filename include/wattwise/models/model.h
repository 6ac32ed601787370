#pragma once
// What the trainer needs from a model, so one training loop serves the sequence classifiers
// (BERT, DistilBERT) and the causal language model (GPT-2). A model owns its parameters (f32
// masters and f32 gradients in one ParameterStore), its activations and its loss.
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "wattwise/core/tensor.h"
#include "wattwise/models/parameters.h"

namespace ww::models {

// What a model is built for.
// - Training: f32 master weights on the model's device, f32 gradients from the first backward, a
//   16-bit working copy when computing in 16-bit.
// - Inference: never a gradient buffer (training is an error saying so). On a GPU the f32 masters
//   wait in host memory while the model is loaded (and quantized); its first forward, or
//   prepare_for_inference(), puts on the device only what the forward reads (16-bit GEMM weights,
//   quantized linears, f32 embedding and LayerNorm tables; with f32 compute all weights in f32)
//   and releases the masters. Peak device memory is then about what PyTorch's model.half() holds.
enum class ModelPurpose { Training, Inference };

// One batch of already tokenized, padded examples (all i32 [B,T] except labels), on the model's
// device or on the CPU (a GPU model then uploads it without making the host wait).
struct Batch {
  Tensor input_ids;
  Tensor attention_mask;   // 1 real token, 0 padding
  Tensor token_type_ids;   // optional (undefined → all 0)
  // Optional. Sequence classification: i32 [B] (class) or f32 [B] (regression). Causal language
  // modelling: i32 [B,T] aligned with input_ids (Hugging Face's convention: the model shifts them,
  // position t predicts labels[t+1]); -100 marks a position that is not scored.
  Tensor labels;
};

// Rows [begin, end) of every tensor of `batch` (views, no copy): one rank's part of a micro-batch.
Batch slice_rows(const Batch& batch, int64_t begin, int64_t end);
// How many terms the batch's mean loss averages: its examples (sequence classification), or its
// scored positions (language modelling: labels[:, 1:] other than -100).
int64_t loss_terms(const Batch& batch);

class TrainableModel {
 public:
  virtual ~TrainableModel() = default;
  // Output of the forward pass (logits; a view valid until the next forward). With labels, the
  // mean loss is available from loss() afterwards.
  virtual Tensor forward(const Batch& batch, bool training) = 0;
  virtual float loss() const = 0;
  // Gradients of the last forward's mean loss times `loss_scale`, accumulated into
  // parameters().flat_grads() (f32).
  virtual void backward(float loss_scale) = 0;
  // Whole micro-step (forward, loss, backward, then `tail`) as a replayed CUDA graph; only called
  // when can_graph_training(batch) is true.
  virtual bool can_graph_training(const Batch& batch) const = 0;
  virtual void train_step_graphed(const Batch& batch, float loss_scale,
                                  const std::function<void()>& tail) = 0;
  virtual ParameterStore& parameters() = 0;
  virtual void zero_grad() = 0;
  virtual void set_dropout_seed(uint64_t seed) = 0;
  // The dropout stream's position: training forwards since the seed was set (each draws its own
  // masks). A training checkpoint saves it and a resumed run restores it, so the masks go on as
  // they would have.
  virtual uint64_t dropout_step() const = 0;
  virtual void set_dropout_step(uint64_t step) = 0;
  virtual void set_label_smoothing(float epsilon) = 0;
  virtual Device device() const = 0;
  // Data parallel (DDP's bucketed all-reduce): a backward pass finishes the gradients from the end
  // of the flat buffer down to its start, a part at a time (the head, each layer from the last, the
  // embeddings). gradient_boundaries() lists where the parts begin, in the order backward finishes
  // them (descending, ending with 0); while the hook is set, backward calls it with each boundary
  // as soon as every gradient from there to the end is final, so their sums can start while it
  // goes on. The default: one part, reported once backward is done.
  virtual std::vector<int64_t> gradient_boundaries() const { return {0}; }
  // The layers' element ranges [begin, end) in the flat buffers, ascending: each layer's
  // gradients are written by its own backward only, once per backward pass, and reported final
  // (the hook, with its begin) right after it, so ZeRO 2 can keep them in reused slots. Empty
  // when the model has no such layers.
  virtual std::vector<std::pair<int64_t, int64_t>> layer_gradient_ranges() const { return {}; }
  virtual void set_gradients_final_hook(std::function<void(int64_t boundary)> hook) { hook_ = std::move(hook); }
  // Forgets every recorded step (CUDA graphs): what they captured changed (the trainer's gradient
  // sums). The next step of each shape records again.
  virtual void drop_recordings() {}

 protected:
  std::function<void(int64_t)> hook_;
};

}  // namespace ww::models
