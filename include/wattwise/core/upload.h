#pragma once
// Host-to-device copies that do not make the host wait: a batch's ids, masks and labels go through
// a pinned staging buffer and asynchronous copies on wattwise's stream, so the host returns at once
// and prepares the next batch while the GPU computes. The staging buffer is refilled only after the
// copies that read it have finished (an event), so a caller can never overwrite data in flight.
#include <cstddef>
#include <memory>

#include "wattwise/core/tensor.h"

namespace ww {

class HostToDevice {
 public:
  HostToDevice();
  ~HostToDevice();
  HostToDevice(const HostToDevice&) = delete;
  HostToDevice& operator=(const HostToDevice&) = delete;
  HostToDevice(HostToDevice&&) noexcept;
  HostToDevice& operator=(HostToDevice&&) noexcept;

  // One group of copies: begin() waits until the previous group's copies are done, upload()
  // stages and enqueues each (dst on a cuda device, src on the cpu, same dtype and element
  // count), end() marks the group.
  void begin();
  void upload(const Tensor& dst, const Tensor& src);
  void end();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ww
