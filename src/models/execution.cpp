#include "wattwise/models/execution.h"

#include <algorithm>
#include <cmath>

#include "wattwise/core/error.h"

namespace ww::models {

int64_t Checkpointing::segment_layers(int64_t num_layers) const {
  switch (mode) {
    case Mode::None: return std::max<int64_t>(num_layers, 1);
    case Mode::Every: return 1;
    case Mode::EveryK: return std::max<int64_t>(1, std::min(k, num_layers));
    case Mode::Sqrt: return std::max<int64_t>(1, int64_t(std::ceil(std::sqrt(double(num_layers)))));
  }
  return num_layers;
}

std::string Checkpointing::str() const {
  switch (mode) {
    case Mode::None: return "none";
    case Mode::Every: return "every";
    case Mode::EveryK: return "every-" + std::to_string(k);
    case Mode::Sqrt: return "sqrt";
  }
  return "none";
}

Checkpointing parse_checkpointing(const std::string& text) {
  Checkpointing c;
  if (text == "none" || text.empty()) return c;
  if (text == "every") {
    c.mode = Checkpointing::Mode::Every;
    return c;
  }
  if (text == "sqrt") {
    c.mode = Checkpointing::Mode::Sqrt;
    return c;
  }
  if (text.rfind("every-", 0) == 0 && text.size() > 6 && text.size() < 12 &&
      text.find_first_not_of("0123456789", 6) == std::string::npos) {
    c.mode = Checkpointing::Mode::EveryK;
    c.k = std::stoll(text.substr(6));
    if (c.k >= 1) return c;
  }
  fail("activation checkpointing '", text, "': expected none, every, every-K (K >= 1 layers per segment) or sqrt");
}

AttentionKernel parse_attention_kernel(const std::string& text) {
  if (text == "auto") return AttentionKernel::Auto;
  if (text == "fused") return AttentionKernel::Fused;
  if (text == "reference") return AttentionKernel::Reference;
  fail("attention kernel '", text, "': expected auto, fused or reference");
}

AttentionKernel resolve_attention_kernel(AttentionKernel requested, Device device) {
  if (requested != AttentionKernel::Auto) return requested;
  return device.is_cuda() ? AttentionKernel::Fused : AttentionKernel::Reference;
}

const char* attention_kernel_name(AttentionKernel kernel) {
  switch (kernel) {
    case AttentionKernel::Auto: return "auto";
    case AttentionKernel::Fused: return "fused";
    case AttentionKernel::Reference: return "reference";
  }
  return "auto";
}

GpuOnlyPart gpu_only_part(const ExecutionOptions& options) {
  if (options.compute_dtype != DType::F32 || options.allow_tf32) return GpuOnlyPart::Precision;
  if (options.attention == AttentionKernel::Fused) return GpuOnlyPart::Attention;
  return GpuOnlyPart::None;
}

std::string_view precision_label(const ExecutionOptions& options) {
  if (options.compute_dtype == DType::F32 && options.allow_tf32) return "tf32";
  return dtype_name(options.compute_dtype);
}

}  // namespace ww::models
