#pragma once
// Per-element quantization shared by the CPU and CUDA kernels, so both backends round to the same
// int8 and fp8 values (the CPU is the reference the CUDA kernels are tested against).
#include <cmath>
#include <cstdint>

#include "wattwise/core/dtype.h"
#include "wattwise/core/host_device.h"

namespace ww::kernels {

// Symmetric int8 keeps ±127 (not -128) so the range is symmetric around zero.
constexpr float kInt8Max = 127.0f;
// Largest finite E4M3 value (the "fn" variant of OCP FP8: no infinities, 0x7f/0xff are NaN).
constexpr float kFp8E4M3Max = 448.0f;

// round(x / scale) clamped to [-127, 127], ties to even (rintf under the default rounding mode).
WW_HOST_DEVICE inline int8_t quantize_int8(float x, float inv_scale) {
  float q = rintf(x * inv_scale);
  q = q > kInt8Max ? kInt8Max : q < -kInt8Max ? -kInt8Max : q;
  return int8_t(q);  // NaN inputs never reach here in practice; they would become 0 through the clamp
}

// float → E4M3 bits, round to nearest even, saturating to ±448 (as __NV_SATFINITE); NaN → 0x7f.
WW_HOST_DEVICE inline uint8_t float_to_e4m3(float x) {
  const uint32_t bits = float_to_bits(x);
  const uint8_t sign = uint8_t((bits >> 24) & 0x80u);
  const float a = fabsf(x);
  if (a != a) return uint8_t(0x7f | sign);
  if (a >= kFp8E4M3Max) return uint8_t(0x7e | sign);
  if (a < 0.015625f) {
    // Subnormals (and zero): multiples of 2^-9. 8 · 2^-9 rounds up into the smallest normal,
    // whose bits (exponent 1, mantissa 0) are also 8.
    return uint8_t(sign | uint8_t(rintf(a * 512.0f)));
  }
  int exponent = int((float_to_bits(a) >> 23) & 0xffu) - 127;  // floor(log2 a), in [-6, 8]
  // a / 2^(exponent-3) is in [8, 16): the 3 mantissa bits after rounding; exact (a power of two).
  int mantissa = int(rintf(a * bits_to_float(uint32_t(127 + 3 - exponent) << 23)));
  if (mantissa == 16) mantissa = 8, ++exponent;
  // exponent ≤ 8 with mantissa ≤ 14 here (a < 448 rounds to at most 448 = 1.75 · 2^8).
  return uint8_t(sign | uint8_t((exponent + 7) << 3) | uint8_t(mantissa - 8));
}

WW_HOST_DEVICE inline float e4m3_to_float(uint8_t b) {
  const float sign = (b & 0x80u) ? -1.0f : 1.0f;
  const int exponent = (b >> 3) & 0xf, mantissa = b & 0x7;
  if (exponent == 15 && mantissa == 7) return bits_to_float(0x7fc00000u);
  if (exponent == 0) return sign * float(mantissa) * 0.001953125f;  // · 2^-9
  return sign * (1.0f + float(mantissa) * 0.125f) * bits_to_float(uint32_t(127 + exponent - 7) << 23);
}

// The scale that maps a calibrated max-abs onto the format's largest value (1 for an all-zero input).
WW_HOST_DEVICE inline float scale_for_absmax(float absmax, float format_max) {
  return absmax > 0.0f && absmax == absmax ? absmax / format_max : 1.0f;
}

}  // namespace ww::kernels
