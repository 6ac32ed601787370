#pragma once
// All parameters of a model live in one contiguous buffer and all their gradients in another
// (llm.c's layout): the optimizer walks two flat arrays, checkpoints are views, and a parameter's
// gradient sits at the same offset as the parameter. Parameters are registered by their Hugging
// Face names, in an order the model chooses (query/key/value adjacent, so they also form one packed
// [3C, C] projection).
#include <map>
#include <string>
#include <vector>

#include "wattwise/core/tensor.h"

namespace ww::models {

struct Parameter {
  std::string name;  // Hugging Face tensor name, e.g. "bert.encoder.layer.0.attention.self.query.weight"
  Shape shape;
  bool weight_decay = true;  // false for biases and LayerNorm weights
  int64_t offset = 0;        // in elements, into the flat buffers
  Tensor value;  // a view into the flat value buffer (the gradient: ParameterStore::grad)
};

class ParameterStore {
 public:
  // Registration phase.
  void add(const std::string& name, const Shape& shape, bool weight_decay);
  // Allocates the value buffer (zeroed) on `device`; no add() after this. The gradient buffer is
  // allocated (zeroed) at its first use, so a model that only runs inference never holds one.
  void allocate(Device device);

  bool allocated() const { return values_.defined(); }
  const Tensor& value(const std::string& name) const;  // throws naming the parameter
  const Tensor& grad(const std::string& name) const;  // allocates the gradients on first use
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // A view over consecutive parameters [first, last] (inclusive, in registration order) as one
  // tensor of `shape`: used for the packed query/key/value projection.
  Tensor span(const std::string& first, const std::string& last, const Shape& shape, bool grad) const;

  std::vector<Parameter>& all() { return params_; }
  const std::vector<Parameter>& all() const { return params_; }
  const Tensor& flat_values() const { return values_; }
  const Tensor& flat_grads() const {
    ensure_grads();
    return grads_;
  }
  bool has_grads() const { return grads_.defined(); }
  int64_t numel() const { return total_; }
  void zero_grad() const {
    if (grads_.defined()) grads_.fill_zero();
  }
  // Counts writes to the values (optimizer steps, loads, initialisation): a model keeping a 16-bit
  // working copy re-casts it when the version moved.
  void mark_updated() { ++version_; }
  uint64_t version() const { return version_; }

 private:
  std::vector<Parameter> params_;
  std::map<std::string, size_t> index_;
  int64_t total_ = 0;
  uint64_t version_ = 1;
  void ensure_grads() const;

  Tensor values_;
  // Lazily allocated (see allocate()); mutable because reading a gradient is what first needs it.
  mutable Tensor grads_;
  mutable std::vector<Tensor> grad_views_;
};

}  // namespace ww::models
