#pragma once
// Optimizer steps (AdamW/Adam, SGD) and the gradient norm over flat fp32 buffers (see
// include/wattwise/ops/optimizer.h for the contract), one kernel file per device
// (cpu/optimizer.cpp, cuda/optimizer.cu), both running the per-element formulas of
// kernels/optimizer_math.h. decay_ranges holds num_ranges [begin, end) pairs, sorted and
// non-overlapping; null with num_ranges < 0 means "every element decays".
#include <cstdint>

#include "kernels/optimizer_math.h"

namespace ww::kernels::cpu {

void adamw_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t n,
                const int64_t* decay_ranges, int64_t num_ranges, const AdamScalars& scalars);

void sgd_step(float* params, const float* grads, float* momentum_buffer, int64_t n,
              const int64_t* decay_ranges, int64_t num_ranges, const SgdScalars& scalars);

// Σ g² in double over fixed-size chunks summed in order: deterministic for any thread count.
double sum_of_squares(const float* values, int64_t n);

}  // namespace ww::kernels::cpu

#ifdef WW_HAVE_CUDA
namespace ww::kernels::cuda {

// One fused pass per step on device buffers. decay_ranges is a device array; the ranges are not
// validated on the host (that would need a copy back every step); a bad range can only change
// which elements decay, never index out of bounds.
void adamw_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t n,
                const int64_t* decay_ranges, int64_t num_ranges, const AdamScalars& scalars);

void sgd_step(float* params, const float* grads, float* momentum_buffer, int64_t n,
              const int64_t* decay_ranges, int64_t num_ranges, const SgdScalars& scalars);

// Device-decided step (see StepControl): Σg² into per-block partials (a fixed grid), then one block
// sums them in order and fills the outcome and the clipped grad_scale into *control, then the
// update kernel reads it (and returns at once when the step is not applied). No host wait.
// partials must hold norm_partials_count(n) doubles.
// With `norm_summed` the norm's Σg² is already in partials[0] (a sharded step: this rank's part's
// sum from sum_of_squares_into, then the ranks' sums added up) and only the outcome is computed.
unsigned norm_partials_count(int64_t n);
void adamw_step_controlled(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t n,
                           const int64_t* decay_ranges, int64_t num_ranges, StepControl* control,
                           double* partials, bool small_lerp_weight, bool norm_summed = false);
void sgd_step_controlled(float* params, const float* grads, float* momentum_buffer, int64_t n,
                         const int64_t* decay_ranges, int64_t num_ranges, StepControl* control,
                         double* partials, bool norm_summed = false);
// Σg² of n values into partials[0] (partials holds norm_partials_count(n) doubles), in the fixed
// order of sum_of_squares. No host wait.
void sum_of_squares_into(double* partials, const float* grads, int64_t n);

// Σ g² in double: per-block partials (a fixed grid that depends only on n), then one block adds
// them in a fixed order, so the result is the same on every run and GPU. Waits for the result.
double sum_of_squares(const float* values, int64_t n);

}  // namespace ww::kernels::cuda
#endif
