#include "wattwise/models/parameters.h"

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

void ParameterStore::ensure_grads() const {
  if (grads_.defined()) return;
  WW_CHECK(allocated(), "gradients requested before the parameters were allocated");
  const Device device = values_.device();
  grads_ = Tensor::zeros({total_}, DType::F32, device);
  grad_views_.clear();
  for (const auto& p : params_)
    grad_views_.push_back(Tensor::view(grads_.data<float>() + p.offset, p.shape, DType::F32, device));
}

const Tensor& ParameterStore::value(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("model has no parameter named '", name, "'");
  return params_[it->second].value;
}

const Tensor& ParameterStore::grad(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("model has no parameter named '", name, "'");
  ensure_grads();
  return grad_views_[it->second];
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
  if (grad) ensure_grads();
  const Tensor& base = grad ? grads_ : values_;
  return Tensor::view(base.data<float>() + p.offset, shape, DType::F32, base.device());
}

}  // namespace ww::models
