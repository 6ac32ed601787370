#include "wattwise/models/parameters.h"

#include <algorithm>
#include <cstring>

#include "wattwise/ops/elementwise.h"

namespace ww::models {

void ParameterStore::add(const std::string& name, const Shape& shape, bool weight_decay) {
  WW_CHECK(!allocated(), "parameter ", name, " registered after allocation");
  WW_CHECK(!index_.count(name), "parameter ", name, " registered twice");
  Parameter p;
  p.name = name;
  p.shape = shape;
  p.weight_decay = weight_decay;
  p.offset = total_;
  total_ += shape_numel(shape);
  index_[name] = params_.size();
  params_.push_back(std::move(p));
}

void ParameterStore::allocate(Device device) {
  values_ = Tensor::zeros({total_}, DType::F32, device);
  for (auto& p : params_) p.value = Tensor::view(values_.data<float>() + p.offset, p.shape, DType::F32, device);
}

void ParameterStore::set_inference_only() {
  WW_CHECK(!grads_.defined(), "set_inference_only() after gradients were allocated");
  inference_only_ = true;
}

void ParameterStore::release_values() {
  values_ = Tensor();
  for (auto& p : params_) p.value = Tensor();
  released_ = true;
}

void ParameterStore::check_values(const std::string& what) const {
  if (released_)
    fail(what, ": the f32 master weights of this inference-only model were released once it was prepared for "
               "inference (its forward reads its own 16-bit, quantized or f32 copies); load the model again to "
               "change or read the masters");
}

const Tensor& ParameterStore::flat_values() const {
  check_values("the flat parameter buffer");
  return values_;
}

void ParameterStore::ensure_grads() const {
  if (has_grads()) return;
  if (inference_only_)
    fail("gradients requested from a model built for inference only (ModelPurpose::Inference): it holds no "
         "gradient buffer and cannot be trained; build the model for training to fine-tune it");
  WW_CHECK(allocated() && !released_, "gradients requested before the parameters were allocated");
  const Device device = values_.device();
  grad_views_.clear();
  if (!gradients_in_slots()) {
    grads_ = Tensor::zeros({total_}, DType::F32, device);
    for (const auto& p : params_)
      grad_views_.push_back(Tensor::view(grads_.data<float>() + p.offset, p.shape, DType::F32, device));
    return;
  }
  const int64_t first = slot_layers_.front().first, last = slot_layers_.back().second;
  int64_t largest = 0;
  for (const auto& [b, e] : slot_layers_) largest = std::max(largest, e - b);
  resident_ = Tensor::zeros({first + (total_ - last)}, DType::F32, device);
  slots_.clear();
  for (int64_t i = 0; i < slot_count_; ++i) slots_.push_back(Tensor::zeros({largest}, DType::F32, device));
  for (const auto& p : params_) {
    const auto [buffer, index] = slot_address(p.offset);
    grad_views_.push_back(Tensor::view(buffer->data<float>() + index, p.shape, DType::F32, device));
  }
}

std::pair<const Tensor*, int64_t> ParameterStore::slot_address(int64_t offset) const {
  const int64_t first = slot_layers_.front().first, last = slot_layers_.back().second;
  if (offset < first) return {&resident_, offset};
  if (offset >= last) return {&resident_, first + (offset - last)};
  auto it = std::upper_bound(slot_layers_.begin(), slot_layers_.end(), offset,
                             [](int64_t o, const std::pair<int64_t, int64_t>& layer) { return o < layer.first; });
  const size_t layer = size_t(it - slot_layers_.begin()) - 1;
  return {&slots_[layer % size_t(slot_count_)], offset - slot_layers_[layer].first};
}

const Tensor& ParameterStore::flat_grads() const {
  if (gradients_in_slots())
    fail("the whole gradient buffer was asked for, but the gradients are kept per layer in reused slots (ZeRO "
         "stage 2): read them by range");
  ensure_grads();
  return grads_;
}

void ParameterStore::zero_grad() const {
  if (grads_.defined()) grads_.fill_zero();
  if (resident_.defined()) resident_.fill_zero();
  for (const Tensor& slot : slots_) slot.fill_zero();
}

void ParameterStore::keep_gradients_in_slots(const std::vector<std::pair<int64_t, int64_t>>& layers, int slots) {
  WW_CHECK(!layers.empty() && slots >= 2, "gradient slots: ", layers.size(), " layers in ", slots, " slots");
  for (size_t i = 0; i < layers.size(); ++i) {
    WW_CHECK(layers[i].first < layers[i].second && layers[i].second <= total_ &&
                 (i == 0 || layers[i].first == layers[i - 1].second),
             "gradient slots: layer ", i, " range ", layers[i].first, "..", layers[i].second);
  }
  // A layer's parameters must lie inside it (no parameter across a boundary).
  for (const auto& p : params_) {
    const int64_t end = p.offset + shape_numel(p.shape);
    for (const auto& [b, e] : layers)
      WW_CHECK(end <= b || p.offset >= e || (p.offset >= b && end <= e), "parameter ", p.name, " straddles a layer");
  }
  grads_ = Tensor();
  resident_ = Tensor();
  slots_.clear();
  grad_views_.clear();
  slot_layers_ = layers;
  slot_count_ = slots;
}

Tensor ParameterStore::gradient_range(int64_t begin, int64_t end) const {
  WW_CHECK(0 <= begin && begin <= end && end <= total_, "gradient range ", begin, "..", end, " of ", total_);
  ensure_grads();
  if (!gradients_in_slots()) return grads_.slice(begin, end);
  if (begin == end) return resident_.slice(0, 0);
  const auto [buffer, index] = slot_address(begin);
  const auto [last_buffer, last_index] = slot_address(end - 1);
  WW_CHECK(buffer == last_buffer && last_index - index == end - 1 - begin, "gradient range ", begin, "..", end,
           " crosses a layer's slot");
  return buffer->slice(index, index + (end - begin));
}

const Tensor& ParameterStore::gradient_slot(size_t layer) const {
  WW_CHECK(gradients_in_slots() && layer < slot_layers_.size(), "gradient slot of layer ", layer);
  ensure_grads();
  return slots_[layer % size_t(slot_count_)];
}

int64_t ParameterStore::gradient_elements() const {
  if (grads_.defined()) return total_;
  int64_t held = resident_.defined() ? resident_.numel() : 0;
  for (const Tensor& slot : slots_) held += slot.numel();
  return held;
}

size_t ParameterStore::index_of(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("model has no parameter named '", name, "'");
  return it->second;
}

const Tensor& ParameterStore::value(const std::string& name) const {
  const size_t i = index_of(name);
  check_values("parameter '" + name + "'");
  return params_[i].value;
}

const Tensor& ParameterStore::grad(const std::string& name) const {
  const size_t i = index_of(name);
  ensure_grads();
  return grad_views_[i];
}

Tensor ParameterStore::span(const std::string& first, const std::string& last, const Shape& shape,
                            bool grad) const {
  auto a = index_.find(first), b = index_.find(last);
  WW_CHECK(a != index_.end() && b != index_.end() && a->second <= b->second, "span ", first, "..", last);
  const Parameter& p = params_[a->second];
  const Parameter& q = params_[b->second];
  int64_t n = q.offset + shape_numel(q.shape) - p.offset;
  WW_CHECK(n == shape_numel(shape), "span ", first, "..", last, " holds ", n, " elements, not ",
           shape_str(shape));
  if (grad) return gradient_range(p.offset, p.offset + n).reshape(shape);
  check_values("parameters '" + first + "'..'" + last + "'");
  return Tensor::view(values_.data<float>() + p.offset, shape, DType::F32, values_.device());
}

// ---------------------------------------------------------------------------------------------
// InferenceWeights

namespace {
// Elements of padding that keep a parameter's offset congruent to its master offset (see the
// header): 128 elements are 256 bytes of 16-bit values (the largest alignment cuBLASLt is told
// about) and 512 bytes of f32.
constexpr int64_t kAlignElements = 128;

int64_t congruent_offset(int64_t cursor, int64_t master_offset) {
  const int64_t want = master_offset % kAlignElements;
  const int64_t have = cursor % kAlignElements;
  return cursor + (want - have + kAlignElements) % kAlignElements;
}
}  // namespace

void InferenceWeights::clear() {
  built_ = false;
  f32_buffer_ = working_buffer_ = Tensor();
  f32_views_.clear();
  working_views_.clear();
}

void InferenceWeights::build(const ParameterStore& masters, const std::vector<WeightUse>& use, DType working_dtype,
                             Device device) {
  const std::vector<Parameter>& params = masters.all();
  WW_CHECK(use.size() == params.size(), "InferenceWeights::build: ", use.size(), " uses for ", params.size(),
           " parameters");
  if (working_dtype != DType::F16 && working_dtype != DType::BF16 && working_dtype != DType::F32)
    fail("inference weights: compute dtype ", dtype_name(working_dtype), " (expected f32, f16 or bf16)");
  const Tensor& flat = masters.flat_values();  // an error once the masters are released
  clear();
  working_dtype_ = working_dtype;
  f32_views_.assign(params.size(), Tensor());
  working_views_.assign(params.size(), Tensor());

  bool all_f32 = true;
  for (const WeightUse& u : use) all_f32 = all_f32 && u.f32 && !u.working;
  if (all_f32 && flat.device() == device) {
    // The masters are the working weights: share their buffer.
    f32_buffer_ = flat;
    for (size_t i = 0; i < params.size(); ++i)
      f32_views_[i] = Tensor::view(f32_buffer_.data<float>() + params[i].offset, params[i].shape, DType::F32, device);
    built_ = true;
    return;
  }

  // Offsets in the two compact buffers.
  std::vector<int64_t> f32_at(params.size(), -1), working_at(params.size(), -1);
  int64_t f32_total = 0, working_total = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t n = shape_numel(params[i].shape);
    if (use[i].f32) {
      f32_at[i] = congruent_offset(f32_total, params[i].offset);
      f32_total = f32_at[i] + n;
    }
    if (use[i].working) {
      working_at[i] = congruent_offset(working_total, params[i].offset);
      working_total = working_at[i] + n;
    }
  }
  // Filled in host memory, then uploaded: the device never holds the f32 masters and a copy at once.
  const Tensor host_flat = flat.device().is_cpu() ? flat : flat.to(Device::cpu());
  Tensor f32_host = f32_total ? Tensor::zeros({f32_total}, DType::F32) : Tensor();
  Tensor working_host = working_total ? Tensor::zeros({working_total}, working_dtype) : Tensor();
  const size_t wsize = dtype_size(working_dtype);
  for (size_t i = 0; i < params.size(); ++i) {
    const Parameter& p = params[i];
    const int64_t n = shape_numel(p.shape);
    const float* src = host_flat.data<float>() + p.offset;
    if (f32_at[i] >= 0) std::memcpy(f32_host.data<float>() + f32_at[i], src, size_t(n) * sizeof(float));
    if (working_at[i] >= 0) {
      char* dst = static_cast<char*>(working_host.raw()) + size_t(working_at[i]) * wsize;
      ops::cast(Tensor::view(dst, {n}, working_dtype), Tensor::view(const_cast<float*>(src), {n}, DType::F32));
    }
  }
  if (f32_total) f32_buffer_ = device.is_cpu() ? f32_host : f32_host.to(device);
  if (working_total) working_buffer_ = device.is_cpu() ? working_host : working_host.to(device);
  for (size_t i = 0; i < params.size(); ++i) {
    const Parameter& p = params[i];
    if (f32_at[i] >= 0)
      f32_views_[i] = Tensor::view(f32_buffer_.data<float>() + f32_at[i], p.shape, DType::F32, device);
    if (working_at[i] >= 0)
      working_views_[i] = Tensor::view(static_cast<char*>(working_buffer_.raw()) + size_t(working_at[i]) * wsize,
                                       p.shape, working_dtype, device);
  }
  built_ = true;
}

