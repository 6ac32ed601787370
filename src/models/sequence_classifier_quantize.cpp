// SequenceClassifier's post-training quantization of its encoder linears (quantize_for_inference):
// calibration forwards, the quantized copies, and the linear layers that run them. The rest of the
// model is in sequence_classifier.cpp.
#include <algorithm>

#include "wattwise/models/sequence_classifier.h"
#include "wattwise/ops/ops.h"

namespace ww::models {

void SequenceClassifier::check_quantized_weights() const {
  if (quant_method_ && quantized_version_ != params_.version())
    fail("the weights changed after quantization (", ops::quant_method_name(*quant_method_),
         "): quantize the model again");
}

void SequenceClassifier::prepare_weights_for_forward() {
  // Calibration forwards run before quantizing, which still needs the masters.
  if (inference_only() && !observers_.empty()) return ensure_inference_weights();
  ModelRuntime::prepare_weights_for_forward();
}

Tensor SequenceClassifier::encoder_linear_weight(int64_t l, EncoderLinear which) const {
  const LayerNames& n = layer_names_[size_t(l)];
  const int64_t C = config_.hidden_size;
  switch (which) {
    case kQkv: return gemm_weight_span(n.qkv_first_w, n.qkv_last_w, {3 * C, C});
    case kAttentionOut: return gemm_weight(n.attn_out_w);
    case kFfnIn: return gemm_weight(n.ffn_in_w);
    case kFfnOut: return gemm_weight(n.ffn_out_w);
    default: break;
  }
  fail("encoder linear ", int(which), " does not exist");
}

void SequenceClassifier::encoder_linear(int64_t l, EncoderLinear which, const Tensor& out, const Tensor& inp,
                                        const Tensor& b) {
  const size_t index = size_t(l * kLinearsPerLayer + which);
  if (!quantized_.empty() && !act_.training) {
    // The dense weight is not looked up: an inference-only model no longer has it.
    ops::quantized_linear_forward(out, inp, quantized_[index], b, act_.quant_workspace);
    return;
  }
  if (!observers_.empty()) observers_[index].observe(inp);
  ops::linear_forward(out, inp, encoder_linear_weight(l, which), b);
}

void SequenceClassifier::clear_quantization() {
  if (quant_method_ && prepared_for_inference())
    fail("clear_quantization(): this inference-only model released its f32 master weights, so the quantized "
         "linears (", ops::quant_method_name(*quant_method_), ") are all it has; load the model again");
  quant_method_.reset();
  quantized_.clear();
  observers_.clear();
  replan_activations();  // the quantized GEMMs' workspace, and new recordings
  drop_forward_graphs();
}

void SequenceClassifier::quantize_for_inference(const QuantizationOptions& options) {
  if (prepared_for_inference())
    fail("quantize_for_inference(): this inference-only model already ran (or was prepared) and released the f32 "
         "master weights quantization starts from; quantize it before its first forward");
  clear_quantization();
  const ops::QuantMethod method = options.method;
  const char* name = ops::quant_method_name(method);
  ops::check_quantization_supported(method, device_);
  const int64_t layers = config_.num_layers, C = config_.hidden_size;
  std::vector<float> input_absmax(size_t(layers * kLinearsPerLayer), 0.0f);
  if (method != ops::QuantMethod::Int8Weight) {
    if (options.calibration.empty())
      fail("quantization ", name, ": needs calibration batches (its input scales are static, from max |x| over them)");
    // Calibrate on the unquantized model, without CUDA graphs (observing is per call).
    for (int64_t i = 0; i < layers * kLinearsPerLayer; ++i) observers_.emplace_back(device_);
    const bool graphs_on = exec_.cuda_graphs;
    exec_.cuda_graphs = false;
    replan_activations();
    try {
      for (const Batch& batch : options.calibration) forward(batch, /*training=*/false);
    } catch (...) {
      exec_.cuda_graphs = graphs_on;
      observers_.clear();
      replan_activations();
      throw;
    }
    exec_.cuda_graphs = graphs_on;
    replan_activations();
    for (size_t i = 0; i < observers_.size(); ++i) input_absmax[i] = observers_[i].absmax();
    observers_.clear();
  }
  std::vector<ops::QuantizedLinear> quantized;
  for (int64_t l = 0; l < layers; ++l) {
    const LayerNames& n = layer_names_[size_t(l)];
    const Tensor masters[kLinearsPerLayer] = {params_.span(n.qkv_first_w, n.qkv_last_w, {3 * C, C}, false),
                                              params_.value(n.attn_out_w), params_.value(n.ffn_in_w),
                                              params_.value(n.ffn_out_w)};
    for (int which = 0; which < kLinearsPerLayer; ++which) {
      const float absmax = input_absmax[size_t(l * kLinearsPerLayer + which)];
      try {
        // An inference-only GPU model's masters are in host memory; the quantized copy goes to the device.
        quantized.push_back(ops::quantize_linear(masters[which], method, absmax, device_));
      } catch (const Error& e) {
        fail("quantization ", name, ", layer ", l, " linear ", which, ": ", e.what());
      }
    }
  }
  quantized_ = std::move(quantized);
  quant_method_ = method;
  quantized_version_ = params_.version();
  replan_activations();
  drop_forward_graphs();
}

}  // namespace ww::models
