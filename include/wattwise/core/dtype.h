#pragma once
// Element types. fp32/fp16/bf16 carry model weights and activations; fp8 and int8 are reserved for
// quantized inference; integer types carry token ids, labels and masks.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "wattwise/core/host_device.h"

namespace ww {

enum class DType : uint8_t { F32, F16, BF16, F8E4M3, F8E5M2, I8, U8, I32, I64, BOOL };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);         // "f32", "f16", "bf16", ...
std::string_view safetensors_dtype_name(DType d);  // "F32", "F16", "BF16", "F8_E4M3", ...
// Parses our names and safetensors' names; throws ww::Error naming the bad value.
DType parse_dtype(std::string_view name);
bool is_floating(DType dtype);

// IEEE half and bfloat16 stored as raw bits, converted with round-to-nearest-even.
struct half_bits {
  uint16_t bits;
};
struct bf16_bits {
  uint16_t bits;
};

WW_HOST_DEVICE inline float bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
WW_HOST_DEVICE inline uint32_t float_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

WW_HOST_DEVICE inline float bf16_to_float(uint16_t b) { return bits_to_float(uint32_t(b) << 16); }

WW_HOST_DEVICE inline uint16_t float_to_bf16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return uint16_t((u + rounding) >> 16);
}

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

}  // namespace ww
