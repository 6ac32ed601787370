// Built with -fno-math-errno (CMakeLists.txt): sqrt would set errno only for negative inputs,
// which v = β2·v + (1−β2)·g² never is, and the errno path keeps the Adam loop from vectorizing.
#include "kernels/optimizer.h"

#include <algorithm>
#include <vector>

namespace ww::kernels::cpu {
namespace {

// Work is split into fixed chunks; each chunk walks the decay ranges that overlap it, so the inner
// loops run over plain [begin, end) spans with a constant decay flag and vectorize.
constexpr int64_t kChunk = 1 << 14;

// Calls body(begin, end, decay) for consecutive spans covering [chunk_begin, chunk_end).
template <typename Body>
void for_each_span(int64_t chunk_begin, int64_t chunk_end, const int64_t* ranges,
                   int64_t num_ranges, Body&& body) {
  if (num_ranges < 0) {  // no ranges given: everything decays
    body(chunk_begin, chunk_end, true);
    return;
  }
  // First range whose end lies past chunk_begin (ranges are sorted by begin and by end).
  int64_t lo = 0, hi = num_ranges;
  while (lo < hi) {
    int64_t mid = (lo + hi) / 2;
    if (ranges[2 * mid + 1] <= chunk_begin) lo = mid + 1; else hi = mid;
  }
  int64_t pos = chunk_begin;
  for (int64_t r = lo; r < num_ranges && pos < chunk_end; ++r) {
    int64_t begin = std::max(ranges[2 * r], pos), end = std::min(ranges[2 * r + 1], chunk_end);
    if (begin >= chunk_end) break;
    if (pos < begin) body(pos, begin, false);
    body(begin, end, true);
    pos = end;
  }
  if (pos < chunk_end) body(pos, chunk_end, false);
}

template <DecayMode kDecay>
void adam_span(float* __restrict params, const float* __restrict grads, float* __restrict exp_avg,
               float* __restrict exp_avg_sq, int64_t begin, int64_t end, const AdamScalars s) {
  if (lerp_weight_is_small(s.one_minus_beta1)) {
    for (int64_t i = begin; i < end; ++i)
      adam_update<kDecay, true>(params[i], grads[i], exp_avg[i], exp_avg_sq[i], s);
  } else {
    for (int64_t i = begin; i < end; ++i)
      adam_update<kDecay, false>(params[i], grads[i], exp_avg[i], exp_avg_sq[i], s);
  }
}

template <DecayMode kDecay>
void sgd_span(float* __restrict params, const float* __restrict grads,
              float* __restrict momentum_buffer, int64_t begin, int64_t end, const SgdScalars s) {
  if (s.use_momentum) {
    for (int64_t i = begin; i < end; ++i)
      sgd_update<kDecay>(params[i], grads[i], momentum_buffer + i, s);
  } else {
    for (int64_t i = begin; i < end; ++i) sgd_update<kDecay>(params[i], grads[i], nullptr, s);
  }
}

}  // namespace

void adamw_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t n,
                const int64_t* decay_ranges, int64_t num_ranges, const AdamScalars& s) {
  int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    for_each_span(c * kChunk, std::min(n, (c + 1) * kChunk), decay_ranges, num_ranges,
                  [&](int64_t begin, int64_t end, bool decay) {
                    switch (adam_decay_mode(decay, s)) {
                      case DecayMode::None:
                        return adam_span<DecayMode::None>(params, grads, exp_avg, exp_avg_sq, begin, end, s);
                      case DecayMode::Decoupled:
                        return adam_span<DecayMode::Decoupled>(params, grads, exp_avg, exp_avg_sq, begin, end, s);
                      case DecayMode::L2:
                        return adam_span<DecayMode::L2>(params, grads, exp_avg, exp_avg_sq, begin, end, s);
                    }
                  });
  }
}

void sgd_step(float* params, const float* grads, float* momentum_buffer, int64_t n,
              const int64_t* decay_ranges, int64_t num_ranges, const SgdScalars& s) {
  int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    for_each_span(c * kChunk, std::min(n, (c + 1) * kChunk), decay_ranges, num_ranges,
                  [&](int64_t begin, int64_t end, bool decay) {
                    if (sgd_decay_mode(decay, s) == DecayMode::L2)
                      sgd_span<DecayMode::L2>(params, grads, momentum_buffer, begin, end, s);
                    else
                      sgd_span<DecayMode::None>(params, grads, momentum_buffer, begin, end, s);
                  });
  }
}

double sum_of_squares(const float* values, int64_t n) {
  int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(size_t(chunks), 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    // Eight independent accumulators, combined in a fixed order: vectorizes, stays deterministic.
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t begin = c * kChunk, end = std::min(n, (c + 1) * kChunk), i = begin;
    for (; i + 8 <= end; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += double(values[i + j]) * double(values[i + j]);
    for (; i < end; ++i) acc[0] += double(values[i]) * double(values[i]);
    partial[size_t(c)] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace ww::kernels::cpu
