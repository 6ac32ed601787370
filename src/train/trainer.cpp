#include "wattwise/train/trainer.h"

#include <cmath>

#include "wattwise/core/error.h"
#include "wattwise/ops/optimizer.h"

namespace ww::train {

Trainer::Trainer(models::TrainableModel& model, const TrainerOptions& options)
    : model_(model),
      options_(options),
      optimizer_(model.parameters(), options.optimizer,
                 options.zero > 0 ? shard_of(options.group, model.parameters().numel()) : OptimizerShard{}),
      schedule_(options.schedule) {
  if (options.grad_accum <= 0) fail("train.grad_accum must be positive");
  if (options.zero < 0 || options.zero > 2) fail("train.zero ", options.zero, ": expected 0, 1 or 2");
  if (!(std::isfinite(options.initial_loss_scale) && options.initial_loss_scale > 0))
    fail("loss scale ", options.initial_loss_scale, " must be a finite value > 0");
  if (options.growth_interval <= 0) fail("loss-scale growth interval must be positive");
  set_bucket_elements(options.bucket_elements);
  const OptimizerShard shard = shard_of(options.group, model.parameters().numel());
  if (options.zero == 2 && optimizer_.sharded() &&
      ShardedGradients::saves_memory(model.layer_gradient_ranges(), model.parameters().numel(), shard.end - shard.begin)) {
    sharded_gradients_.emplace(*options.group, model.parameters(), model.layer_gradient_ranges(), shard);
    optimizer_.set_gradient_part(sharded_gradients_->part());
  }
  accum_ = options.grad_accum;
  if (options.adaptive) {
    adaptive_.emplace(*options.adaptive, options.micro_batch_examples);
    accum_ = adaptive_->micro_batches();
  }
  loss_scale_ = options.initial_loss_scale;
  model_.set_label_smoothing(options.label_smoothing);
  model_.set_dropout_seed(options.seed);
  model_.zero_grad();
}

void Trainer::set_bucket_elements(int64_t elements) {
  WW_CHECK(micro_ == 0, "gradient buckets changed in the middle of an optimizer step");
  if (elements < 0) fail("gradient bucket size ", elements, " must not be negative");
  options_.bucket_elements = elements;
  buckets_.reset();
  if (options_.group && elements > 0 && options_.zero < 2)
    buckets_.emplace(*options_.group, model_.gradient_boundaries(), model_.parameters().numel(), elements);
  model_.drop_recordings();  // a recorded step holds the old buckets' sums
}

nlohmann::json to_json(const TrainerState& state) {
  nlohmann::json j = {{"skipped_steps", state.skipped_steps},
                      {"loss_scale", state.loss_scale},
                      {"good_steps", state.good_steps},
                      {"dropout_step", state.dropout_step}};
  if (state.adaptive) j["adaptive_accumulation"] = to_json(*state.adaptive);
  return j;
}

TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& origin) {
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number())
      fail(origin, ": trainer state has no number '", key, "'");
    return j[key];
  };
  TrainerState state;
  state.skipped_steps = field("skipped_steps").get<int64_t>();
  state.loss_scale = field("loss_scale").get<float>();
  state.good_steps = field("good_steps").get<int64_t>();
  state.dropout_step = field("dropout_step").get<uint64_t>();
  if (j.contains("adaptive_accumulation"))
    state.adaptive = adaptive_state_from_json(j["adaptive_accumulation"], origin);
  if (state.skipped_steps < 0 || state.good_steps < 0 || !(std::isfinite(state.loss_scale) && state.loss_scale > 0))
    fail(origin, ": trainer state out of range (", to_json(state).dump(), ")");
  return state;
}

TrainerState Trainer::state() const {
  WW_CHECK(micro_ == 0, "trainer state asked for in the middle of an optimizer step (", micro_, " micro-batches in)");
  TrainerState state;
  state.skipped_steps = skipped_;
  state.loss_scale = loss_scale_;
  state.good_steps = good_steps_;
  state.dropout_step = model_.dropout_step();
  if (adaptive_) state.adaptive = adaptive_->state();
  return state;
}

