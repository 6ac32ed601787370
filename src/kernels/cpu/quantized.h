#pragma once
// CPU references for quantized inference: int8 (symmetric, per output channel) and fp8 E4M3 (per
// tensor) weights in the Hugging Face nn.Linear layout (weight [OC, IC]). Per-element rounding is
// shared with the CUDA kernels (kernels/quant_math.h), so both produce the same quantized values.
#include <cstdint>

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
