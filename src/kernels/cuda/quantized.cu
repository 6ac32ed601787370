// Quantized linear layers on the GPU. Layout as in linear.cu: cuBLASLt is column-major, so
// out[N,OC] = inp·Wᵀ is computed as outᵀ[OC,N] = W·inpᵀ with the weight's row-major buffer read
// column-major as Wᵀ [IC,OC] (transposed) and inp's as inpᵀ [IC,N]: the "TN" layout that cuBLASLt's
// int8 and FP8 kernels require.
#include "kernels/quantized.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "kernels/cuda/blas.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/linear.h"
#include "kernels/quant_math.h"

namespace ww::kernels::cuda {

namespace {

// Owns the cuBLASLt descriptors of one call.
struct LtDescriptors {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  ~LtDescriptors() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

cudaDataType_t activation_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: fail("quantized linear (CUDA): output dtype ", dtype_name(dtype), " (expected f32, f16 or bf16)");
  }
}

// Largest power of two (at most 256) dividing the address.
uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

// D = op(A)·op(B) for the layouts and operations already set on `call` (D written in place of C).
// Returns false when cuBLASLt has no algorithm for it.
bool lt_matmul_tn(LtDescriptors& call, const void* A, const void* B, void* D, const void* alpha, const void* beta) {
  const BlasContext& ctx = blas_context();
  const uint64_t workspace = ctx.lt_workspace_bytes;
  check_cublas(cublasLtMatmulPreferenceCreate(&call.preference), "cublasLtMatmulPreferenceCreate");
  check_cublas(cublasLtMatmulPreferenceSetAttribute(call.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &workspace, sizeof(workspace)),
               "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
  // cuBLASLt assumes 256-byte aligned operands unless told otherwise.
  const cublasLtMatmulPreferenceAttributes_t alignment_attributes[] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  const void* operands[] = {A, B, D, D};
  for (int i = 0; i < 4; ++i) {
    const uint32_t alignment = alignment_of(operands[i]);
    check_cublas(cublasLtMatmulPreferenceSetAttribute(call.preference, alignment_attributes[i], &alignment,
                                                      sizeof(alignment)),
                 "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)");
  }
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(ctx.lt_handle, call.desc, call.a, call.b, call.c,
                                                               call.c, call.preference, 1, &heuristic, &found);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found == 0)) return false;
  check_cublas(status, "cublasLtMatmulAlgoGetHeuristic");
  check_cublas(cublasLtMatmul(ctx.lt_handle, call.desc, alpha, A, call.a, B, call.b, beta, D, call.c, D, call.c,
                              &heuristic.algo, ctx.lt_workspace, ctx.lt_workspace_bytes, stream()),
               "cublasLtMatmul");
  return true;
}

void set_tn(const LtDescriptors& call) {
  const cublasOperation_t op_a = CUBLAS_OP_T, op_b = CUBLAS_OP_N;
  check_cublas(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)),
               "cublasLtMatmulDescSetAttribute(TRANSA)");
  check_cublas(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)),
               "cublasLtMatmulDescSetAttribute(TRANSB)");
}

__device__ inline void atomic_max_nonnegative(float* address, float value) {
  // Non-negative floats order like their bit patterns as signed ints.
  atomicMax(reinterpret_cast<int*>(address), __float_as_int(value));
}

template <typename T>
__global__ void absmax_kernel(float* result, const T* x, int64_t n) {
  float m = 0.0f;
  int nan = 0;
  WW_GRID_STRIDE(i, n) {
    const float v = fabsf(load_float(x[i]));
    if (v != v) nan = 1;
    else m = fmaxf(m, v);
  }
  const int any_nan = __syncthreads_or(nan);
  m = block_max(m);
  // A positive NaN's bits order above every finite value and infinity: once seen, it stays (a
  // calibration that met NaN must not pass silently).
  if (threadIdx.x == 0) atomic_max_nonnegative(result, any_nan ? __int_as_float(0x7fc00000) : m);
}

template <typename T>
__global__ void dequantize_int8_kernel(T* out, const int8_t* q, const float* scales, int64_t OC, int64_t IC) {
  WW_GRID_STRIDE(i, OC * IC) out[i] = store_float<T>(float(q[i]) * scales[i / IC]);
}

template <typename T>
__global__ void quantize_int8_kernel(int8_t* out, const T* x, float inv_scale, int64_t n) {
  WW_GRID_STRIDE(i, n) out[i] = quantize_int8(load_float(x[i]), inv_scale);
}

template <typename T>
__global__ void quantize_fp8_kernel(uint8_t* out, const T* x, float inv_scale, int64_t n) {
  WW_GRID_STRIDE(i, n) out[i] = float_to_e4m3(load_float(x[i]) * inv_scale);
}