void Trainer::restore(const TrainerState& state) {
  WW_CHECK(micro_ == 0, "trainer state restored in the middle of an optimizer step");
  skipped_ = state.skipped_steps;
  loss_scale_ = state.loss_scale;
  good_steps_ = state.good_steps;
  model_.set_dropout_step(state.dropout_step);
  if (adaptive_) {
    if (!state.adaptive) fail("the checkpoint's trainer state has no adaptive accumulation state (train.grad_accum auto)");
    adaptive_->restore(*state.adaptive);
    accum_ = adaptive_->micro_batches();
  }
  model_.zero_grad();
  if (sharded_gradients_) sharded_gradients_->zero();
  step_loss_ = 0;
  step_examples_ = 0;
}

std::optional<StepResult> Trainer::train_micro_batch(const models::Batch& batch) {
  if (!batch.labels.defined()) fail("training batch has no labels");
  return train_micro_batch_shard(batch, 1.0, batch.input_ids.size(0));
}

bool Trainer::can_graph(const models::Batch& rows, int64_t global_examples, bool same_on_every_rank) const {
  if (accum_ != 1 || !model_.can_graph_training(rows)) return false;
  if (!distributed()) return true;
  const int ranks = options_.group->size();
  return (same_on_every_rank || ranks == 1) && options_.zero == 0 && options_.group->can_record() &&
         global_examples % ranks == 0 && rows.input_ids.size(0) == global_examples / ranks;
}

float Trainer::backward_scale(double share) const {
  return share == 1.0 ? loss_scale_ : float(double(loss_scale_) * share);
}

size_t Trainer::gradient_bytes() const {
  if (sharded_gradients_) return sharded_gradients_->bytes();
  const models::ParameterStore& p = model_.parameters();
  return p.has_grads() ? size_t(p.gradient_elements()) * sizeof(float) : 0;
}

template <typename Work>
void Trainer::with_buckets_hooked(Work&& work) {
  if (sharded_gradients_) {
    model_.set_gradients_final_hook([&](int64_t boundary) { sharded_gradients_->final_from(boundary); });
  } else if (buckets_) {
    const Tensor& grads = model_.parameters().flat_grads();
    model_.set_gradients_final_hook([&](int64_t boundary) { buckets_->final_from(grads, boundary); });
  } else {
    return work();
  }
  try {
    work();
  } catch (...) {
    model_.set_gradients_final_hook(nullptr);
    throw;
  }
  model_.set_gradients_final_hook(nullptr);
}

