#include "wattwise/train/optimizer.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "wattwise/ops/optimizer.h"

namespace ww::train {
namespace {

void require(bool ok, const char* name, double value, const char* expected) {
  if (!ok) fail("optimizer option ", name, " = ", value, ": expected ", expected);
}

bool uses_adam(OptimizerKind kind) { return kind != OptimizerKind::SGD; }

}  // namespace

OptimizerKind parse_optimizer_kind(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  if (lower == "adamw") return OptimizerKind::AdamW;
  if (lower == "adam") return OptimizerKind::Adam;
  if (lower == "sgd") return OptimizerKind::SGD;
  fail("optimizer = '", name, "': expected one of adamw, adam, sgd");
}

std::string_view optimizer_kind_name(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::AdamW: return "adamw";
    case OptimizerKind::Adam: return "adam";
    case OptimizerKind::SGD: return "sgd";
  }
  return "?";
}

void validate(const OptimizerOptions& o) {
  require(std::isfinite(o.weight_decay) && o.weight_decay >= 0, "weight_decay", o.weight_decay,
          "a finite value >= 0");
  require(std::isfinite(o.max_grad_norm) && o.max_grad_norm >= 0, "max_grad_norm",
          o.max_grad_norm, "a finite value >= 0 (0 turns clipping off)");
  if (uses_adam(o.kind)) {
    require(o.beta1 >= 0 && o.beta1 < 1, "beta1", o.beta1, "0 <= beta1 < 1");
    require(o.beta2 >= 0 && o.beta2 < 1, "beta2", o.beta2, "0 <= beta2 < 1");
    require(std::isfinite(o.eps) && o.eps >= 0, "eps", o.eps, "a finite value >= 0");
  } else {
    require(std::isfinite(o.momentum) && o.momentum >= 0, "momentum", o.momentum,
            "a finite value >= 0");
    require(std::isfinite(o.dampening) && o.dampening >= 0 && o.dampening <= 1, "dampening",
            o.dampening, "0 <= dampening <= 1");
    if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
      fail("optimizer option nesterov = true needs momentum > 0 and dampening = 0 (got momentum ",
           o.momentum, ", dampening ", o.dampening, ")");
  }
}

Tensor decay_ranges(const models::ParameterStore& store) {
  std::vector<int64_t> flat;
  for (const models::Parameter& p : store.all()) {
    if (!p.weight_decay) continue;
    int64_t begin = p.offset, end = p.offset + shape_numel(p.shape);
    if (begin == end) continue;
    if (!flat.empty() && flat.back() == begin)
      flat.back() = end;  // extends the previous run
    else {
      flat.push_back(begin);
      flat.push_back(end);
    }
  }
  Tensor ranges = Tensor::empty({int64_t(flat.size() / 2), 2}, DType::I64);
  std::copy(flat.begin(), flat.end(), ranges.data<int64_t>());
  return ranges;
}

std::vector<int64_t> shard_counts(int64_t numel, int ranks) {
  std::vector<int64_t> counts;
  for (int64_t r = 0; r < ranks; ++r) counts.push_back(numel * (r + 1) / ranks - numel * r / ranks);
  return counts;
}

OptimizerShard shard_of(dist::ProcessGroup* group, int64_t numel) {
  OptimizerShard shard;
  shard.group = group;
  shard.end = numel;
  if (!shard.active()) return shard;
  const int64_t n = group->size(), r = group->rank();
  shard.begin = numel * r / n;
  shard.end = numel * (r + 1) / n;
  return shard;
}

namespace {

// Weight-decay ranges of the flat buffers, clipped to [begin, end) and counted from `begin`.
Tensor ranges_within(const Tensor& ranges, int64_t begin, int64_t end) {
  std::vector<int64_t> flat;
  for (int64_t i = 0; i < ranges.size(0); ++i) {
    const int64_t lo = std::max(ranges.data<int64_t>()[2 * i], begin);
    const int64_t hi = std::min(ranges.data<int64_t>()[2 * i + 1], end);
    if (lo >= hi) continue;
    flat.push_back(lo - begin);
    flat.push_back(hi - begin);
  }
  Tensor out = Tensor::empty({int64_t(flat.size() / 2), 2}, DType::I64);
  std::copy(flat.begin(), flat.end(), out.data<int64_t>());
  return out;
}

}  // namespace

