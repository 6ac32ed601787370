#pragma once
// A Tensor is a typed, shaped view of memory on one device. It either owns its buffer (shared, so
// copies are cheap and alias) or views memory owned elsewhere (an Arena, a parameter buffer, a
// mapped file). Tensors are always contiguous, row-major; kernels rely on that.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "wattwise/core/device.h"
#include "wattwise/core/dtype.h"
#include "wattwise/core/error.h"

namespace ww {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& shape);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& shape);  // throws ww::Error for a negative dimension or overflow
size_t shape_bytes(const Shape& shape, DType dtype);  // numel x element size, overflow-checked

template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }
template <> constexpr DType dtype_of<int8_t>() { return DType::I8; }
template <> constexpr DType dtype_of<half_bits>() { return DType::F16; }
template <> constexpr DType dtype_of<bf16_bits>() { return DType::BF16; }

class Tensor {
 public:
  Tensor() = default;

  // Owning, uninitialised (CPU: 256-byte aligned host memory; CUDA: device memory).
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu());
  // Non-owning view of memory that outlives the tensor.
  static Tensor view(void* data, const Shape& shape, DType dtype, Device device = Device::cpu());
  // CPU fp32 tensor holding a copy of `values` (for tests and small constants).
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<int32_t>& values, const Shape& shape);

  bool defined() const { return data_ != nullptr || (owner_ && numel() == 0); }
  void* raw() const { return data_; }
  template <typename T>
  T* data() const {
    WW_CHECK(dtype_ == dtype_of<T>(), "tensor has dtype ", dtype_name(dtype_), ", accessed as ",
             dtype_name(dtype_of<T>()));
    return static_cast<T*>(data_);
  }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return int64_t(shape_.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  // Same memory, new shape with the same number of elements (one dimension may be -1).
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) of the first dimension: still contiguous.
  Tensor slice(int64_t begin, int64_t end) const;
  // Copy to another device (or a deep copy on the same one).
  Tensor to(Device device) const;
  // Copies another tensor's bytes into this one; shapes' element counts and dtypes must match.
  void copy_from(const Tensor& other) const;
  void fill_zero() const;
  // fp32 copy on the CPU, converting from fp16/bf16 if needed (for tests, checkpoints, printing).
  std::vector<float> to_float_vector() const;
  std::string describe() const;  // "f32[2, 3] on cpu"

 private:
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_;
  std::shared_ptr<void> owner_;
};

// Throws ww::Error("<what>: expected shape [..], got [..]") when the tensor's shape differs.
void check_shape(const Tensor& t, const Shape& expected, const std::string& what);
void check_dtype(const Tensor& t, DType expected, const std::string& what);

}  // namespace ww
