#include "wattwise/energy/integrate.h"

#include <cstddef>

namespace ww::energy {

double trapezoid_joules(const std::vector<PowerSample>& samples) {
  double joules = 0;
  for (size_t i = 1; i < samples.size(); ++i) {
    const double dt = samples[i].time_s - samples[i - 1].time_s;
    joules += 0.5 * (samples[i].power_w + samples[i - 1].power_w) * dt;
  }
  return joules;
}

uint64_t counter_delta(uint64_t before, uint64_t after, uint64_t range) {
  if (range == 0) return after - before;  // unsigned arithmetic wraps modulo 2^64 by itself
  if (after >= before) return after - before;
  // Wrapped once: up to the top of the range, then from 0 to `after`. (A reading above the range,
  // which a sane counter never gives, is treated as a plain wrap too rather than trusted.)
  return before <= range ? (range - before) + after : after;
}

}  // namespace ww::energy