float clip_coefficient(float total_norm, double max_norm) {
  // clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1, in float32.
  float coef = float(max_norm) / (total_norm + 1e-6f);
  return std::min(coef, 1.0f);
}

Optimizer::Optimizer(models::ParameterStore& store, const OptimizerOptions& options, OptimizerShard shard)
    : store_(store), options_(options), shard_(shard) {
  validate(options_);
  if (!store_.allocated()) fail("optimizer: the parameter store is not allocated yet");
  if (store_.inference_only())
    fail("optimizer: the model was built for inference only (ModelPurpose::Inference): it has no gradients and "
         "releases its f32 master weights once it runs; build it for training to train it");
  Device device = store_.flat_values().device();
  if (!shard_.active()) shard_ = OptimizerShard{nullptr, 0, store_.numel()};
  WW_CHECK(0 <= shard_.begin && shard_.begin <= shard_.end && shard_.end <= store_.numel(), "optimizer shard [",
           shard_.begin, ", ", shard_.end, ") of ", store_.numel());
  const int64_t n = shard_.end - shard_.begin;
  decay_ranges_ = (shard_.active() ? ranges_within(decay_ranges(store_), shard_.begin, shard_.end)
                                   : decay_ranges(store_)).to(device);
  if (uses_adam(options_.kind)) {
    exp_avg_ = Tensor::zeros({n}, DType::F32, device);
    exp_avg_sq_ = Tensor::zeros({n}, DType::F32, device);
  } else if (options_.momentum != 0.0) {
    momentum_buffer_ = Tensor::zeros({n}, DType::F32, device);
  }
}

StepReport Optimizer::step(double lr, float grad_scale) {
  prepare(lr, grad_scale);
  launch();
  return finish();
}

void Optimizer::prepare(double lr, float grad_scale) {
  if (!std::isfinite(lr) || lr < 0) fail("optimizer step: learning rate ", lr, " is not a finite value >= 0");
  if (!std::isfinite(grad_scale) || grad_scale <= 0)
    fail("optimizer step: grad_scale ", grad_scale, " is not a finite value > 0");
  WW_CHECK(phase_ != Phase::Launched, "optimizer prepare() while a step awaits finish()");
  lr_ = lr;
  grad_scale_ = grad_scale;
  phase_ = Phase::Prepared;
  const Tensor& params = store_.flat_values();
  if (!params.device().is_cuda()) return;
  if (!device_step_.control.defined()) device_step_ = ops::make_device_step_buffers(params);
  if (uses_adam(options_.kind))
    ops::prepare_adamw_on_device(device_step_, adam_args(lr, grad_scale, step_ + 1), options_.max_grad_norm, uploader_);
  else
    ops::prepare_sgd_on_device(device_step_, sgd_args(lr, grad_scale, step_ + 1), options_.max_grad_norm, uploader_);
}

ops::AdamStepArgs Optimizer::adam_args(double lr, float grad_scale, int64_t step) const {
  ops::AdamStepArgs a;
  a.lr = lr;
  a.beta1 = options_.beta1;
  a.beta2 = options_.beta2;
  a.eps = options_.eps;
  a.weight_decay = options_.weight_decay;
  a.step = step;
  a.decoupled = options_.kind == OptimizerKind::AdamW;
  a.grad_scale = grad_scale;
  return a;
}

ops::SgdStepArgs Optimizer::sgd_args(double lr, float grad_scale, int64_t step) const {
  ops::SgdStepArgs a;
  a.lr = lr;
  a.momentum = options_.momentum;
  a.dampening = options_.dampening;
  a.nesterov = options_.nesterov;
  a.weight_decay = options_.weight_decay;
  a.step = step;
  a.grad_scale = grad_scale;
  return a;
}

