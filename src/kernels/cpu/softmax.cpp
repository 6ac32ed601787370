#include "kernels/cpu/softmax.h"

#include <cmath>

namespace ww::kernels::cpu {

void softmax_forward_row(float* out, const float* inp, int64_t cols) {
  float max_value = -INFINITY;
  for (int64_t j = 0; j < cols; ++j) max_value = std::fmax(max_value, inp[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j < cols; ++j) {
    float e = std::exp(inp[j] - max_value);
    out[j] = e;
    sum += e;
  }
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
