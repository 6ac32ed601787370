#include "kernels/elementwise.h"

#include "kernels/cpu/parallel.h"
#include "wattwise/core/dtype.h"
#include "wattwise/core/error.h"

namespace ww::kernels::cpu {

void residual_forward(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void add_inplace(float* acc, const float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) acc[i] += x[i];
}

void scale_inplace(float* x, float factor, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

void select_token_forward(float* out, const float* inp, int64_t B, int64_t T, int64_t C, int64_t index) {
  for (int64_t b = 0; b < B; ++b) {
    const float* row = inp + (b * T + index) * C;
    for (int64_t c = 0; c < C; ++c) out[b * C + c] = row[c];
  }
}

void select_token_backward(float* dinp, const float* dout, int64_t B, int64_t T, int64_t C, int64_t index) {
  for (int64_t b = 0; b < B; ++b) {
    float* row = dinp + (b * T + index) * C;
    for (int64_t c = 0; c < C; ++c) row[c] += dout[b * C + c];
  }
}

void check_binary_mask(const int32_t* mask, int64_t B, int64_t T) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      if (mask[b * T + t] != 0 && mask[b * T + t] != 1)
        fail("masked_mean: mask value ", mask[b * T + t], " at batch row ", b, ", position ", t,
             " must be 0 (padding) or 1 (real token)");
}

namespace {
int64_t count_real_tokens(const int32_t* mask_row, int64_t T) {
  int64_t count = 0;
  for (int64_t t = 0; t < T; ++t) count += mask_row[t];
  return count;
}
}  // namespace

void masked_mean_forward(float* out, const float* inp, const int32_t* mask, int64_t B, int64_t T, int64_t C) {
  check_binary_mask(mask, B, T);
#pragma omp parallel for schedule(static) if (B * T * C >= kParallelMinWork)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t count = count_real_tokens(mask + b * T, T);
    float* o = out + b * C;
    // Column stripes keep the double accumulators on the stack.
    for (int64_t c0 = 0; c0 < C; c0 += kColumnStripe) {
      const int64_t width = c0 + kColumnStripe < C ? kColumnStripe : C - c0;
      double sum[kColumnStripe] = {};
      for (int64_t t = 0; t < T; ++t) {
        if (!mask[b * T + t]) continue;
        const float* row = inp + (b * T + t) * C + c0;
        for (int64_t j = 0; j < width; ++j) sum[j] += row[j];
      }
      for (int64_t j = 0; j < width; ++j) o[c0 + j] = count ? float(sum[j] / double(count)) : 0.0f;
    }
  }
}

void masked_mean_backward(float* dinp, const float* dout, const int32_t* mask, int64_t B, int64_t T, int64_t C) {
  check_binary_mask(mask, B, T);
#pragma omp parallel for schedule(static) if (B * T * C >= kParallelMinWork)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t count = count_real_tokens(mask + b * T, T);
    for (int64_t t = 0; t < T; ++t) {
      float* row = dinp + (b * T + t) * C;
      const bool real = mask[b * T + t] != 0;
      for (int64_t c = 0; c < C; ++c) row[c] = real ? dout[b * C + c] / float(count) : 0.0f;
    }
  }
}

namespace {

// One element of a CPU cast through float (exact from 16-bit; rounded to nearest even to 16-bit).
float load_as_float(const void* data, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::F16: return half_to_float(static_cast<const uint16_t*>(data)[i]);
    case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(data)[i]);
    default: return static_cast<const float*>(data)[i];
  }
}
void store_from_float(void* data, DType dtype, int64_t i, float value) {
  switch (dtype) {
    case DType::F16: static_cast<uint16_t*>(data)[i] = float_to_half(value); break;
    case DType::BF16: static_cast<uint16_t*>(data)[i] = float_to_bf16(value); break;
    default: static_cast<float*>(data)[i] = value; break;
  }
}

}  // namespace

void cast(void* out, DType out_dtype, const void* inp, DType inp_dtype, int64_t n) {
  if (out == inp) return;  // same dtype and memory
  for (int64_t i = 0; i < n; ++i) store_from_float(out, out_dtype, i, load_as_float(inp, inp_dtype, i));
}

}  // namespace ww::kernels::cpu