Tensor Optimizer::gradients_to_apply() const {
  if (gradient_part_.defined()) return gradient_part_;
  const Tensor& grads = store_.flat_grads();
  return shard_.active() ? grads.slice(shard_.begin, shard_.end) : grads;
}

void Optimizer::set_gradient_part(const Tensor& part) {
  WW_CHECK(shard_.active() && part.dtype() == DType::F32 && part.numel() == shard_.end - shard_.begin &&
               part.device() == store_.flat_values().device(),
           "optimizer gradient part ", part.describe(), " for the shard ", shard_.begin, "..", shard_.end);
  gradient_part_ = part;
}

void Optimizer::enqueue() {
  const Tensor& params = store_.flat_values();
  WW_CHECK(params.device().is_cuda() && device_step_.control.defined(), "optimizer enqueue() needs a prepared GPU step");
  if (shard_.active()) {
    // ZeRO on GPUs: this rank's part of Σg², the ranks' parts added up on the device, then this
    // part's update from that norm and the parameters all-gathered (a skipped step gathers the
    // unchanged values). The collectives wait for the stream: a sharded step is never recorded.
    const Tensor my_params = params.slice(shard_.begin, shard_.end), my_grads = gradients_to_apply();
    ops::sum_of_squares_on_device(device_step_, my_grads);
    shard_.group->all_reduce_sum_f64(ops::step_sum_of_squares(device_step_), 1);
    if (uses_adam(options_.kind))
      ops::adamw_step_on_device(my_params, my_grads, exp_avg_, exp_avg_sq_, decay_ranges_, device_step_, options_.beta1,
                                /*norm_summed=*/true);
    else
      ops::sgd_step_on_device(my_params, my_grads, momentum_buffer_, decay_ranges_, device_step_, /*norm_summed=*/true);
    shard_.group->all_gather(params, shard_counts(store_.numel(), shard_.group->size()));
    return;
  }
  const Tensor& grads = store_.flat_grads();
  if (uses_adam(options_.kind))
    ops::adamw_step_on_device(params, grads, exp_avg_, exp_avg_sq_, decay_ranges_, device_step_, options_.beta1);
  else
    ops::sgd_step_on_device(params, grads, momentum_buffer_, decay_ranges_, device_step_);
}

void Optimizer::mark_launched() {
  WW_CHECK(phase_ == Phase::Prepared, "optimizer mark_launched() without prepare()");
  phase_ = Phase::Launched;
}

void Optimizer::launch() {
  WW_CHECK(phase_ == Phase::Prepared, "optimizer launch() without prepare()");
  phase_ = Phase::Launched;
  const Tensor& params = store_.flat_values();
  if (params.device().is_cuda()) {
    enqueue();
    return;
  }
  // Sharded: this rank's part of the buffers; the norm is of every part (the ranks' sums of
  // squares added up), so every rank clips, skips and steps alike.
  const Tensor my_params = shard_.active() ? params.slice(shard_.begin, shard_.end) : params;
  const Tensor my_grads = gradients_to_apply();
  StepReport report;
  if (shard_.active()) {
    const double part = ops::global_grad_norm(my_grads);
    std::vector<double> sum_of_squares = {part * part};
    shard_.group->all_reduce_sum(sum_of_squares);
    report.grad_norm = float(std::sqrt(sum_of_squares[0])) * grad_scale_;
  } else {
    report.grad_norm = ops::global_grad_norm(my_grads) * grad_scale_;
  }
  host_report_ = report;  // applied = false
  if (!std::isfinite(report.grad_norm)) return;
  if (options_.max_grad_norm > 0) report.clip_coef = clip_coefficient(report.grad_norm, options_.max_grad_norm);
  const float scale = grad_scale_ * report.clip_coef;
  if (uses_adam(options_.kind))
    ops::adamw_step(my_params, my_grads, exp_avg_, exp_avg_sq_, decay_ranges_, adam_args(lr_, scale, step_ + 1));
  else
    ops::sgd_step(my_params, my_grads, momentum_buffer_, decay_ranges_, sgd_args(lr_, scale, step_ + 1));
  if (shard_.active()) shard_.group->all_gather(params, shard_counts(store_.numel(), shard_.group->size()));
  report.applied = true;
  host_report_ = report;
}

