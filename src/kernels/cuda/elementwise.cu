#include "kernels/elementwise.h"

#include <cstdint>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/element_dropout.cuh"
#include "kernels/cuda/map_kernels.cuh"

namespace ww::kernels::cuda {

// ---------------------------------------------------------------------------------------------
// Residual, accumulate, scale, token selection

namespace {

struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};

template <typename T>
__global__ void scale_kernel(T* x, float factor, int64_t n) {
  WW_GRID_STRIDE(i, n) x[i] = store_float<T>(load_float(x[i]) * factor);
}

template <typename T>
__global__ void select_token_forward_kernel(T* out, const T* inp, int64_t B, int64_t T_len, int64_t C,
                                            int64_t index) {
  WW_GRID_STRIDE(i, B * C) {
    const int64_t b = i / C, c = i % C;
    out[i] = inp[(b * T_len + index) * C + c];
  }
}

template <typename T>
__global__ void select_token_backward_kernel(T* dinp, const T* dout, int64_t B, int64_t T_len, int64_t C,
                                             int64_t index) {
  WW_GRID_STRIDE(i, B * C) {
    const int64_t b = i / C, c = i % C;
    T& element = dinp[(b * T_len + index) * C + c];
    element = store_float<T>(load_float(element) + load_float(dout[i]));
  }
}

}  // namespace

void residual_forward(void* out, const void* a, const void* b, int64_t n, DType dtype,
                      const ElementDropoutArgs& b_dropout) {
  WW_CHECK(b_dropout.p >= 0.0f && b_dropout.p < 1.0f, "dropout probability ", b_dropout.p, " outside [0, 1)");
  if (b_dropout.p == 0.0f) return launch_binary(out, a, b, n, dtype, Add{}, "residual_kernel");
  if (n > 0) launch_dropout_map(out, a, b, n, dtype, b_dropout, "residual_forward (dropout)");
}
void add_inplace(void* acc, const void* x, int64_t n, DType dtype) {
  launch_binary(acc, acc, x, n, dtype, Add{}, "residual_kernel (add_inplace)");
}
void scale_inplace(void* x, float factor, int64_t n, DType dtype) {
  if (n == 0) return;
  dispatch_activation(dtype, "scale_inplace", [&](auto tag) {
    using E = decltype(tag);
    scale_kernel<E><<<grid_for(n), kThreads, 0, stream()>>>(static_cast<E*>(x), factor, n);
  });
  check_launch("scale_kernel");
}
void select_token_forward(void* out, const void* inp, int64_t B, int64_t T, int64_t C, int64_t index, DType dtype) {
  if (B * C == 0) return;
  dispatch_activation(dtype, "select_token_forward", [&](auto tag) {
    using E = decltype(tag);
    select_token_forward_kernel<E><<<grid_for(B * C), kThreads, 0, stream()>>>(
        static_cast<E*>(out), static_cast<const E*>(inp), B, T, C, index);
  });
  check_launch("select_token_forward_kernel");
}
void select_token_backward(void* dinp, const void* dout, int64_t B, int64_t T, int64_t C, int64_t index,
                           DType dtype) {
  if (B * C == 0) return;
  dispatch_activation(dtype, "select_token_backward", [&](auto tag) {
    using E = decltype(tag);
    select_token_backward_kernel<E><<<grid_for(B * C), kThreads, 0, stream()>>>(
        static_cast<E*>(dinp), static_cast<const E*>(dout), B, T, C, index);
  });
  check_launch("select_token_backward_kernel");
}

// ---------------------------------------------------------------------------------------------
// Masked mean

namespace {

// Real tokens of batch row b (mask != 0), counted by the whole block. Records values other than
// 0/1 when `report` is set.
__device__ int64_t count_real_tokens(const int32_t* mask, int64_t b, int64_t T, bool report, int* error) {
  int64_t count = 0;
  for (int64_t t0 = 0; t0 < T; t0 += blockDim.x) {
    const int64_t t = t0 + threadIdx.x;
    const int32_t value = t < T ? mask[b * T + t] : 0;
    if (report && value != 0 && value != 1) record_input_error(error, kBadMaskValue, b, t, value, 0);
    count += __syncthreads_count(value != 0);
  }
  return count;
}

// One block per batch row; each thread sums whole columns over t in order (in double, as the CPU).
template <typename T>
__global__ void masked_mean_forward_kernel(T* out, const T* inp, const int32_t* mask, int64_t T_len, int64_t C,
                                           int* error) {
  const int64_t b = blockIdx.x;
  const int64_t count = count_real_tokens(mask, b, T_len, true, error);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    double sum = 0.0;
    for (int64_t t = 0; t < T_len; ++t)
      if (mask[b * T_len + t]) sum += load_float(inp[(b * T_len + t) * C + c]);
    out[b * C + c] = store_float<T>(count ? float(sum / double(count)) : 0.0f);
  }
}

