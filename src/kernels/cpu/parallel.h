#pragma once
// When a CPU kernel is worth spreading over OpenMP threads. Below this many elements of work the
// thread start-up costs more than it saves.
#include <cstdint>

namespace ww::kernels::cpu {

constexpr int64_t kParallelMinWork = int64_t(1) << 15;

// Column-stripe width used by reductions over rows (parameter gradients): each stripe is summed by
// one thread in row order, so results do not depend on the number of threads.
constexpr int64_t kColumnStripe = 128;

}  // namespace ww::kernels::cpu