std::optional<StepResult> Trainer::train_micro_batch_shard(const models::Batch& rows, double share,
                                                          int64_t global_examples, bool same_on_every_rank) {
  if (share > 0 && !rows.labels.defined()) fail("training batch has no labels");
  if (share > 0 && can_graph(rows, global_examples, same_on_every_rank))
    return train_step_graphed(rows, share, global_examples);
  if (share > 0) {
    model_.forward(rows, /*training=*/true);
    const float loss = model_.loss();
    // With loss scaling an overflowing forward is one skipped step, not an error.
    if (!std::isfinite(loss) && !options_.dynamic_loss_scaling)
      fail("training loss is not finite (", loss, ") at step ", steps() + 1,
           "; try a lower learning rate or gradient clipping (train.max_grad_norm)");
    // The step's last micro-batch: its backward finishes the gradients, bucket by bucket. Under
    // ZeRO 2 every micro-batch's layers are summed as backward finishes them (their slots are
    // reused).
    const bool measure = adaptive_ && micro_ == 0;
    if (measure && sharded_gradients_) sharded_gradients_->measure_next_micro_batch();
    if (micro_ + 1 == accum_ || sharded_gradients_)
      with_buckets_hooked([&] { model_.backward(backward_scale(share)); });
    else
      model_.backward(backward_scale(share));
    step_loss_ += double(loss) * share * double(global_examples);
    if (sharded_gradients_) sharded_gradients_->finish_micro_batch(micro_ + 1 == accum_);
    if (measure) measure_first_micro_batch(rows.input_ids.size(0), share);
  } else if (sharded_gradients_) {
    sharded_gradients_->finish_micro_batch(micro_ + 1 == accum_);
  }
  step_examples_ += global_examples;
  if (++micro_ < accum_) return std::nullopt;

  if (distributed() && !sharded_gradients_) {
    // The ranks' gradients (each already weighted by its share) summed: the same on every rank, or
    // under ZeRO 2 without layers each rank's part only (the part its optimizer shard updates).
    const Tensor& grads = model_.parameters().flat_grads();
    if (options_.zero == 2) options_.group->reduce_scatter_sum(grads, shard_counts(grads.numel(), options_.group->size()));
    else if (buckets_) buckets_->finish(grads);  // what backward has not started (all, on a rank without rows)
    else options_.group->all_reduce_sum(grads);
  }
  // Each micro-batch's gradient is of its mean loss: averaging over micro-batches is 1/accum.
  const int64_t step = steps();
  StepResult r;
  r.lr = schedule_.lr(step) * (adaptive_ ? adaptive_->lr_multiplier(accum_) : 1.0);
  r.loss_scale = loss_scale_;
  StepReport report = optimizer_.step(r.lr, 1.0f / (float(accum_) * loss_scale_));
  return finish_step(r, report);
}

void Trainer::measure_first_micro_batch(int64_t rows, double share) {
  // The buffer holds share x loss scale x this rank's mean gradient (all of it, or under ZeRO 2 the
  // squares were taken slot by slot before the sums).
  const double squared = sharded_gradients_ ? sharded_gradients_->local_sum_of_squares()
                                            : std::pow(double(ops::global_grad_norm(model_.parameters().flat_grads())), 2);
  const double scale = share * double(loss_scale_);
  first_squared_norm_ = squared / (scale * scale);
  first_rows_ = rows;
}

StepResult Trainer::finish_step(StepResult r, const StepReport& report) {
  // Adaptive accumulation: the ranks that had rows in the first micro-batch, their squared norms
  // and rows (a rank without rows measured nothing).
  const bool measured = first_rows_ > 0 && std::isfinite(first_squared_norm_);
  std::vector<double> first = {measured ? first_squared_norm_ : 0.0, measured ? double(first_rows_) : 0.0,
                               measured ? 1.0 : 0.0};
  if (distributed()) {  // the ranks' parts of the step's loss (and of the first micro-batch's norms)
    std::vector<double> sums = {step_loss_};
    if (adaptive_) sums.insert(sums.end(), first.begin(), first.end());
    options_.group->all_reduce_sum(sums);
    step_loss_ = sums[0];
    if (adaptive_) first.assign(sums.begin() + 1, sums.end());
  }
  r.grad_accum = accum_;
  if (adaptive_) {
    if (report.applied && first[2] > 0) {
      NoiseMeasurement m;
      m.small_squared_norm = first[0] / first[2];
      m.small_examples = first[1] / first[2];
      m.big_squared_norm = double(report.grad_norm) * double(report.grad_norm);
      m.big_examples = double(step_examples_);
      adaptive_->observe(m);
    }
    r.noise_scale = adaptive_->noise_scale();
    accum_ = adaptive_->micro_batches();
    first_squared_norm_ = 0;
    first_rows_ = 0;
  }
  if (!report.applied) ++skipped_;
  r.step = steps();
  r.loss = step_loss_ / double(step_examples_);
  r.grad_norm = report.grad_norm;
  r.applied = report.applied;
  r.examples = step_examples_;
  if (!report.applied && !options_.dynamic_loss_scaling)
    fail("gradients are not finite at step ", r.step, " (norm ", report.grad_norm,
         "); try a lower learning rate or gradient clipping (train.max_grad_norm)");
  if (options_.dynamic_loss_scaling) {
    if (!report.applied) {
      loss_scale_ *= 0.5f;
      good_steps_ = 0;
      if (loss_scale_ < 1e-30f)
        fail("fp16 loss scale fell below 1e-30 at step ", r.step,
             ": the gradients are not finite at any scale (try bf16, a lower learning rate or clipping)");
    } else if (++good_steps_ == options_.growth_interval) {
      loss_scale_ *= 2.0f;
      good_steps_ = 0;
    }
  }
  model_.zero_grad();
  if (sharded_gradients_) sharded_gradients_->zero();
  micro_ = 0;
  step_loss_ = 0;
  step_examples_ = 0;
  return r;
}