// acc[n, o] = Σ_i a[n, i] · b[o, i] in int32: a 16×16 tile per block through shared memory (the
// fallback where cuBLASLt has no int8 algorithm for a shape).
constexpr int kTile = 16;
__global__ void int8_gemm_kernel(int32_t* acc, const int8_t* a, const int8_t* b, int64_t N, int64_t IC, int64_t OC) {
  __shared__ int32_t a_tile[kTile][kTile + 1], b_tile[kTile][kTile + 1];
  const int64_t n = int64_t(blockIdx.y) * kTile + threadIdx.y;
  const int64_t o = int64_t(blockIdx.x) * kTile + threadIdx.x;
  const int64_t b_row = int64_t(blockIdx.x) * kTile + threadIdx.y;
  int32_t sum = 0;
  for (int64_t i0 = 0; i0 < IC; i0 += kTile) {
    const int64_t i = i0 + threadIdx.x;
    a_tile[threadIdx.y][threadIdx.x] = n < N && i < IC ? int32_t(a[n * IC + i]) : 0;
    b_tile[threadIdx.y][threadIdx.x] = b_row < OC && i < IC ? int32_t(b[b_row * IC + i]) : 0;
    __syncthreads();
    for (int k = 0; k < kTile; ++k) sum += a_tile[threadIdx.y][k] * b_tile[threadIdx.x][k];
    __syncthreads();
  }
  if (n < N && o < OC) acc[n * OC + o] = sum;
}

template <typename T>
__global__ void int8_epilogue_kernel(T* out, const int32_t* acc, const float* scales, float input_scale, const T* bias,
                                     int64_t N, int64_t OC) {
  WW_GRID_STRIDE(i, N * OC) {
    const int64_t o = i % OC;
    out[i] = store_float<T>(float(acc[i]) * (input_scale * scales[o]) + (bias ? load_float(bias[o]) : 0.0f));
  }
}

template <typename T>
__global__ void add_bias_kernel(T* out, const T* bias, int64_t N, int64_t OC) {
  WW_GRID_STRIDE(i, N * OC) out[i] = store_float<T>(load_float(out[i]) + load_float(bias[i % OC]));
}

void add_bias(void* out, const void* bias, DType dtype, int64_t N, int64_t OC) {
  dispatch_activation(dtype, "fp8_linear_forward (bias)", [&](auto tag) {
    using E = decltype(tag);
    add_bias_kernel<E><<<grid_for(N * OC), kThreads, 0, stream()>>>(static_cast<E*>(out),
                                                                     static_cast<const E*>(bias), N, OC);
  });
  check_launch("add_bias_kernel");
}

}  // namespace

void absmax_accumulate(float* result, const void* x, DType dtype, int64_t n) {
  if (n == 0) return;
  dispatch_activation(dtype, "absmax_accumulate", [&](auto tag) {
    using E = decltype(tag);
    absmax_kernel<E><<<grid_for(n), kThreads, 0, stream()>>>(result, static_cast<const E*>(x), n);
  });
  check_launch("absmax_kernel");
}

void int8_weight_linear_forward(void* out, const void* inp, const int8_t* q, const float* scales, const void* bias,
                                DType dtype, int64_t N, int64_t IC, int64_t OC, void* dequantised) {
  if (OC * IC > 0) {
    dispatch_activation(dtype, "int8_weight_linear_forward", [&](auto tag) {
      using E = decltype(tag);
      dequantize_int8_kernel<E><<<grid_for(OC * IC), kThreads, 0, stream()>>>(static_cast<E*>(dequantised), q,
                                                                               scales, OC, IC);
    });
    check_launch("dequantize_int8_kernel");
  }
  linear_forward(out, inp, dequantised, bias, dtype, N, IC, OC, OC, GemmPrecision::Fp32);
}

