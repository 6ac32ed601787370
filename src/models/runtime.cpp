#include "wattwise/models/runtime.h"

#include <cmath>
#include <cstring>
#include <numeric>

#include "wattwise/ops/elementwise.h"

namespace ww::models {

namespace {
// The same elements as `master` (a view into the f32 flat buffer) in the working copy.
Tensor working_view(const Tensor& working, const Tensor& flat, const Tensor& master, const Shape& shape) {
  const int64_t offset = master.data<float>() - flat.data<float>();
  char* base = static_cast<char*>(working.raw()) + size_t(offset) * dtype_size(working.dtype());
  return Tensor::view(base, shape, working.dtype(), working.device());
}
}  // namespace

ModelRuntime::ModelRuntime(Device device, ModelPurpose purpose, RuntimeWording wording)
    : device_(device), purpose_(purpose), wording_(wording) {}

void ModelRuntime::allocate_parameters() {
  params_.allocate(inference_only() ? Device::cpu() : device_);
  if (inference_only()) params_.set_inference_only();
  dropout_base_ = Tensor::zeros({1}, DType::I64, device_);
}

void ModelRuntime::check_trainable(const char* what) const {
  if (inference_only())
    fail(what, ": the model was built for inference only (ModelPurpose::Inference): it has no gradient buffer and "
               "releases its f32 master weights; build it for training to ", wording_.train_it);
}

void ModelRuntime::prepare_save(const std::filesystem::path& dir, DType store_dtype) {
  if (store_dtype != DType::F32 && store_dtype != DType::F16 && store_dtype != DType::BF16)
    fail("cannot save weights as ", dtype_name(store_dtype), " (expected f32, f16 or bf16)");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(dir.string(), ": cannot create folder (", ec.message(), ")");
}

const char* ModelRuntime::torch_dtype_name(DType store_dtype) {
  return store_dtype == DType::F32 ? "float32" : store_dtype == DType::F16 ? "float16" : "bfloat16";
}

Tensor ModelRuntime::value_to_save(size_t index, DType store_dtype, Tensor& host) const {
  if (params_.values_released()) return inference_.tensor_to_save(index, params_, store_dtype);
  if (!host.defined()) {
    const Tensor& flat = params_.flat_values();
    host = flat.device().is_cpu() ? flat : flat.to(Device::cpu());
  }
  const Parameter& p = params_.all()[index];
  return Tensor::view(host.data<float>() + p.offset, p.shape, DType::F32);
}

void ModelRuntime::set_execution(const ExecutionOptions& options) {
  const DType d = options.compute_dtype;
  if (d != DType::F32 && d != DType::F16 && d != DType::BF16)
    fail("compute dtype ", dtype_name(d), " is not supported (expected f32, f16 or bf16)");
  if (device_.is_cpu()) {
    const GpuOnlyPart gpu_only = gpu_only_part(options);
    if (gpu_only == GpuOnlyPart::Precision)
      fail(precision_label(options), " compute needs a GPU (the CPU kernels compute in f32); use precision fp32 on the cpu");
    if (gpu_only == GpuOnlyPart::Attention)
      fail("fused attention needs a GPU; the CPU runs the reference attention (attention = reference or auto)");
  }
  if (options.checkpointing.mode == Checkpointing::Mode::EveryK && options.checkpointing.k < 1)
    fail("activation checkpointing every-", options.checkpointing.k, ": K must be at least 1");
  if (prepared_for_inference() && d != inference_dtype_)
    fail("compute dtype ", dtype_name(d), ": this inference-only model was prepared for ", dtype_name(inference_dtype_),
         " and released its f32 master weights; load it again to run in another precision");
  exec_ = options;
  replan_activations();
  drop_graphs();
}

Tensor ModelRuntime::gemm_weight(const std::string& name) const {
  if (inference_.built()) {
    const size_t i = params_.index_of(name);
    return exec_.compute_dtype == DType::F32 ? inference_.f32(i, params_) : inference_.working(i, params_);
  }
  const Tensor& master = params_.value(name);
  if (exec_.compute_dtype == DType::F32) return master;
  return working_view(working_, params_.flat_values(), master, master.shape());
}

Tensor ModelRuntime::gemm_weight_span(const std::string& first, const std::string& last, const Shape& shape) const {
  if (inference_.built()) {
    const size_t a = params_.index_of(first), b = params_.index_of(last);
    return exec_.compute_dtype == DType::F32 ? inference_.f32_span(a, b, shape, params_)
                                             : inference_.working_span(a, b, shape, params_);
  }
  Tensor master = params_.span(first, last, shape, false);
  if (exec_.compute_dtype == DType::F32) return master;
  return working_view(working_, params_.flat_values(), master, shape);
}

Tensor ModelRuntime::f32_weight(const std::string& name) const {
  if (inference_.built()) return inference_.f32(params_.index_of(name), params_);
  return params_.value(name);
}

void ModelRuntime::refresh_working_weights() {
  if (exec_.compute_dtype == DType::F32) {
    working_ = Tensor();
    return;
  }
  if (working_.defined() && working_.dtype() == exec_.compute_dtype && working_version_ == params_.version()) return;
  if (!working_.defined() || working_.dtype() != exec_.compute_dtype) {
    drop_graphs();  // recordings read the old working copy
    working_ = Tensor::empty({params_.numel()}, exec_.compute_dtype, device_);
  }
  ops::cast(working_, params_.flat_values());
  working_version_ = params_.version();
}

void ModelRuntime::allocate_working_weights() {
  if (exec_.compute_dtype != DType::F32 && (!working_.defined() || working_.dtype() != exec_.compute_dtype))
    refresh_working_weights();
}

void ModelRuntime::ensure_inference_weights() {
  const bool quantized = reads_quantized_weights();
  if (inference_.built() && inference_dtype_ == exec_.compute_dtype && inference_quantized_ == quantized &&
      (prepared_for_inference() || inference_version_ == params_.version()))
    return;
  if (prepared_for_inference()) {
    if (inference_quantized_ || quantized)
      fail("this inference-only model was prepared for ", dtype_name(inference_dtype_),
           inference_quantized_ ? " with quantized linears" : "", " and released its f32 master weights; load it "
           "again to run it another way");
    fail("this inference-only model was prepared for ", dtype_name(inference_dtype_),
         " and released its f32 master weights; load it again to run it in ", dtype_name(exec_.compute_dtype));
  }
  drop_graphs();  // recordings read the old weights
  inference_.build(params_, weight_uses(), exec_.compute_dtype, device_);
  inference_dtype_ = exec_.compute_dtype;
  inference_quantized_ = quantized;
  inference_version_ = params_.version();
}

void ModelRuntime::prepare_for_inference() {
  if (!inference_only())
    fail("prepare_for_inference(): the model was built for training; build it with ", wording_.inference_purpose,
         " to run it without gradients and f32 masters");
  check_quantized_weights();
  ensure_inference_weights();
  if (!prepared_for_inference()) params_.release_values();
}

void ModelRuntime::prepare_weights_for_forward() {
  if (inference_only()) prepare_for_inference();
  else refresh_working_weights();
}

Arena& ModelRuntime::activation_arena(const StepKey& key, size_t bytes) {
  if (bytes > arena_.capacity()) {
    drop_graphs();     // recordings hold addresses in the old buffer
    arena_ = Arena();  // free the old buffer before asking for the larger one
    arena_ = Arena(bytes, device_);
  }
  arena_.reset();
  planned_ = key;
  return arena_;
}

void ModelRuntime::release_activations() {
  replan_activations();
  arena_ = Arena();
}

void ModelRuntime::drop_graphs() {
  forward_graphs_.clear();
  step_graphs_.clear();
}

void ModelRuntime::drop_forward_graphs() { forward_graphs_.clear(); }

void ModelRuntime::run_forward_graph(const StepKey& key, const std::function<void()>& forward) {
  auto it = forward_graphs_.find(key);
  if (it != forward_graphs_.end()) {
    it->second.replay();
    return;
  }
  forward();
  forward_graphs_.emplace(key, ops::CapturedWork::capture(device_, forward));
}

void ModelRuntime::run_training_step_graph(const StepKey& key, const std::function<void()>& step_kernels,
                                           const std::function<void()>& tail) {
  auto work = [&] {
    // The optimizer moved the master weights in place: refresh the 16-bit working copy inside the step.
    if (working_.defined()) ops::cast(working_, params_.flat_values());
    step_kernels();
    tail();
  };
  auto it = step_graphs_.find(key);
  if (it != step_graphs_.end()) {
    it->second.replay();
  } else {
    work();  // this step, run directly; the recording serves the next steps of this shape
    step_graphs_.emplace(key, ops::CapturedWork::capture(device_, work));
  }
  working_version_ = params_.version();
  can_backward_ = false;
}

bool ModelRuntime::can_graph_training(const Batch& batch) const {
  return device_.is_cuda() && exec_.cuda_graphs && !inference_only() && batch.input_ids.defined() &&
         batch.input_ids.device().is_cpu() && batch.labels.defined();
}

void ModelRuntime::check_graphed_step(const Batch& batch, float loss_scale) const {
  if (!can_graph_training(batch))
    fail("train_step_graphed needs a GPU model with CUDA graphs on and a host batch with labels");
  if (!(std::isfinite(loss_scale) && loss_scale > 0))
    fail("train_step_graphed: loss_scale ", loss_scale, " is not a finite value > 0");
}

std::vector<int64_t> ModelRuntime::gradient_boundaries() const {
  std::vector<int64_t> boundaries(layer_offsets_.rbegin(), layer_offsets_.rend());
  boundaries.push_back(0);
  return boundaries;
}

std::vector<std::pair<int64_t, int64_t>> ModelRuntime::layer_gradient_ranges() const {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (size_t l = 0; l < layer_offsets_.size(); ++l)
    ranges.emplace_back(layer_offsets_[l], l + 1 < layer_offsets_.size() ? layer_offsets_[l + 1] : layers_end_);
  return ranges;
}

void ModelRuntime::backward(float loss_scale) {
  check_trainable("backward()");
  if (!can_backward_) fail("backward() needs a preceding forward(batch with labels, training=true)");
  if (!(std::isfinite(loss_scale) && loss_scale > 0))
    fail("backward: loss_scale ", loss_scale, " is not a finite value > 0");
  const auto tf32 = tf32_scope();
  backward_kernels(loss_scale);
  can_backward_ = false;
}

void ModelRuntime::check_batch_devices(const Batch& batch) const {
  const Device where = batch.input_ids.device();
  if (!(where == device_) && !where.is_cpu())
    fail("batch tensor on ", where.str(), " but the model is on ", device_.str());
  for (const Tensor* t : {&batch.input_ids, &batch.attention_mask, &batch.token_type_ids, &batch.labels})
    if (t->defined() && !(t->device() == where))
      fail("batch tensors on different devices (", t->device().str(), " and ", where.str(), ")");
}

void ModelRuntime::read_mean_loss(const Tensor& losses, const Tensor& divisor) {
  const std::vector<float> values = losses.to_float_vector();
  const double sum = std::accumulate(values.begin(), values.end(), 0.0);
  const double denominator = divisor.defined() ? double(divisor.to_float_vector()[0]) : double(num_valid_);
  loss_ = num_valid_ ? float(sum / denominator) : 0.0f;
}

}  // namespace ww::models
