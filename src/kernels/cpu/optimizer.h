#pragma once
// CPU optimizer kernels over flat fp32 buffers (see include/wattwise/ops/optimizer.h for the
// contract). decay_ranges holds num_ranges [begin, end) pairs, sorted and non-overlapping; null
// with num_ranges < 0 means "every element decays".
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
