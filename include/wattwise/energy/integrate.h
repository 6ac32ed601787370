#pragma once
// The arithmetic every energy figure rests on, kept free of I/O so tests can pin it down:
// trapezoid integration of sampled power, and deltas of hardware energy counters that wrap.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ww::energy {

constexpr double kJoulesPerKwh = 3.6e6;

struct PowerSample {
  double time_s = 0;   // any monotonic time base, seconds
  double power_w = 0;  // instantaneous (or driver-averaged) power at time_s
};

// Energy in joules under the piecewise-linear curve through the samples (trapezoid rule).
// Samples must be in time order; fewer than two samples give 0.
double trapezoid_joules(const std::vector<PowerSample>& samples);

// Increase of an energy counter from `before` to `after`. `range` is the value at which the
// counter wraps back to 0 (powercap's max_energy_range_uj): a reading below the previous one means
// it wrapped once. range == 0 means the counter is a full 64-bit value that wraps modulo 2^64
// (NVML's total-energy counter in millijoules).
uint64_t counter_delta(uint64_t before, uint64_t after, uint64_t range);

// kWh from joules.
inline double joules_to_kwh(double joules) { return joules / kJoulesPerKwh; }

}  // namespace ww::energy