// One block per (b, t).
template <typename T>
__global__ void masked_mean_backward_kernel(T* dinp, const T* dout, const int32_t* mask, int64_t T_len,
                                            int64_t C, int* error) {
  const int64_t b = blockIdx.x / T_len, t = blockIdx.x % T_len;
  const int64_t count = count_real_tokens(mask, b, T_len, t == 0, error);
  const bool real = mask[b * T_len + t] != 0;
  T* row = dinp + (b * T_len + t) * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
    row[c] = store_float<T>(real ? load_float(dout[b * C + c]) / float(count) : 0.0f);
}

}  // namespace

void masked_mean_forward(void* out, const void* inp, const int32_t* mask, int64_t B, int64_t T, int64_t C,
                         DType dtype) {
  if (B == 0 || C == 0) return;
  dispatch_activation(dtype, "masked_mean_forward", [&](auto tag) {
    using E = decltype(tag);
    masked_mean_forward_kernel<E><<<unsigned(B), kThreads, 0, stream()>>>(
        static_cast<E*>(out), static_cast<const E*>(inp), mask, T, C, input_error_record());
  });
  check_launch_and_inputs("masked_mean_forward_kernel");
}

void masked_mean_backward(void* dinp, const void* dout, const int32_t* mask, int64_t B, int64_t T, int64_t C,
                          DType dtype) {
  if (B * T == 0 || C == 0) return;
  dispatch_activation(dtype, "masked_mean_backward", [&](auto tag) {
    using E = decltype(tag);
    masked_mean_backward_kernel<E><<<unsigned(B * T), kThreads, 0, stream()>>>(
        static_cast<E*>(dinp), static_cast<const E*>(dout), mask, T, C, input_error_record());
  });
  check_launch_and_inputs("masked_mean_backward_kernel");
}

// ---------------------------------------------------------------------------------------------
// Casts

namespace {

template <typename Out, typename In>
__global__ void cast_kernel(Out* out, const In* inp, int64_t n) {
  WW_GRID_STRIDE(i, n) out[i] = store_float<Out>(load_float(inp[i]));  // f16/bf16 → float is exact
}

// Four elements per thread and step (8- and 16-byte accesses): the mixed-precision weight refresh
// casts every parameter each step (124M for GPT-2 small), a DRAM stream.
template <typename Out, typename In>
__global__ void cast4_kernel(Out* out, const In* inp, int64_t quads) {
  WW_GRID_STRIDE(q, quads) {
    float v[4];
    load_floats<4>(inp + 4 * q, v);
    store_floats<4>(out + 4 * q, v);
  }
}

}  // namespace

void cast(void* out, DType out_dtype, const void* inp, DType inp_dtype, int64_t n) {
  if (n == 0) return;
  if (out_dtype == inp_dtype) {
    if (out != inp)
      check(cudaMemcpyAsync(out, inp, size_t(n) * dtype_size(out_dtype), cudaMemcpyDeviceToDevice, stream()),
            "cudaMemcpyAsync (cast)");
    return;
  }
  dispatch_activation(out_dtype, "cast", [&](auto out_tag) {
    using O = decltype(out_tag);
    dispatch_activation(inp_dtype, "cast", [&](auto inp_tag) {
      using I = decltype(inp_tag);
      auto* o = static_cast<O*>(out);
      const auto* x = static_cast<const I*>(inp);
      const bool aligned = aligned_to(o, 4 * sizeof(O)) && aligned_to(x, 4 * sizeof(I));
      const int64_t quads = aligned ? n / 4 : 0, rest = n - 4 * quads;
      if (quads > 0) cast4_kernel<O, I><<<grid_for(quads), kThreads, 0, stream()>>>(o, x, quads);
      if (rest > 0) cast_kernel<O, I><<<grid_for(rest), kThreads, 0, stream()>>>(o + 4 * quads, x + 4 * quads, rest);
    });
  });
  check_launch("cast_kernel");
}

}  // namespace ww::kernels::cuda