void int8_linear_forward(void* out, const void* inp, const int8_t* q, const float* scales, float input_scale,
                         const void* bias, DType dtype, int64_t N, int64_t IC, int64_t OC, int8_t* quantized_inp,
                         int32_t* acc) {
  if (N == 0 || OC == 0) return;
  dispatch_activation(dtype, "int8_linear_forward", [&](auto tag) {
    using E = decltype(tag);
    if (N * IC > 0)
      quantize_int8_kernel<E><<<grid_for(N * IC), kThreads, 0, stream()>>>(quantized_inp, static_cast<const E*>(inp),
                                                                           1.0f / input_scale, N * IC);
  });
  check_launch("quantize_int8_kernel");

  // cuBLASLt's int8 tensor-core kernels want TN, leading dimensions a multiple of 4 and aligned
  // buffers; otherwise (or when it declines) the plain kernel computes the same int32 sums.
  bool done = false;
  if (IC % 4 == 0 && OC % 4 == 0 && IC > 0) {
    LtDescriptors call;
    check_cublas(cublasLtMatmulDescCreate(&call.desc, CUBLAS_COMPUTE_32I, CUDA_R_32I), "cublasLtMatmulDescCreate");
    set_tn(call);
    check_cublas(cublasLtMatrixLayoutCreate(&call.a, CUDA_R_8I, uint64_t(IC), uint64_t(OC), IC),
                 "cublasLtMatrixLayoutCreate(A)");
    check_cublas(cublasLtMatrixLayoutCreate(&call.b, CUDA_R_8I, uint64_t(IC), uint64_t(N), IC),
                 "cublasLtMatrixLayoutCreate(B)");
    check_cublas(cublasLtMatrixLayoutCreate(&call.c, CUDA_R_32I, uint64_t(OC), uint64_t(N), OC),
                 "cublasLtMatrixLayoutCreate(C)");
    const int32_t alpha = 1, beta = 0;
    done = lt_matmul_tn(call, q, quantized_inp, acc, &alpha, &beta);
  }
  if (!done) {
    const dim3 grid(unsigned((OC + kTile - 1) / kTile), unsigned((N + kTile - 1) / kTile));
    int8_gemm_kernel<<<grid, dim3(kTile, kTile), 0, stream()>>>(acc, quantized_inp, q, N, IC, OC);
    check_launch("int8_gemm_kernel");
  }
  dispatch_activation(dtype, "int8_linear_forward (epilogue)", [&](auto tag) {
    using E = decltype(tag);
    int8_epilogue_kernel<E><<<grid_for(N * OC), kThreads, 0, stream()>>>(
        static_cast<E*>(out), acc, scales, input_scale, static_cast<const E*>(bias), N, OC);
  });
  check_launch("int8_epilogue_kernel");
}

void check_fp8_supported() {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  // Asked once per device (every fp8 forward checks, also while a CUDA graph is being recorded).
  static std::mutex mutex;
  static std::map<int, std::string> problems;  // device → "" (fine) or the error
  std::lock_guard<std::mutex> lock(mutex);
  auto it = problems.find(device);
  if (it == problems.end()) {
    cudaDeviceProp props{};
    check(cudaGetDeviceProperties(&props, device), "cudaGetDeviceProperties");
    std::string problem;
    if (props.major * 10 + props.minor < 89)
      problem = "fp8 needs compute capability 8.9+ (" + std::string(props.name) + " has " +
                std::to_string(props.major) + "." + std::to_string(props.minor) + ")";
    it = problems.emplace(device, problem).first;
  }
  if (!it->second.empty()) fail(it->second);
}

void fp8_linear_forward(void* out, const void* inp, const uint8_t* q, const float* weight_scale,
                        const float* input_scale_device, float input_scale, const void* bias, DType dtype, int64_t N,
                        int64_t IC, int64_t OC, uint8_t* quantized_inp) {
  if (N == 0 || OC == 0) return;
  if (IC % 16 != 0 || OC % 16 != 0)
    fail("fp8 linear: cuBLASLt's FP8 GEMM needs input and output features that are multiples of 16, got ", IC,
         " and ", OC);
  dispatch_activation(dtype, "fp8_linear_forward", [&](auto tag) {
    using E = decltype(tag);
    quantize_fp8_kernel<E><<<grid_for(N * IC), kThreads, 0, stream()>>>(quantized_inp, static_cast<const E*>(inp),
                                                                         1.0f / input_scale, N * IC);
  });
  check_launch("quantize_fp8_kernel");

  LtDescriptors call;
  check_cublas(cublasLtMatmulDescCreate(&call.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  set_tn(call);
  // D = scale_A · scale_B · (A·B): A is the weight (its per-tensor scale), B the inputs.
  check_cublas(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &weight_scale,
                                              sizeof(weight_scale)),
               "cublasLtMatmulDescSetAttribute(A_SCALE_POINTER)");
  check_cublas(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &input_scale_device,
                                              sizeof(input_scale_device)),
               "cublasLtMatmulDescSetAttribute(B_SCALE_POINTER)");
  const cudaDataType_t out_type = activation_type(dtype);
  check_cublas(cublasLtMatrixLayoutCreate(&call.a, CUDA_R_8F_E4M3, uint64_t(IC), uint64_t(OC), IC),
               "cublasLtMatrixLayoutCreate(A)");
  check_cublas(cublasLtMatrixLayoutCreate(&call.b, CUDA_R_8F_E4M3, uint64_t(IC), uint64_t(N), IC),
               "cublasLtMatrixLayoutCreate(B)");
  check_cublas(cublasLtMatrixLayoutCreate(&call.c, out_type, uint64_t(OC), uint64_t(N), OC),
               "cublasLtMatrixLayoutCreate(C)");
  const float alpha = 1.0f, beta = 0.0f;
  if (!lt_matmul_tn(call, q, quantized_inp, out, &alpha, &beta))
    fail("cuBLASLt has no FP8 algorithm for a ", OC, "x", N, "x", IC, " GEMM (E4M3 inputs, ", dtype_name(dtype),
         " output, TN layout)");
  if (bias) add_bias(out, bias, dtype, N, OC);
}

}  // namespace ww::kernels::cuda
