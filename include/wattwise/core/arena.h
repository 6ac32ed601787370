#pragma once
// A bump allocator over one buffer: the model sizes its activations and scratch once per shape, so a
// training or inference step allocates nothing. reset() recycles everything at once.
#include <cstddef>

#include "wattwise/core/tensor.h"

namespace ww {

class Arena {
 public:
  Arena() = default;
  Arena(size_t capacity_bytes, Device device);
  // An arena without memory that only counts: run the same allocation sequence through it to learn
  // the capacity a real arena needs. Its tensors have a null data pointer and must not be touched.
  static Arena counting(Device device);

  Tensor alloc(const Shape& shape, DType dtype);
  void reset() { used_ = 0; }
  size_t used() const { return used_; }
  size_t peak() const { return peak_; }
  size_t capacity() const { return capacity_; }
  Device device() const { return device_; }

  static constexpr size_t kAlignment = 256;  // covers AVX-512 and CUDA vector loads
  static size_t aligned(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

 private:
  Tensor buffer_;
  size_t capacity_ = 0, used_ = 0, peak_ = 0;
  Device device_;
  bool counting_ = false;
};

}  // namespace ww