const Tensor& InferenceWeights::f32(size_t index, const ParameterStore& masters) const {
  if (!has_f32(index))
    fail("inference weights: parameter '", masters.all().at(index).name,
         "' is not held in f32 (it is read as a 16-bit or quantized copy, or not at all)");
  return f32_views_[index];
}

const Tensor& InferenceWeights::working(size_t index, const ParameterStore& masters) const {
  if (!has_working(index))
    fail("inference weights: parameter '", masters.all().at(index).name, "' has no ", dtype_name(working_dtype_),
         " working copy (it is read in f32, quantized, or not at all)");
  return working_views_[index];
}

Tensor InferenceWeights::span_of(const std::vector<Tensor>& views, size_t first, size_t last, const Shape& shape,
                                 const ParameterStore& masters, const char* form) const {
  const std::vector<Parameter>& params = masters.all();
  WW_CHECK(first <= last && last < params.size(), "inference weights: span ", first, "..", last);
  for (size_t i = first; i <= last; ++i)
    if (i >= views.size() || !views[i].defined())
      fail("inference weights: parameter '", params[i].name, "' is not held as ", form, " (span ",
           params[first].name, "..", params[last].name, ")");
  const Tensor& a = views[first];
  const Tensor& b = views[last];
  const size_t esize = dtype_size(a.dtype());
  const auto* begin = static_cast<const char*>(a.raw());
  const auto* end = static_cast<const char*>(b.raw()) + b.nbytes();
  WW_CHECK(int64_t(end - begin) == shape_numel(shape) * int64_t(esize), "inference weights: span ",
           params[first].name, "..", params[last].name, " is not contiguous as ", shape_str(shape));
  return Tensor::view(const_cast<char*>(begin), shape, a.dtype(), a.device());
}

