#include "kernels/dropout.h"

#include <cstdint>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/element_dropout.cuh"

namespace ww::kernels::cuda {

namespace {

// out = base + dropout(x), or dropout(x) with base null (dropout itself; base may alias out or x):
// a thread per block of eight elements, one Philox call (core/rng.h's element rule, as on the
// CPU), one 16-byte load and store per operand with Vector (two for f32). At four elements per call
// dropout was bound by Philox's multiplies (about twice the time its bytes need at GPT-2's bf16
// activations).
template <typename T, bool Vector>
__global__ void dropout_map_kernel(T* out, const T* base, const T* x, int64_t n, DropoutRule d,
                                   const uint64_t* offset_base) {
  const uint64_t stream = dropout_stream(d, offset_base);
  WW_GRID_STRIDE(block, (n + 7) / 8) {
    const int64_t first = block * 8, count = n - first < 8 ? n - first : 8;
    if (Vector && count == 8) {
      float y[8];
      load_floats<8>(x + first, y);
      drop_as_stored<T, 8>(y, first, d, stream);
      if (base) {
        float b[8];
        load_floats<8>(base + first, b);
#pragma unroll
        for (int j = 0; j < 8; ++j) y[j] += b[j];
      }
      store_floats<8>(out + first, y);
      continue;
    }
    for (int64_t j = 0; j < count; ++j) {
      float y[1] = {load_float(x[first + j])};
      drop_as_stored<T, 1>(y, first + j, d, stream);
      out[first + j] = store_float<T>(base ? load_float(base[first + j]) + y[0] : y[0]);
    }
  }
}

}  // namespace

void launch_dropout_map(void* out, const void* base, const void* x, int64_t n, DType dtype,
                        const ElementDropoutArgs& dropout, const char* what) {
  const DropoutRule rule = DropoutRule::from(dropout);
  dispatch_activation(dtype, what, [&](auto tag) {
    using E = decltype(tag);
    // Every block of eight starts a multiple of 16 bytes past the tensor's start (of 32 for f32,
    // whose two 16-byte halves need 16): aligned when the tensors are 16-byte aligned.
    const bool vector = aligned_to(out, 16) && aligned_to(x, 16) && (!base || aligned_to(base, 16));
    const auto kernel = vector ? dropout_map_kernel<E, true> : dropout_map_kernel<E, false>;
    kernel<<<grid_for((n + 7) / 8), kThreads, 0, stream()>>>(static_cast<E*>(out), static_cast<const E*>(base),
                                                            static_cast<const E*>(x), n, rule, dropout.offset_base);
  });
  check_launch(what);
}

namespace {

void apply_dropout_mask(void* out, const void* inp, int64_t n, DType dtype, float p, uint64_t seed,
                        uint64_t offset, const uint64_t* offset_base) {
  WW_CHECK(p >= 0.0f && p < 1.0f, "dropout probability ", p, " outside [0, 1)");
  if (n == 0) return;
  if (p == 0.0f) {
    if (out != inp)
      check(cudaMemcpyAsync(out, inp, size_t(n) * dtype_size(dtype), cudaMemcpyDeviceToDevice, stream()),
            "cudaMemcpyAsync (dropout p = 0)");
    return;
  }
  launch_dropout_map(out, nullptr, inp, n, dtype, {p, seed, offset, offset_base}, "dropout_kernel");
}

}  // namespace

void dropout_forward(void* out, const void* inp, int64_t n, DType dtype, float p, uint64_t seed, uint64_t offset,
                     const uint64_t* offset_base) {
  apply_dropout_mask(out, inp, n, dtype, p, seed, offset, offset_base);
}
void dropout_backward(void* dinp, const void* dout, int64_t n, DType dtype, float p, uint64_t seed,
                      uint64_t offset, const uint64_t* offset_base) {
  apply_dropout_mask(dinp, dout, n, dtype, p, seed, offset, offset_base);
}

}  // namespace ww::kernels::cuda
