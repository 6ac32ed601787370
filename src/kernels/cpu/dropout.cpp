#include "kernels/dropout.h"

#include <cstring>

#include "kernels/cpu/parallel.h"
#include "wattwise/core/error.h"
#include "wattwise/core/rng.h"

namespace ww::kernels::cpu {

namespace {

// out[i] = base[i] + keep(i) · x[i] · keep_scale (core/rng.h's element rule; base null: 0 + …, so
// dropout itself). One Philox call per block of eight elements. Dropout forward and backward are the
// same map.
void dropout_map(float* out, const float* base, const float* x, int64_t n, float p, uint64_t seed,
                 uint64_t offset) {
  WW_CHECK(p >= 0.0f && p < 1.0f, "dropout probability ", p, " outside [0, 1)");
  const uint32_t threshold = element_dropout_threshold(p);
  const float scale = element_dropout_keep_scale(p);
  const int64_t num_blocks = (n + 7) / 8;
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork / 8)
  for (int64_t block = 0; block < num_blocks; ++block) {
    const Philox4 r = philox_block(seed, offset, uint64_t(block));
    const int64_t first = block * 8, count = n - first < 8 ? n - first : 8;
    for (int64_t j = 0; j < count; ++j) {
      const float dropped = element_dropout_keeps(r, int(j), threshold) ? x[first + j] * scale : 0.0f;
      out[first + j] = base ? base[first + j] + dropped : dropped;
    }
  }
}

void apply_dropout_mask(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
  WW_CHECK(p >= 0.0f && p < 1.0f, "dropout probability ", p, " outside [0, 1)");
  if (p == 0.0f) {
    if (out != inp && n > 0) std::memmove(out, inp, size_t(n) * sizeof(float));
    return;
  }
  dropout_map(out, nullptr, inp, n, p, seed, offset);
}

}  // namespace

void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
  apply_dropout_mask(out, inp, n, p, seed, offset);
}

void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset) {
  apply_dropout_mask(dinp, dout, n, p, seed, offset);
}

void residual_dropout_forward(float* out, const float* a, const float* b, int64_t n, float p, uint64_t seed,
                              uint64_t offset) {
  dropout_map(out, a, b, n, p, seed, offset);
}

}  // namespace ww::kernels::cpu
