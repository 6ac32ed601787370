#pragma once
// How a model runs, independent of its checkpoint: the precision of its activations and matmuls,
// the attention kernel, activation checkpointing and CUDA graphs. Every model family takes the same
// options (ModelRuntime::set_execution, runtime.h); master weights and their gradients are always
// f32.
#include <cstdint>
#include <string>
#include <string_view>

#include "wattwise/core/device.h"
#include "wattwise/core/dtype.h"

namespace ww::models {

enum class AttentionKernel { Auto, Fused, Reference };  // Auto: fused on a GPU, reference on the CPU

// Activation checkpointing by segments of consecutive layers: only each segment's input is kept
// during the forward pass; backward recomputes a segment's layers (the same dropout masks, from
// the counter-based RNG) just before it needs them. every = segments of 1 layer, every-k = k
// layers, sqrt = ceil(√L) layers.
struct Checkpointing {
  enum class Mode { None, Every, EveryK, Sqrt } mode = Mode::None;
  int64_t k = 1;  // layers per segment for EveryK
  // Layers per segment for a model of `num_layers` layers (num_layers when off).
  int64_t segment_layers(int64_t num_layers) const;
  std::string str() const;  // "none", "every", "every-3", "sqrt"
};
// "none", "every", "every-K" (K >= 1) or "sqrt"; an error names the value otherwise.
Checkpointing parse_checkpointing(const std::string& text);
AttentionKernel parse_attention_kernel(const std::string& text);  // "auto", "fused", "reference"
// The kernel a model runs: Auto is fused on a GPU and the reference path on the CPU.
AttentionKernel resolve_attention_kernel(AttentionKernel requested, Device device);
const char* attention_kernel_name(AttentionKernel kernel);

struct ExecutionOptions {
  DType compute_dtype = DType::F32;  // F32, F16 or BF16 activations (16-bit: CUDA only)
  // f32 GEMMs on a GPU may round their inputs to TF32 (tensor cores; about 1e-3 relative error,
  // much faster). It belongs to the model, not the process: the model hands it to every GEMM it
  // launches (ops::Tf32Scope, ops/linear.h), so two models in one process can differ. GPU only.
  bool allow_tf32 = false;
  AttentionKernel attention = AttentionKernel::Auto;
  Checkpointing checkpointing;
  // Inference on a GPU records the forward pass once per batch shape as a CUDA graph and replays it.
  bool cuda_graphs = true;
};

// The one place that knows what of ExecutionOptions a CPU cannot run. Callers word the error with
// the names their users typed (a config key, a command-line flag, a library option), so each asks
// which part it is: the precision (16-bit compute or TF32) is reported before the attention kernel.
enum class GpuOnlyPart { None, Precision, Attention };
GpuOnlyPart gpu_only_part(const ExecutionOptions& options);
// The precision's name in errors: "tf32" for f32 with TF32 matmuls, else the compute dtype's name.
std::string_view precision_label(const ExecutionOptions& options);

}  // namespace ww::models
