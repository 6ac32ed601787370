#pragma once
// The execution knobs every command shares (train, eval, predict): precision, attention kernel
// and activation checkpointing, parsed from the names users type.
#include <optional>
#include <string>

#include "wattwise/models/execution.h"
#include "wattwise/models/runtime.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/ops/quantized.h"

namespace ww::experiment {

struct ExecutionChoice {
  std::string precision = "fp32";      // fp32, tf32, bf16, fp16; inference also int8-weight, int8, fp8
  std::string attention = "auto";      // auto, fused, reference
  std::string checkpointing = "none";  // none, every, every-K, sqrt
  bool cuda_graphs = true;             // replay recorded CUDA graphs for repeated shapes (GPU)
};

// fp32 → f32, tf32 → f32 (TF32 matmuls), bf16, fp16; anything else is an error naming it (the
// quantized precisions are inference only: see apply_inference_execution).
DType compute_dtype_of(const std::string& precision);

// The post-training quantization a precision name stands for (int8-weight, int8, fp8), or nullopt.
std::optional<ops::QuantMethod> quantization_of(const std::string& precision);

// Sets the model's execution options (TF32 included: tf32 is f32 with TF32 matmuls); errors
// (16-bit, TF32 or fused attention on a CPU, unknown names, a quantized precision) say which knob
// is at fault.
void apply_execution(models::ModelRuntime& model, const ExecutionChoice& choice);
// The model options a choice names (no device checks).
models::ExecutionOptions execution_options_of(const ExecutionChoice& choice);

// apply_execution for eval and predict, which also take the quantized precisions: int8-weight and
// int8 (CPU and GPU), fp8 (GPU of compute capability 8.9+; anything else is an error naming the
// precision and the device). Their non-quantized parts run in fp32 on the CPU and fp16 on a GPU.
// The quantization itself needs calibration data: experiment/quantize.h does it.
void apply_inference_execution(models::SequenceClassifier& model, const ExecutionChoice& choice);

// "dynamic" → nullopt; otherwise a fixed scale > 0 (error naming the value).
std::optional<float> parse_loss_scale(const std::string& text);

}  // namespace ww::experiment
