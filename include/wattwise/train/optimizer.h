#pragma once
// Optimizers over a model's ParameterStore: AdamW, Adam and SGD (momentum, Nesterov), with weight
// decay that skips parameters whose weight_decay flag is false (biases, LayerNorm) and gradient
// clipping by global norm (torch.nn.utils.clip_grad_norm_). The state lives in flat buffers beside
// the parameters, on their device; a step is one pass of ops::adamw_step / ops::sgd_step.
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wattwise/core/tensor.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/models/parameters.h"
#include "wattwise/core/upload.h"
#include "wattwise/ops/optimizer.h"

namespace ww::train {

enum class OptimizerKind { AdamW, Adam, SGD };

// "adamw", "adam", "sgd" (any case); anything else is an error naming the option `optimizer`.
OptimizerKind parse_optimizer_kind(std::string_view name);
std::string_view optimizer_kind_name(OptimizerKind kind);  // "adamw", "adam", "sgd"

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::AdamW;
  double weight_decay = 0.0;                       // torch.optim's default for Adam, SGD (AdamW: 0.01)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;   // Adam, AdamW
  double momentum = 0.0, dampening = 0.0;          // SGD
  bool nesterov = false;                           // SGD; needs momentum > 0, dampening 0
  double max_grad_norm = 0.0;                      // clip by global L2 norm when > 0
};

// Throws ww::Error naming the option at fault ("optimizer option beta2 = 1.5: expected ...").
void validate(const OptimizerOptions& options);

// Half-open element ranges [begin, end) of the flat buffers whose parameters take weight decay,
// adjacent ones merged: the i64 [R, 2] tensor that ops::adamw_step / ops::sgd_step expect, on the
// CPU.
Tensor decay_ranges(const models::ParameterStore& store);

// torch.nn.utils.clip_grad_norm_'s factor: min(1, max_norm / (total_norm + 1e-6)), in float.
float clip_coefficient(float total_norm, double max_norm);

struct StepReport {
  float grad_norm = 0;   // global L2 norm of the gradients after grad_scale, before clipping
  float clip_coef = 1;   // factor clipping applied (1 when off or not needed)
  bool applied = false;  // false when grad_norm was NaN/Inf and the update was skipped
};

// ZeRO stage 1: the ranks of `group` share the optimizer state, each holding and updating the
// elements [begin, end) of the flat buffers (shard_of gives the balanced split), then all-gathering
// the parameters. No group (or a group of one): the whole state here.
struct OptimizerShard {
  dist::ProcessGroup* group = nullptr;
  int64_t begin = 0, end = 0;
  bool active() const { return group && group->size() > 1; }
};
// This rank's part of `numel` elements among the group's ranks (contiguous, balanced).
OptimizerShard shard_of(dist::ProcessGroup* group, int64_t numel);
// Element counts of every rank's part of `numel` (as shard_of splits it), for all_gather and
// reduce_scatter_sum.
std::vector<int64_t> shard_counts(int64_t numel, int ranks);

class Optimizer {
 public:
  // `store` must be allocated and must outlive the optimizer. State is zero-initialised on the
  // store's device. Throws for invalid options (see validate()).
  Optimizer(models::ParameterStore& store, const OptimizerOptions& options, OptimizerShard shard = {});

  // One update with learning rate `lr` (from an LrSchedule). The gradients are multiplied by
  // `grad_scale` first (1/loss scale, 1/accumulation steps), then clipped to max_grad_norm, both
  // folded into one factor, so they are read once and never written. When their norm is NaN or
  // Inf nothing changes (parameters, state and step count untouched) and the report says so:
  // with loss scaling that is the overflow signal; without it the trainer should stop.
  StepReport step(double lr, float grad_scale = 1.0f);

