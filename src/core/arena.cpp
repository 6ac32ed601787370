#include "wattwise/core/arena.h"

#include <algorithm>

namespace ww {

Arena::Arena(size_t capacity_bytes, Device device)
    : buffer_(Tensor::empty({int64_t(capacity_bytes)}, DType::U8, device)),
      capacity_(capacity_bytes),
      device_(device) {}

Arena Arena::counting(Device device) {
  Arena a;
  a.device_ = device;
  a.counting_ = true;
  return a;
}

Tensor Arena::alloc(const Shape& shape, DType dtype) {
  size_t bytes = aligned(shape_bytes(shape, dtype));
  if (counting_) {
    used_ += bytes;
    peak_ = std::max(peak_, used_);
    return Tensor::view(nullptr, shape, dtype, device_);
  }
  if (used_ + bytes > capacity_)
    throw OutOfMemoryError(detail::concat("workspace arena on ", device_.str(), " exhausted: ",
                                          used_, " of ", capacity_, " bytes used, ", bytes,
                                          " more requested for ", shape_str(shape)),
                           bytes);
  Tensor t = Tensor::view(static_cast<char*>(buffer_.raw()) + used_, shape, dtype, device_);
  used_ += bytes;
  peak_ = std::max(peak_, used_);
  return t;
}

}  // namespace ww
