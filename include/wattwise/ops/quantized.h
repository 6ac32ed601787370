#pragma once
// Post-training quantization for inference: quantized weights of a linear layer, the quantized
// GEMMs, fp8 rounding and a calibration observer. Three methods:
// - Int8Weight: symmetric int8 weights, one scale per output channel (max|w[o,:]| / 127); the
//   inputs stay in the activation dtype (the GEMM sees the dequantised weight).
// - Int8 (W8A8): the same weights, inputs quantized to int8 per tensor with a static scale
//   (calibrated max|x| / 127), int32 accumulation, dequantised with bias in the epilogue.
// - Fp8: E4M3 weights and inputs, one scale per tensor each (max|w| / 448, calibrated max|x| / 448),
//   fp32 accumulation. CUDA: cuBLASLt FP8 GEMM (compute capability 8.9+). CPU: an emulation that
//   rounds to the same E4M3 values (the reference the CUDA path is tested against).
// Activation arguments follow the ops conventions (f32 on the CPU; f32, f16 or bf16 on CUDA).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "wattwise/core/tensor.h"

namespace ww::ops {

enum class QuantMethod { Int8Weight, Int8, Fp8 };
const char* quant_method_name(QuantMethod method);  // "int8-weight", "int8", "fp8"

// A linear layer's weight [OC, IC] quantized, with what its GEMM needs; all on one device.
struct QuantizedLinear {
  QuantMethod method = QuantMethod::Int8Weight;
  Tensor weight;        // i8 [OC, IC] (int8 methods) or f8e4m3 [OC, IC] (fp8)
  Tensor weight_scale;  // f32 [OC] (int8 methods, per output channel) or [1] (fp8, per tensor)
  Tensor input_scale;   // f32 [1] (Int8, Fp8: the calibrated static scale); undefined for Int8Weight
  float input_scale_value = 1.0f;  // the same value on the host
  int64_t out_features() const { return weight.size(0); }
  int64_t in_features() const { return weight.size(1); }
};

// Quantizes an f32 weight [OC, IC] (any device; the quantization itself runs on the CPU so every
// device gets the same values) onto `device` (default: the weight's device; an inference-only
// model's masters wait in host memory). input_absmax: the calibrated max|x| of the layer's inputs
// (ignored by Int8Weight; must be finite).
QuantizedLinear quantize_linear(const Tensor& weight, QuantMethod method, float input_absmax = 0.0f,
                                std::optional<Device> device = std::nullopt);

// The weight the quantized GEMM effectively multiplies by: f32 [OC, IC] on the CPU (q · scale).
Tensor dequantized_weight(const QuantizedLinear& q);

// Scratch bytes quantized_linear_forward needs for N rows of `dtype` activations on `device`.
size_t quantized_linear_workspace_bytes(const QuantizedLinear& q, int64_t N, DType dtype, Device device);

// out[N,OC] = quantized(inp[N,IC]) · quantized(weight)ᵀ + bias[OC] (bias optional, in the
// activation dtype). workspace: at least quantized_linear_workspace_bytes (u8 tensor on the device).
// Fp8 on a GPU below compute capability 8.9: an error "fp8 needs compute capability 8.9+ (...)".
void quantized_linear_forward(const Tensor& out, const Tensor& inp, const QuantizedLinear& q, const Tensor& bias,
                              const Tensor& workspace);

// out = e4m3(x / scale) · scale (f32, CPU): the values an fp8 tensor with this scale can hold.
void fp8_round(const Tensor& out, const Tensor& x, float scale);
// E4M3 bits ↔ float (the OCP "fn" variant: ±448 largest, no infinities; saturating, ties to even).
uint8_t float_to_fp8_e4m3(float x);
float fp8_e4m3_to_float(uint8_t bits);

// Calibration: a running max|x| over every tensor observed (max-abs calibration), kept on the
// tensors' device so observing does not synchronise.
class AbsMaxObserver {
 public:
  explicit AbsMaxObserver(Device device);
  void observe(const Tensor& x);  // an activation tensor on the observer's device
  float absmax() const;           // reads the running value back (NaN if any observed value was NaN)
  int64_t tensors_observed() const { return count_; }

 private:
  Tensor value_;  // f32 [1]
  int64_t count_ = 0;
};

// Throws unless `device` can run `method` (fp8: a CUDA GPU of compute capability 8.9+), naming the
// method and the device.
void check_quantization_supported(QuantMethod method, Device device);

}  // namespace ww::ops
