#include "kernels/softmax.h"

#include <cmath>

#include "kernels/cpu/vector_math.h"

namespace ww::kernels::cpu {

// Vectorised: vector_math.h's exp, the max as a SIMD reduction (exact in any order), the sum in
// sum_fixed_order's one order.
void softmax_forward_row(float* out, const float* inp, int64_t cols) {
  float max_value = -INFINITY;
#pragma omp simd reduction(max : max_value)
  for (int64_t j = 0; j < cols; ++j) max_value = inp[j] > max_value ? inp[j] : max_value;
#pragma omp simd
  for (int64_t j = 0; j < cols; ++j) out[j] = exp_approx(inp[j] - max_value);
  const float sum = sum_fixed_order(out, cols);
  float inv_sum = 1.0f / sum;
  for (int64_t j = 0; j < cols; ++j) out[j] *= inv_sum;
}

void softmax_backward_row(float* dinp, const float* out, const float* dout, int64_t cols) {
  // The dot product is complete before dinp is written, so dinp may alias dout.
  float dot = 0.0f;
  for (int64_t j = 0; j < cols; ++j) dot += dout[j] * out[j];
  for (int64_t j = 0; j < cols; ++j) dinp[j] = out[j] * (dout[j] - dot);
}

void softmax_forward(float* out, const float* inp, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) softmax_forward_row(out + r * cols, inp + r * cols, cols);
}

void softmax_backward(float* dinp, const float* out, const float* dout, int64_t rows,
                      int64_t cols) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    softmax_backward_row(dinp + r * cols, out + r * cols, dout + r * cols, cols);
}

}  // namespace ww::kernels::cpu
