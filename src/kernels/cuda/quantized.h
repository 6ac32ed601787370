#pragma once
// CUDA kernels for quantized inference, on device pointers, launched on kernels::cuda::stream().
// Same contracts as the CPU references in kernels/cpu/quantized.h; the quantized weights and their
// scales are made on the host (the CPU reference) and uploaded, so both devices use the same values.
// Activations (void*) are f32, f16 or bf16, all of one call in `dtype`; scales are float.
#include <cstdint>

#include "wattwise/core/dtype.h"

namespace ww::kernels::cuda {

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