Tensor InferenceWeights::f32_span(size_t first, size_t last, const Shape& shape, const ParameterStore& masters) const {
  return span_of(f32_views_, first, last, shape, masters, "f32");
}

Tensor InferenceWeights::working_span(size_t first, size_t last, const Shape& shape,
                                      const ParameterStore& masters) const {
  return span_of(working_views_, first, last, shape, masters, "a working copy");
}

Tensor InferenceWeights::tensor_to_save(size_t index, const ParameterStore& masters, DType store_dtype) const {
  const std::string& name = masters.all().at(index).name;
  if (has_f32(index)) return f32_views_[index];
  if (!has_working(index))
    fail("cannot save parameter '", name, "': this inference-only model holds it only as a quantized copy (its f32 "
         "masters were released at its first forward); save the model before quantizing it, or from a model loaded "
         "for training");
  if (store_dtype != working_dtype_)
    fail("cannot save parameter '", name, "' as ", dtype_name(store_dtype), ": this inference-only model holds it only "
         "in ", dtype_name(working_dtype_), " (its f32 masters were released at its first forward); save it as ",
         dtype_name(working_dtype_), ", the values it computes with, or save before the first forward");
  return working_views_[index];
}

size_t InferenceWeights::bytes() const {
  return (f32_buffer_.defined() ? f32_buffer_.nbytes() : 0) + (working_buffer_.defined() ? working_buffer_.nbytes() : 0);
}

}  // namespace ww::models
