#pragma once
// Quantized inference: int8 (symmetric, per output channel) and fp8 E4M3 (per tensor) weights in the
// Hugging Face nn.Linear layout (weight [OC, IC]), one kernel file per device (cpu/quantized.cpp,
// cuda/quantized.cu). Per-element rounding is shared (kernels/quant_math.h), and the quantized
// weights and their scales are made on the host by the CPU reference and uploaded, so both devices
// use the same values.
#include <cstdint>

#include "wattwise/core/dtype.h"

namespace ww::kernels::cpu {

// scales[o] = max_i |w[o,i]| / 127 (1 for an all-zero row); q[o,i] = round(w[o,i] / scales[o]).
void quantize_int8_per_channel(int8_t* q, float* scales, const float* w, int64_t OC, int64_t IC);
// q[i] = e4m3(w[i] / scale) with scale = max|w| / 448 (1 for all zeros), returned.
float quantize_fp8_per_tensor(uint8_t* q, const float* w, int64_t n);
// x[i] → e4m3(x[i] / scale) · scale: what an fp8 tensor with this scale holds (values beyond
// 448·scale saturate).
void fp8_round(float* out, const float* x, float scale, int64_t n);
// max_i |x[i]| (NaN propagates).
float absmax(const float* x, int64_t n);

// Weight-only int8: out[N,OC] = inp[N,IC] · (q · scales)ᵀ + bias. workspace: OC·IC floats (the
// dequantised weight, then one sgemm).
void int8_weight_linear_forward(float* out, const float* inp, const int8_t* q, const float* scales,
                                const float* bias, int64_t N, int64_t IC, int64_t OC, float* workspace);

// acc[N,OC] = a[N,IC] · bᵀ (b [OC, IC]) in exact int32 arithmetic (|IC| < 2^17 cannot overflow).
void int8_gemm_int32(int32_t* acc, const int8_t* a, const int8_t* b, int64_t N, int64_t IC, int64_t OC);

// W8A8: inputs quantized per tensor with the static input_scale, int32 accumulation, then
// out = acc · input_scale · scales[o] + bias[o]. Scratch: quantized_inp [N, IC], acc [N, OC].
void int8_linear_forward(float* out, const float* inp, const int8_t* q, const float* scales, float input_scale,
                         const float* bias, int64_t N, int64_t IC, int64_t OC, int8_t* quantized_inp,
                         int32_t* acc);

// fp8 E4M3 emulation: out = (e4m3(inp / input_scale) · e4m3 weight) · input_scale · weight_scale
// + bias, products exact and summed in fp32 (sgemm). workspace: (N + OC)·IC floats.
void fp8_linear_forward(float* out, const float* inp, const uint8_t* q, float weight_scale, float input_scale,
                        const float* bias, int64_t N, int64_t IC, int64_t OC, float* workspace);

}  // namespace ww::kernels::cpu

#ifdef WW_HAVE_CUDA
namespace ww::kernels::cuda {

// Device pointers, launched on kernels::cuda::stream(). Activations (void*) are f32, f16 or bf16,
// all of one call in `dtype`; scales are float.

// *result = max(*result, max_i |x[i]|) (result: one float in device memory; a calibration observer).
void absmax_accumulate(float* result, const void* x, DType dtype, int64_t n);

// Weight-only int8: the weight is dequantised (q · scales[o]) into `dequantised` ([OC, IC] in
// `dtype`), then multiplied by cuBLASLt with fp32 accumulation as linear_forward.
void int8_weight_linear_forward(void* out, const void* inp, const int8_t* q, const float* scales, const void* bias,
                                DType dtype, int64_t N, int64_t IC, int64_t OC, void* dequantised);

// W8A8: inputs quantized per tensor with the static input_scale into quantized_inp [N, IC], then
// cuBLASLt's int8 GEMM (CUBLAS_COMPUTE_32I, int32 into acc [N, OC]; a plain int32 kernel where
// cuBLASLt has no algorithm for the shape), then out = acc · input_scale · scales[o] + bias[o].
void int8_linear_forward(void* out, const void* inp, const int8_t* q, const float* scales, float input_scale,
                         const void* bias, DType dtype, int64_t N, int64_t IC, int64_t OC, int8_t* quantized_inp,
                         int32_t* acc);

// fp8 E4M3 (compute capability 8.9+): inputs rounded to e4m3(x / input_scale) into quantized_inp
// [N, IC], then cuBLASLt's FP8 GEMM with per-tensor scale pointers (weight_scale and
// input_scale_device, one float each in device memory) and fp32 accumulation; the bias is added
// after. input_scale is the same value as *input_scale_device (used by the rounding kernel).
void fp8_linear_forward(void* out, const void* inp, const uint8_t* q, const float* weight_scale,
                        const float* input_scale_device, float input_scale, const void* bias, DType dtype, int64_t N,
                        int64_t IC, int64_t OC, uint8_t* quantized_inp);

// Throws ww::Error when the current GPU cannot run FP8 GEMMs: "fp8 needs compute capability 8.9+
// (<name> has X.Y)".
void check_fp8_supported();

}  // namespace ww::kernels::cuda
#endif
