#pragma once
// Elementwise map kernels over activations: out[i] = f(inp[i]) and out[i] = f(x[i], y[i]) for a
// functor f on floats, in f32, f16 or bf16 (the activations and the residual add).
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/device_util.cuh"

namespace ww::kernels::cuda {

namespace {

template <typename T, typename F>
__global__ void unary_kernel(T* out, const T* inp, int64_t n, F f) {
  WW_GRID_STRIDE(i, n) out[i] = store_float<T>(f(load_float(inp[i])));
}

template <typename T, typename F>
__global__ void binary_kernel(T* out, const T* x, const T* y, int64_t n, F f) {
  WW_GRID_STRIDE(i, n) out[i] = store_float<T>(f(load_float(x[i]), load_float(y[i])));
}

// 16-bit elements move in 16-byte packs (8 per load/store) when every pointer is 16-byte aligned;
// the packs cover the first n / 8 · 8 elements and the scalar kernel the rest. f32 keeps the
// scalar kernels. Each element is still read and written by one thread only, so out may alias an
// input exactly.
template <typename T>
struct alignas(16) Pack {
  static constexpr int kSize = 16 / int(sizeof(T));
  T v[kSize];
};

template <typename T, typename F>
__global__ void unary_pack_kernel(T* out, const T* inp, int64_t packs, F f) {
  WW_GRID_STRIDE(i, packs) {
    const Pack<T> x = reinterpret_cast<const Pack<T>*>(inp)[i];
    Pack<T> result;
#pragma unroll
    for (int k = 0; k < Pack<T>::kSize; ++k) result.v[k] = store_float<T>(f(load_float(x.v[k])));
    reinterpret_cast<Pack<T>*>(out)[i] = result;
  }
}

template <typename T, typename F>
__global__ void binary_pack_kernel(T* out, const T* x, const T* y, int64_t packs, F f) {
  WW_GRID_STRIDE(i, packs) {
    const Pack<T> a = reinterpret_cast<const Pack<T>*>(x)[i];
    const Pack<T> b = reinterpret_cast<const Pack<T>*>(y)[i];
    Pack<T> result;
#pragma unroll
    for (int k = 0; k < Pack<T>::kSize; ++k) result.v[k] = store_float<T>(f(load_float(a.v[k]), load_float(b.v[k])));
    reinterpret_cast<Pack<T>*>(out)[i] = result;
  }
}

// Elements the pack kernels cover (0 = scalar kernels only).
template <typename T>
int64_t packed_elements(int64_t n, std::initializer_list<const void*> pointers) {
  if constexpr (sizeof(T) != 2) {
    return 0;
  } else {
    for (const void* p : pointers)
      if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return 0;
    return n / Pack<T>::kSize * Pack<T>::kSize;
  }
}

template <typename F>
void launch_unary(void* out, const void* inp, int64_t n, DType dtype, F f, const char* name) {
  if (n == 0) return;
  dispatch_activation(dtype, name, [&](auto tag) {
    using E = decltype(tag);
    E* o = static_cast<E*>(out);
    const E* x = static_cast<const E*>(inp);
    const int64_t packed = packed_elements<E>(n, {out, inp});
    if constexpr (sizeof(E) == 2) {
      const int64_t packs = packed / Pack<E>::kSize;
      if (packs > 0) unary_pack_kernel<E, F><<<grid_for(packs), kThreads, 0, stream()>>>(o, x, packs, f);
    }
    if (packed < n) unary_kernel<E, F><<<grid_for(n - packed), kThreads, 0, stream()>>>(o + packed, x + packed, n - packed, f);
  });
  check_launch(name);
}

template <typename F>
void launch_binary(void* out, const void* x, const void* y, int64_t n, DType dtype, F f, const char* name) {
  if (n == 0) return;
  dispatch_activation(dtype, name, [&](auto tag) {
    using E = decltype(tag);
    E* o = static_cast<E*>(out);
    const E* a = static_cast<const E*>(x);
    const E* b = static_cast<const E*>(y);
    const int64_t packed = packed_elements<E>(n, {out, x, y});
    if constexpr (sizeof(E) == 2) {
      const int64_t packs = packed / Pack<E>::kSize;
      if (packs > 0) binary_pack_kernel<E, F><<<grid_for(packs), kThreads, 0, stream()>>>(o, a, b, packs, f);
    }
    if (packed < n)
      binary_kernel<E, F><<<grid_for(n - packed), kThreads, 0, stream()>>>(o + packed, a + packed, b + packed,
                                                                           n - packed, f);
  });
  check_launch(name);
}

}  // namespace

}  // namespace ww::kernels::cuda
