#pragma once
// All parameters of a model live in one contiguous buffer and all their gradients in another
// (llm.c's layout): the optimizer walks two flat arrays, checkpoints are views, and a parameter's
// gradient sits at the same offset as the parameter. Parameters are registered by their Hugging
// Face names, in an order the model chooses (query/key/value adjacent, so they also form one packed
// [3C, C] projection).
//
// An inference-only model (ModelPurpose::Inference, model.h) uses the same store for its f32
// masters, but never allocates gradients, and releases the masters once InferenceWeights (below)
// hold what its forward reads.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"

namespace ww::models {

struct Parameter {
  std::string name;  // Hugging Face tensor name, e.g. "bert.encoder.layer.0.attention.self.query.weight"
  Shape shape;
  bool weight_decay = true;  // false for biases and LayerNorm weights
  int64_t offset = 0;        // in elements, into the flat buffers
  Tensor value;  // a view into the flat value buffer (the gradient: ParameterStore::grad)
};

// A parameter's normally distributed initial values (std · N(0, 1)) into w: Philox stream (seed,
// init namespace + its offset), independent of every other parameter's, so each fill runs on all
// cores and a seed gives the same model on any machine and thread count.
inline void fill_parameter_normal(float* w, const Parameter& p, float std, uint64_t seed) {
  fill_normal(w, shape_numel(p.shape), std, seed, 0x494e495400000000ull + uint64_t(p.offset));
}

class ParameterStore {
 public:
  // Registration phase.
  void add(const std::string& name, const Shape& shape, bool weight_decay);
  // Allocates the value buffer (zeroed) on `device`; no add() after this. The gradient buffer is
  // allocated (zeroed) at its first use, so a model that only runs inference never holds one.
  void allocate(Device device);

  bool allocated() const { return values_.defined() || released_; }
  const Tensor& value(const std::string& name) const;  // throws naming the parameter
  const Tensor& grad(const std::string& name) const;  // allocates the gradients on first use
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  size_t index_of(const std::string& name) const;  // registration position; throws naming it
  // A view over consecutive parameters [first, last] (inclusive, in registration order) as one
  // tensor of `shape`: used for the packed query/key/value projection.
  Tensor span(const std::string& first, const std::string& last, const Shape& shape, bool grad) const;

  std::vector<Parameter>& all() { return params_; }
  const std::vector<Parameter>& all() const { return params_; }
  const Tensor& flat_values() const;  // throws once the values were released
  // The whole gradient buffer (an error while the gradients are kept in slots, below).
  const Tensor& flat_grads() const;
  bool has_grads() const { return grads_.defined() || resident_.defined(); }
  int64_t numel() const { return total_; }
  void zero_grad() const;

  // ZeRO stage 2: no whole gradient buffer. The gradients of the layers' elements (`layers`: each
  // layer's [begin, end), ascending and adjacent, written only by that layer's backward) live in
  // `slots` buffers of the largest layer's size, reused in turn (layer l in slot l % slots), the
  // other parameters' (embeddings, head) in one resident buffer; so a rank holds resident + slots ×
  // layer gradients instead of all of them, and each layer's must be summed away and its slot
  // zeroed before the layer `slots` below it runs backward. Replaces any gradients held (zeros).
  void keep_gradients_in_slots(const std::vector<std::pair<int64_t, int64_t>>& layers, int slots);
  bool gradients_in_slots() const { return !slot_layers_.empty(); }
  // The gradients of the elements [begin, end) of the flat layout, as one view: within one layer,
  // or within one resident range ([0, first layer) or [last layer's end, numel)) when in slots;
  // anywhere otherwise.
  Tensor gradient_range(int64_t begin, int64_t end) const;
  // Layer l's slot (in slots), the whole buffer.
  const Tensor& gradient_slot(size_t layer) const;
  // Gradient elements held (numel(), or resident + slots in slots; 0 before any gradient exists).
  int64_t gradient_elements() const;
  // Counts writes to the values (optimizer steps, loads, initialisation): a model keeping a 16-bit
  // working copy re-casts it when the version moved.
  void mark_updated() { ++version_; }
  uint64_t version() const { return version_; }

