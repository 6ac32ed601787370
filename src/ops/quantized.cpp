#include "wattwise/ops/quantized.h"

#include <cmath>

#include "kernels/quant_math.h"
#include "kernels/quantized.h"
#include "ops/checks.h"
#include "ops/dispatch.h"
#include "ops/extra_checks.h"

namespace ww::ops {

namespace {
constexpr size_t kAlign = 256;  // sub-buffers of a workspace start on 256-byte boundaries (cuBLASLt)
size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

Tensor host_copy(const Tensor& t) { return t.device().is_cpu() ? t : t.to(Device::cpu()); }
Tensor scalar_tensor(float value, Device device) {
  Tensor host = Tensor::from_vector(std::vector<float>{value}, {1});
  return device.is_cpu() ? host : host.to(device);
}
}  // namespace

const char* quant_method_name(QuantMethod method) {
  switch (method) {
    case QuantMethod::Int8Weight: return "int8-weight";
    case QuantMethod::Int8: return "int8";
    case QuantMethod::Fp8: return "fp8";
  }
  return "int8-weight";
}

uint8_t float_to_fp8_e4m3(float x) { return kernels::float_to_e4m3(x); }
float fp8_e4m3_to_float(uint8_t bits) { return kernels::e4m3_to_float(bits); }

void check_quantization_supported(QuantMethod method, Device device) {
  if (method != QuantMethod::Fp8) return;
  if (device.is_cpu())
    fail("fp8 needs compute capability 8.9+ (a GPU; the cpu's fp8 emulation is a test reference, not an "
         "inference path): use int8 or int8-weight on the cpu");
  dispatch("fp8", device, [] {}, WW_CUDA([] { kernels::cuda::check_fp8_supported(); }));
}

QuantizedLinear quantize_linear(const Tensor& weight, QuantMethod method, float input_absmax,
                                std::optional<Device> target) {
  const char* op = "quantize_linear";
  require_f32_cpu_or_cuda(weight, op, "weight");
  require_dim(weight, 2, op, "weight");
  if (method != QuantMethod::Int8Weight && !std::isfinite(input_absmax))
    fail(op, ": the calibrated input range of ", weight.describe(), " is ", input_absmax,
         " (calibration met a non-finite activation)");
  const Device device = target.value_or(weight.device());
  const int64_t OC = weight.size(0), IC = weight.size(1);
  const Tensor w = host_copy(weight);
  QuantizedLinear q;
  q.method = method;
  Tensor values, scales;
  if (method == QuantMethod::Fp8) {
    values = Tensor::empty({OC, IC}, DType::F8E4M3);
    const float scale = kernels::cpu::quantize_fp8_per_tensor(static_cast<uint8_t*>(values.raw()), w.data<float>(),
                                                              OC * IC);
    scales = Tensor::from_vector(std::vector<float>{scale}, {1});
    q.input_scale_value = kernels::scale_for_absmax(input_absmax, kernels::kFp8E4M3Max);
  } else {
    values = Tensor::empty({OC, IC}, DType::I8);
    scales = Tensor::empty({OC}, DType::F32);
    kernels::cpu::quantize_int8_per_channel(values.data<int8_t>(), scales.data<float>(), w.data<float>(), OC, IC);
    q.input_scale_value = kernels::scale_for_absmax(input_absmax, kernels::kInt8Max);
  }
  if (!std::isfinite(q.input_scale_value) || q.input_scale_value <= 0)
    fail(op, ": input scale ", q.input_scale_value, " from the calibrated range ", input_absmax, " is unusable");
  q.weight = device.is_cpu() ? values : values.to(device);
  q.weight_scale = device.is_cpu() ? scales : scales.to(device);
  if (method == QuantMethod::Int8Weight) q.input_scale_value = 1.0f;
  else q.input_scale = scalar_tensor(q.input_scale_value, device);
  return q;
}

Tensor dequantized_weight(const QuantizedLinear& q) {
  const int64_t OC = q.out_features(), IC = q.in_features();
  const Tensor values = host_copy(q.weight), scales = host_copy(q.weight_scale);
  Tensor out = Tensor::empty({OC, IC}, DType::F32);
  float* w = out.data<float>();
  if (q.method == QuantMethod::Fp8) {
    const uint8_t* bits = static_cast<const uint8_t*>(values.raw());
    const float scale = scales.data<float>()[0];
    for (int64_t i = 0; i < OC * IC; ++i) w[i] = kernels::e4m3_to_float(bits[i]) * scale;
  } else {
    const int8_t* v = values.data<int8_t>();
    for (int64_t o = 0; o < OC; ++o)
      for (int64_t i = 0; i < IC; ++i) w[o * IC + i] = float(v[o * IC + i]) * scales.data<float>()[o];
  }
  return out;
}

size_t quantized_linear_workspace_bytes(const QuantizedLinear& q, int64_t N, DType dtype, Device device) {
  const size_t OC = size_t(q.out_features()), IC = size_t(q.in_features()), n = size_t(N);
  switch (q.method) {
    case QuantMethod::Int8Weight:
      return aligned(OC * IC * (device.is_cpu() ? sizeof(float) : dtype_size(dtype)));
    case QuantMethod::Int8:
      return aligned(n * IC) + aligned(n * OC * sizeof(int32_t));
    case QuantMethod::Fp8:
      return device.is_cpu() ? aligned((n + OC) * IC * sizeof(float)) : aligned(n * IC);
  }
  return 0;
}

void quantized_linear_forward(const Tensor& out, const Tensor& inp, const QuantizedLinear& q, const Tensor& bias,
                              const Tensor& workspace) {
  const char* op = "quantized_linear_forward";
  require_activation(inp, op, "inp");
  if (!q.weight.defined()) fail(op, ": the quantized weight is undefined (quantize_linear makes it)");
  const DType expected_weight = q.method == QuantMethod::Fp8 ? DType::F8E4M3 : DType::I8;
  if (q.weight.dtype() != expected_weight || q.weight.dim() != 2)
    fail(op, ": ", quant_method_name(q.method), " weight must be ", dtype_name(expected_weight),
         " [OC, IC], got ", q.weight.describe());
  require_same_device(inp, q.weight, op);
  require_same_device(inp, q.weight_scale, op);
  const int64_t OC = q.out_features(), IC = q.in_features();
  if (IC == 0 ? inp.numel() != 0 : inp.numel() % IC != 0)
    fail(op, ": argument 'inp' must have a multiple of ", IC, " elements (weight is ", q.weight.describe(), "), got ",
         inp.describe());
  const int64_t N = IC == 0 ? 0 : inp.numel() / IC;
  require_activation_like(out, inp, op, "out", "inp");
  require_numel(out, N * OC, op, "out");
  require_same_device(out, inp, op);
  require_no_overlap(out, inp, op, "out", "inp");
  if (bias.defined()) {
    require_activation_like(bias, inp, op, "bias", "inp");
    require_numel(bias, OC, op, "bias");
    require_same_device(bias, inp, op);
    require_no_overlap(out, bias, op, "out", "bias");
  }
  const size_t needed = quantized_linear_workspace_bytes(q, N, inp.dtype(), inp.device());
  if (needed > 0 && (!workspace.defined() || workspace.nbytes() < needed))
    fail(op, ": workspace of ", needed, " bytes needed, got ", workspace.defined() ? workspace.describe() : "none");
  require_same_device(workspace, inp, op);
  if (q.method != QuantMethod::Int8Weight && !q.input_scale.defined())
    fail(op, ": ", quant_method_name(q.method), " needs a calibrated input scale");
  if (N == 0 || OC == 0) return;
  char* ws = workspace.defined() ? static_cast<char*>(workspace.raw()) : nullptr;
  const size_t quantized_inputs_bytes = aligned(size_t(N) * size_t(IC));

  dispatch(
      op, inp.device(),
      [&] {
        const float* b = bias.defined() ? bias.data<float>() : nullptr;
        switch (q.method) {
          case QuantMethod::Int8Weight:
            return kernels::cpu::int8_weight_linear_forward(out.data<float>(), inp.data<float>(),
                                                            q.weight.data<int8_t>(), q.weight_scale.data<float>(), b,
                                                            N, IC, OC, reinterpret_cast<float*>(ws));
          case QuantMethod::Int8:
            return kernels::cpu::int8_linear_forward(out.data<float>(), inp.data<float>(), q.weight.data<int8_t>(),
                                                     q.weight_scale.data<float>(), q.input_scale_value, b, N, IC, OC,
                                                     reinterpret_cast<int8_t*>(ws),
                                                     reinterpret_cast<int32_t*>(ws + quantized_inputs_bytes));
          case QuantMethod::Fp8:
            return kernels::cpu::fp8_linear_forward(out.data<float>(), inp.data<float>(),
                                                    static_cast<const uint8_t*>(q.weight.raw()),
                                                    q.weight_scale.data<float>()[0], q.input_scale_value, b, N, IC,
                                                    OC, reinterpret_cast<float*>(ws));
        }
      },
      WW_CUDA([&] {
        const void* b = bias.defined() ? bias.raw() : nullptr;
        switch (q.method) {
          case QuantMethod::Int8Weight:
            return kernels::cuda::int8_weight_linear_forward(out.raw(), inp.raw(), q.weight.data<int8_t>(),
                                                             q.weight_scale.data<float>(), b, inp.dtype(), N, IC, OC,
                                                             ws);
          case QuantMethod::Int8:
            return kernels::cuda::int8_linear_forward(out.raw(), inp.raw(), q.weight.data<int8_t>(),
                                                      q.weight_scale.data<float>(), q.input_scale_value, b,
                                                      inp.dtype(), N, IC, OC, reinterpret_cast<int8_t*>(ws),
                                                      reinterpret_cast<int32_t*>(ws + quantized_inputs_bytes));
          case QuantMethod::Fp8:
            kernels::cuda::check_fp8_supported();
            return kernels::cuda::fp8_linear_forward(out.raw(), inp.raw(), static_cast<const uint8_t*>(q.weight.raw()),
                                                     q.weight_scale.data<float>(), q.input_scale.data<float>(),
                                                     q.input_scale_value, b, inp.dtype(), N, IC, OC,
                                                     reinterpret_cast<uint8_t*>(ws));
        }
      }));
}

void fp8_round(const Tensor& out, const Tensor& x, float scale) {
  const char* op = "fp8_round";
  require_f32_cpu_or_cuda(x, op, "x");
  require_f32_cpu_or_cuda(out, op, "out");
  if (!x.device().is_cpu() || !out.device().is_cpu()) fail(op, ": runs on the cpu (a test reference)");
  require_numel(out, x.numel(), op, "out");
  if (!(std::isfinite(scale) && scale > 0)) fail(op, ": scale ", scale, " must be finite and > 0");
  kernels::cpu::fp8_round(out.data<float>(), x.data<float>(), scale, x.numel());
}

AbsMaxObserver::AbsMaxObserver(Device device) : value_(Tensor::zeros({1}, DType::F32, device)) {}

void AbsMaxObserver::observe(const Tensor& x) {
  const char* op = "AbsMaxObserver::observe";
  require_activation(x, op, "x");
  require_same_device(x, value_, op);
  ++count_;
  dispatch(
      op, x.device(),
      [&] {
        float& running = value_.data<float>()[0];
        const float m = kernels::cpu::absmax(x.data<float>(), x.numel());
        running = std::isnan(m) || std::isnan(running) ? NAN : std::fmax(running, m);
      },
      WW_CUDA([&] { kernels::cuda::absmax_accumulate(value_.data<float>(), x.raw(), x.dtype(), x.numel()); }));
}

float AbsMaxObserver::absmax() const { return value_.to_float_vector()[0]; }

}  // namespace ww::ops