StepReport Optimizer::finish() {
  WW_CHECK(phase_ == Phase::Launched, "optimizer finish() without launch()");
  phase_ = Phase::Idle;
  StepReport report = host_report_;
  if (store_.flat_values().device().is_cuda()) {
    ops::DeviceStepStatus status = ops::read_step_status(device_step_);
    report.grad_norm = status.grad_norm;
    report.clip_coef = status.clip_coef;
    report.applied = status.applied;
  }
  if (report.applied) {
    ++step_;
    store_.mark_updated();
  }
  return report;
}

std::vector<std::pair<std::string, Tensor>> Optimizer::live_state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  if (exp_avg_.defined()) {
    out.emplace_back("exp_avg", exp_avg_);
    out.emplace_back("exp_avg_sq", exp_avg_sq_);
  }
  if (momentum_buffer_.defined()) out.emplace_back("momentum_buffer", momentum_buffer_);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Optimizer::state() const {
  std::vector<std::pair<std::string, Tensor>> out = live_state();
  Tensor step = Tensor::empty({1}, DType::I64);
  step.data<int64_t>()[0] = step_;
  out.emplace_back("step", step);
  return out;
}

std::pair<int64_t, int64_t> Optimizer::state_range() const {
  if (shard_.active()) return {shard_.begin, shard_.end};
  return {0, store_.numel()};
}

size_t Optimizer::state_bytes() const {
  size_t bytes = 0;
  for (const auto& [name, tensor] : live_state()) bytes += tensor.nbytes();
  return bytes;
}

void Optimizer::share_state(dist::ProcessGroup& group) {
  if (shard_.active()) return;
  for (const auto& [name, tensor] : live_state()) group.broadcast(tensor, 0);
}

void Optimizer::load_state(const std::map<std::string, Tensor>& tensors) {
  std::vector<std::pair<std::string, Tensor>> expected = live_state();
  for (const auto& [name, tensor] : tensors) {
    bool known = name == "step" || std::any_of(expected.begin(), expected.end(),
                                               [&](const auto& e) { return e.first == name; });
    if (!known)
      fail("optimizer state: unexpected tensor '", name, "' for a ",
           optimizer_kind_name(options_.kind), " optimizer");
  }
  // Check everything before changing anything, so a bad checkpoint leaves the state as it was.
  const auto [begin, end] = state_range();
  const int64_t count = end - begin;
  auto step_it = tensors.find("step");
  if (step_it == tensors.end()) fail("optimizer state: tensor 'step' is missing");
  if (step_it->second.dtype() != DType::I64 || step_it->second.numel() != 1)
    fail("optimizer state: tensor 'step' is ", step_it->second.describe(), ", expected i64[1]");
  for (const auto& [name, target] : expected) {
    auto it = tensors.find(name);
    if (it == tensors.end()) fail("optimizer state: tensor '", name, "' is missing");
    const Tensor& t = it->second;
    if (t.dtype() != DType::F32 || t.numel() != count)
      fail("optimizer state: tensor '", name, "' is ", t.describe(), ", expected f32[", count, "] (elements ", begin,
           "..", end, " of the flat buffers)");
  }
  int64_t step = step_it->second.to(Device::cpu()).data<int64_t>()[0];
  if (step < 0) fail("optimizer state: tensor 'step' holds ", step, ", expected a count >= 0");
  for (const auto& [name, target] : expected) target.copy_from(tensors.at(name));
  step_ = step;
}

}  // namespace ww::train