  // Inference only: from now on asking for gradients (grad, flat_grads, span(..., grad=true), an
  // optimizer) is an error that says why, so none is ever allocated. Call before any gradient exists.
  void set_inference_only();
  bool inference_only() const { return inference_only_; }
  // Frees the f32 values (an inference-only model, once InferenceWeights hold what its forward
  // reads). Names, shapes and offsets stay; value(), span() and flat_values() become errors naming
  // the reason.
  void release_values();
  bool values_released() const { return released_; }

 private:
  std::vector<Parameter> params_;
  std::map<std::string, size_t> index_;
  int64_t total_ = 0;
  uint64_t version_ = 1;
  bool inference_only_ = false;
  bool released_ = false;
  void ensure_grads() const;
  void check_values(const std::string& what) const;

  Tensor values_;
  // Lazily allocated (see allocate()); mutable because reading a gradient is what first needs it.
  mutable Tensor grads_;
  mutable std::vector<Tensor> grad_views_;
  // In slots (keep_gradients_in_slots): the layers' ranges, the resident buffer ([0, first layer)
  // then [last layer's end, numel)) and the slots.
  std::vector<std::pair<int64_t, int64_t>> slot_layers_;
  int64_t slot_count_ = 0;
  mutable Tensor resident_;
  mutable std::vector<Tensor> slots_;
  // Where element `offset` of the flat layout lives while in slots: the buffer and the index there.
  std::pair<const Tensor*, int64_t> slot_address(int64_t offset) const;
};

// How an inference-only model's forward reads one parameter: in f32 (what the embedding and
// LayerNorm kernels always take, and every weight when computing in f32), in the 16-bit compute
// dtype (GEMM weights and biases), both (GPT-2's token embedding is also its tied head), or not at
// all (a weight replaced by its quantized copy, a layer dropped by keep_first_layers).
struct WeightUse {
  bool f32 = false;
  bool working = false;
};

// The weights an inference-only model's forward reads, on the model's device, made once from the
// f32 masters: one f32 buffer and one compute-dtype buffer holding only the parameters that are
// read in that form. Each parameter keeps its offset in the masters' flat buffer modulo 128
// elements, so its address has the same alignment as in a training model's buffers: cuBLASLt picks
// its GEMM algorithm by operand alignment, and the same choice is what makes the logits
// bit-identical to a training model's with the same weights and precision.
class InferenceWeights {
 public:
  // Builds from `masters` (values in host memory, as an inference-only model keeps them until
  // then); use[i] is for masters.all()[i]. Working copies are rounded to nearest even (ops::cast,
  // as a training model's 16-bit working copy). With every parameter read in f32 and the masters
  // already on `device`, the f32 buffer is the masters' buffer itself (no copy: they ARE the
  // working weights then).
  void build(const ParameterStore& masters, const std::vector<WeightUse>& use, DType working_dtype, Device device);
  void clear();
  bool built() const { return built_; }
  DType working_dtype() const { return working_dtype_; }
  bool has_f32(size_t index) const { return index < f32_views_.size() && f32_views_[index].defined(); }
  bool has_working(size_t index) const { return index < working_views_.size() && working_views_[index].defined(); }
  // The view of parameter `index` (registration order); an error naming it when not held so.
  const Tensor& f32(size_t index, const ParameterStore& masters) const;
  const Tensor& working(size_t index, const ParameterStore& masters) const;
  // Consecutive parameters [first, last] as one tensor of `shape` (the packed q/k/v projection).
  Tensor f32_span(size_t first, size_t last, const Shape& shape, const ParameterStore& masters) const;
  Tensor working_span(size_t first, size_t last, const Shape& shape, const ParameterStore& masters) const;
  // Device bytes of the two buffers (the f32 one counted even when it is the masters' own).
  size_t bytes() const;
  // What saving writes for parameter `index` once the masters are released: its f32 copy, or its
  // working copy when `store_dtype` is the working dtype. Otherwise an error naming the parameter
  // and why: held only quantized (or not at all), or held in 16-bit and asked for wider values.
  Tensor tensor_to_save(size_t index, const ParameterStore& masters, DType store_dtype) const;

 private:
  Tensor span_of(const std::vector<Tensor>& views, size_t first, size_t last, const Shape& shape,
                 const ParameterStore& masters, const char* form) const;
  bool built_ = false;
  DType working_dtype_ = DType::F32;
  Tensor f32_buffer_, working_buffer_;
  std::vector<Tensor> f32_views_, working_views_;  // per parameter; undefined where not held
};

}  // namespace ww::models