  // The same step in three parts, so the middle one can be recorded in a CUDA graph: prepare()
  // fixes the step's scalars (on a GPU: uploads them without waiting), launch() runs (CPU) or
  // enqueues (GPU, no host wait, nothing allocated) the norm, clipping, check and update, and
  // finish() reports the outcome (on a GPU: waits for it). step() = all three.
  void prepare(double lr, float grad_scale = 1.0f);
  void launch();
  StepReport finish();
  // For a step recorded in a CUDA graph (GPU only): enqueue() issues launch()'s kernels without
  // touching the host state, so a recording can hold them; mark_launched() then stands for
  // launch() once the recording (or the run that made it) has been issued.
  void enqueue();
  void mark_launched();

  int64_t steps_taken() const { return step_; }
  // Another replica's count of applied steps (data parallel: rank 0's, with its state tensors).
  void set_steps_taken(int64_t steps) {
    WW_CHECK(steps >= 0 && phase_ == Phase::Idle, "optimizer step count ", steps);
    step_ = steps;
  }
  const OptimizerOptions& options() const { return options_; }

  // Checkpoint state: "exp_avg" and "exp_avg_sq" for Adam/AdamW, "momentum_buffer" for SGD with
  // momentum (f32 on the parameters' device, laid out as the flat buffers), and "step" (i64 [1] on
  // the CPU, updates taken so far). The f32 tensors are the live state (copy them to keep a
  // snapshot) and cover state_range(): the whole buffers, or this rank's part when sharded (ZeRO),
  // so each rank saves its own part and nothing is gathered.
  std::vector<std::pair<std::string, Tensor>> state() const;
  // The elements [begin, end) of the flat buffers that state() covers, of parameter_count().
  std::pair<int64_t, int64_t> state_range() const;
  int64_t parameter_count() const { return store_.numel(); }
  // Restores what state() gave (from any device), for state_range(): every expected name must be
  // present with the right dtype and element count (end - begin); errors name the tensor, and
  // nothing changes when one is wrong. Names not ours are an error too.
  void load_state(const std::map<std::string, Tensor>& tensors);
  // Unsharded: rank 0's state to every rank (a collective), how a data-parallel run starts from the
  // same state everywhere. Sharded: nothing to send (each rank's part is its own: zeros, or read
  // from its checkpoint's shards).
  void share_state(dist::ProcessGroup& group);
  bool sharded() const { return shard_.active(); }
  // ZeRO 2: this rank's summed gradients live in their own buffer (`part`: f32, the shard's
  // elements, on the parameters' device) and the store holds no whole gradient buffer; the
  // optimizer reads them from there instead of the store's gradients.
  void set_gradient_part(const Tensor& part);
  // Bytes of optimizer state this rank holds (its part when sharded).
  size_t state_bytes() const;

 private:
  ops::AdamStepArgs adam_args(double lr, float grad_scale, int64_t step) const;
  // The gradients this optimizer updates from: the part (set_gradient_part), or the store's (this
  // rank's slice of them when sharded).
  Tensor gradients_to_apply() const;
  ops::SgdStepArgs sgd_args(double lr, float grad_scale, int64_t step) const;

  models::ParameterStore& store_;
  OptimizerOptions options_;
  Tensor decay_ranges_;  // on the parameters' device
  Tensor exp_avg_, exp_avg_sq_, momentum_buffer_;  // sharded: this rank's part
  int64_t step_ = 0;
  OptimizerShard shard_;
  Tensor gradient_part_;
  // The live state tensors by name ("exp_avg", ...), without "step".
  std::vector<std::pair<std::string, Tensor>> live_state() const;
  // Step in flight: prepare() → launch() → finish().
  enum class Phase { Idle, Prepared, Launched } phase_ = Phase::Idle;
  double lr_ = 0;
  float grad_scale_ = 1;
  StepReport host_report_;              // CPU: filled by launch()
  ops::DeviceStepBuffers device_step_;  // GPU: control + norm partials
  HostToDevice uploader_;
};

}  // namespace ww::train
