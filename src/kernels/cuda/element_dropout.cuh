#pragma once
// Element dropout inside the kernels that read an operand (residual adds, the residual LayerNorm,
// dropout itself): the rule of core/rng.h's element dropout applied as the value is loaded, so a
// fused kernel adds exactly what dropout_forward followed by the add would have.
#include <cstdint>

#include "kernels/cuda/device_util.cuh"
#include "kernels/dropout.h"
#include "wattwise/core/rng.h"

namespace ww::kernels::cuda {

namespace {

// Element dropout as the fused kernels apply it to an operand they read: the rule's parameters, the
// stream offset resolved on the device (offset_base is read there: CUDA graphs).
struct DropoutRule {
  bool on;
  uint32_t threshold;
  float scale;
  uint64_t seed, offset;
  __host__ static DropoutRule from(const ElementDropoutArgs& d) {
    return {d.p > 0.0f, element_dropout_threshold(d.p), element_dropout_keep_scale(d.p), d.seed, d.offset};
  }
};
__device__ __forceinline__ uint64_t dropout_stream(const DropoutRule& d, const uint64_t* offset_base) {
  return d.offset + (offset_base ? *offset_base : 0);
}

// Elements e0.. of the operand (values v) as dropout_forward leaves them: kept ones times the keep
// scale rounded to T, dropped ones 0; so a fused kernel adds exactly what dropout followed by the add
// did. One Philox call per block of eight elements (V <= 8 elements from e0 share one block when
// e0 % 8 + V <= 8, always so for the kernels' aligned vectors).
template <typename T, int V>
__device__ __forceinline__ void drop_as_stored(float (&v)[V], int64_t e0, const DropoutRule& d, uint64_t stream) {
  const auto apply = [&](int k, const Philox4& r, int half) {
    v[k] = element_dropout_keeps(r, half, d.threshold) ? load_float(store_float<T>(v[k] * d.scale)) : 0.0f;
  };
  if ((e0 & 7) + V <= 8) {
    const Philox4 r = philox_block(d.seed, stream, uint64_t(e0) >> 3);
#pragma unroll
    for (int k = 0; k < V; ++k) apply(k, r, int((e0 + k) & 7));
  } else {
    for (int k = 0; k < V; ++k) apply(k, philox_block(d.seed, stream, uint64_t(e0 + k) >> 3), int((e0 + k) & 7));
  }
}

}  // namespace

// out = base + dropout(x), or dropout(x) with base null (dropout itself; base may alias out or x),
// in `dtype` (cuda/dropout.cu).
void launch_dropout_map(void* out, const void* base, const void* x, int64_t n, DType dtype,
                        const ElementDropoutArgs& dropout, const char* what);

}  // namespace ww::kernels::cuda
