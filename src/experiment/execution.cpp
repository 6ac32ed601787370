#include "wattwise/experiment/execution.h"

#include <cmath>
#include <cstdlib>

#include "wattwise/core/error.h"

namespace ww::experiment {

DType compute_dtype_of(const std::string& precision) {
  if (precision == "fp32" || precision == "tf32") return DType::F32;
  if (precision == "bf16") return DType::BF16;
  if (precision == "fp16") return DType::F16;
  if (quantization_of(precision))
    fail("precision '", precision, "': expected fp32, tf32, bf16 or fp16 here (", precision,
         " is an inference precision: eval, predict, sweep)");
  fail("precision '", precision, "': expected fp32, tf32, bf16 or fp16 (inference also int8-weight, int8 or fp8)");
}

std::optional<ops::QuantMethod> quantization_of(const std::string& precision) {
  if (precision == "int8-weight") return ops::QuantMethod::Int8Weight;
  if (precision == "int8") return ops::QuantMethod::Int8;
  if (precision == "fp8") return ops::QuantMethod::Fp8;
  return std::nullopt;
}

void apply_inference_execution(models::SequenceClassifier& model, const ExecutionChoice& choice) {
  const std::optional<ops::QuantMethod> method = quantization_of(choice.precision);
  if (!method) return apply_execution(model, choice);
  try {
    ops::check_quantization_supported(*method, model.device());
  } catch (const Error& e) {
    fail("precision ", choice.precision, " on ", model.device().str(), ": ", e.what());
  }
  models::ExecutionOptions options;
  options.compute_dtype = model.device().is_cpu() ? DType::F32 : DType::F16;
  options.attention = models::parse_attention_kernel(choice.attention);
  options.checkpointing = models::parse_checkpointing(choice.checkpointing);
  options.cuda_graphs = choice.cuda_graphs;
  model.set_execution(options);
}

models::ExecutionOptions execution_options_of(const ExecutionChoice& choice) {
  models::ExecutionOptions options;
  options.compute_dtype = compute_dtype_of(choice.precision);
  options.allow_tf32 = choice.precision == "tf32";
  options.attention = models::parse_attention_kernel(choice.attention);
  options.checkpointing = models::parse_checkpointing(choice.checkpointing);
  options.cuda_graphs = choice.cuda_graphs;
  return options;
}

void apply_execution(models::ModelRuntime& model, const ExecutionChoice& choice) {
  const models::ExecutionOptions options = execution_options_of(choice);
  if (model.device().is_cpu() && models::gpu_only_part(options) == models::GpuOnlyPart::Precision)
    fail("precision ", choice.precision, " needs a GPU (the CPU computes in fp32); use --precision fp32 with the cpu");
  model.set_execution(options);
}

std::optional<float> parse_loss_scale(const std::string& text) {
  if (text == "dynamic") return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v) || v <= 0)
    fail("loss scale '", text, "': expected dynamic or a number > 0");
  return float(v);
}

}  // namespace ww::experiment
