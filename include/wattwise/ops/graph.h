#pragma once
// CUDA graphs: the kernels a piece of host code launches on wattwise's stream, recorded once and
// replayed with one launch (no per-kernel launch overhead, which dominates small batches). The
// recorded work must not allocate, synchronise or read results on the host, and must see the same
// tensor addresses at every replay: the model records its inference forward over fixed input and
// activation buffers and drops its recordings when those move.
#include <functional>
#include <memory>

#include "wattwise/core/device.h"

namespace ww::ops {

class CapturedWork {
 public:
  CapturedWork() = default;
  // Records what `work` launches on `device`'s stream (nothing executes). Throws ww::Error on a
  // CPU device or a build without CUDA, or when `work` did something a graph cannot hold.
  static CapturedWork capture(Device device, const std::function<void()>& work);
  // Launches the recording on the stream (asynchronous, ordered with other wattwise work).
  void replay() const;
  bool valid() const { return state_ != nullptr; }

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace ww::ops