// The whole step (forward, backward, optimizer) as one CUDA-graph replay: the scalars the host knows
// go up first (prepare), the recorded kernels decide clipping and skipping on the GPU, and the
// outcome comes back once (finish).
std::optional<StepResult> Trainer::train_step_graphed(const models::Batch& batch, double share,
                                                     int64_t global_examples) {
  const int64_t step = steps();
  StepResult r;
  r.lr = schedule_.lr(step);
  r.loss_scale = loss_scale_;
  optimizer_.prepare(r.lr, 1.0f / loss_scale_);
  // Data parallel: this rank's gradient weighs its share, and the recorded tail sums the ranks'
  // (with buckets, the sums start inside backward, on the communication stream, recorded with it).
  const Tensor& grads = model_.parameters().flat_grads();
  with_buckets_hooked([&] {
    model_.train_step_graphed(batch, backward_scale(share), [&] {
      if (buckets_) buckets_->finish(grads);
      else if (distributed()) options_.group->all_reduce_sum_recorded(grads);
      optimizer_.enqueue();
    });
  });
  optimizer_.mark_launched();
  if (distributed()) options_.group->wait("training step");
  const StepReport report = optimizer_.finish();
  const float loss = model_.loss();
  if (!std::isfinite(loss) && !options_.dynamic_loss_scaling)
    fail("training loss is not finite (", loss, ") at step ", step + 1,
         "; try a lower learning rate or gradient clipping (train.max_grad_norm)");
  step_loss_ = double(loss) * share * double(global_examples);
  step_examples_ = global_examples;
  micro_ = accum_;
  return finish_step(r, report);
}

EvalAccumulator::EvalAccumulator(int64_t num_labels, bool regression)
    : num_labels_(num_labels), regression_(regression) {}

void EvalAccumulator::add(const std::vector<float>& logits, const std::vector<int32_t>& labels,
                          const std::vector<float>& targets, double mean_loss, int64_t batch_size) {
  if (regression_) {
    outputs_.insert(outputs_.end(), logits.begin(), logits.end());
    targets_.insert(targets_.end(), targets.begin(), targets.end());
  } else {
    std::vector<int32_t> p = argmax_rows(logits.data(), batch_size, num_labels_);
    predictions_.insert(predictions_.end(), p.begin(), p.end());
    labels_.insert(labels_.end(), labels.begin(), labels.end());
  }
  loss_.add(mean_loss, batch_size);
}

nlohmann::json EvalAccumulator::metrics() const {
  nlohmann::json j = regression_ ? to_json(regression_metrics(targets_, outputs_))
                                 : to_json(classification_metrics(labels_, predictions_, std::max<int64_t>(2, num_labels_)));
  j["loss"] = loss_.count() ? loss_.mean() : 0.0;
  return j;
}

double metric_value(const nlohmann::json& metrics, const std::string& name) {
  std::string key = name == "mcc" ? "matthews_correlation" : name;
  auto it = metrics.find(key);
  if (it == metrics.end() || !it->is_number())
    fail("metric '", name, "' is not available for this task (have: ", metrics.dump(), ")");
  return it->get<double>();
}

}  // namespace ww::train
