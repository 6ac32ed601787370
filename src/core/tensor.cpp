#include "wattwise/core/tensor.h"

#include <cstdio>
#include <cstring>
#include <sstream>

#include "wattwise/core/checked.h"

#include "core/device_memory.h"

#ifdef WW_HAVE_CUDA
#define WW_CUDA_BUILD_NOTE "no CUDA driver or GPU visible"
#else
#define WW_CUDA_BUILD_NOTE "this build has no CUDA backend"
#endif

namespace ww {

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device parse_device(std::string_view text) {
  if (text == "cpu") return Device::cpu();
  if (text == "auto") {
    if (cuda_device_count() == 0) return Device::cpu();
    check_cuda_device_supported(0);
    return Device::cuda(0);
  }
  if (text == "cuda" || text.substr(0, 5) == "cuda:") {
    int count = cuda_device_count();
    if (count == 0)
      fail("device '", text, "': no usable GPU (", WW_CUDA_BUILD_NOTE, "); use --device cpu");
  }
  if (text == "cuda") {
    check_cuda_device_supported(0);
    return Device::cuda(0);
  }
  if (text.substr(0, 5) == "cuda:" && text.size() > 5) {
    int index = 0;
    for (char c : text.substr(5)) {
      if (c < '0' || c > '9') fail("invalid device '", text, "' (expected cpu, cuda or cuda:N)");
      index = index * 10 + (c - '0');
    }
    if (index >= cuda_device_count())
      fail("device '", text, "': only ", cuda_device_count(), " GPU(s) visible");
    check_cuda_device_supported(index);
    return Device::cuda(index);
  }
  fail("invalid device '", text, "' (expected cpu, cuda, cuda:N or auto)");
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail("tensor shape ", shape_str(shape), " has a negative dimension");
    if (__builtin_mul_overflow(n, d, &n))
      fail("tensor shape ", shape_str(shape), " has more elements than fit in 64 bits");
  }
  return n;
}

size_t shape_bytes(const Shape& shape, DType dtype) {
  return size_t(checked_mul(shape_numel(shape), int64_t(dtype_size(dtype)),
                            "bytes of a tensor of shape " + shape_str(shape)));
}

std::string format_bytes(double bytes) {
  char text[64];
  if (bytes >= double(int64_t(1) << 30)) std::snprintf(text, sizeof(text), "%.3g GiB", bytes / double(int64_t(1) << 30));
  else if (bytes >= double(1 << 20)) std::snprintf(text, sizeof(text), "%.3g MiB", bytes / double(1 << 20));
  else if (bytes >= 1024) std::snprintf(text, sizeof(text), "%.3g KiB", bytes / 1024.0);
  else std::snprintf(text, sizeof(text), "%.0f bytes", bytes);
  return text;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  const size_t bytes = shape_bytes(shape, dtype);
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  void* p = detail::device_alloc(bytes, device);
  t.data_ = p;
  t.owner_ = std::shared_ptr<void>(p, [device](void* q) { detail::device_free(q, device); });
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_zero();
  return t;
}

Tensor Tensor::view(void* data, const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.data_ = data;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape) {
  WW_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
           " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::F32);
  if (!values.empty()) std::memcpy(t.data_, values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::from_vector(const std::vector<int32_t>& values, const Shape& shape) {
  WW_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
           " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::I32);
  if (!values.empty()) std::memcpy(t.data_, values.data(), values.size() * sizeof(int32_t));
  return t;
}

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  if (d < 0) d += n;
  WW_CHECK(d >= 0 && d < n, "dimension ", d, " out of range for ", describe());
  return shape_[d];
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape resolved = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == -1) {
      WW_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(shape));
      infer = int64_t(i);
    } else {
      known *= resolved[i];
    }
  }
  if (infer >= 0) resolved[infer] = known ? numel() / known : 0;
  WW_CHECK(shape_numel(resolved) == numel(), "reshape of ", describe(), " to ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = resolved;
  return t;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  WW_CHECK(dim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "slice [", begin, ", ",
           end, ") of ", describe());
  Tensor t = *this;
  int64_t row = numel() / (shape_[0] ? shape_[0] : 1);
  t.data_ = static_cast<char*>(data_) + size_t(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::to(Device device) const {
  Tensor t = empty(shape_, dtype_, device);
  detail::device_copy(t.data_, device, data_, device_, nbytes());
  return t;
}

void Tensor::copy_from(const Tensor& other) const {
  WW_CHECK(other.numel() == numel() && other.dtype_ == dtype_, "copy_from ", other.describe(),
           " into ", describe());
  detail::device_copy(data_, device_, other.data_, other.device_, nbytes());
}

void Tensor::fill_zero() const { detail::device_zero(data_, nbytes(), device_); }

std::vector<float> Tensor::to_float_vector() const {
  Tensor host = device_.is_cpu() ? *this : to(Device::cpu());
  std::vector<float> out(static_cast<size_t>(numel()));
  switch (dtype_) {
    case DType::F32: if (!out.empty()) std::memcpy(out.data(), host.data_, nbytes()); break;
    case DType::F16: {
      auto* p = static_cast<const uint16_t*>(host.data_);
      for (size_t i = 0; i < out.size(); ++i) out[i] = half_to_float(p[i]);
      break;
    }
    case DType::BF16: {
      auto* p = static_cast<const uint16_t*>(host.data_);
      for (size_t i = 0; i < out.size(); ++i) out[i] = bf16_to_float(p[i]);
      break;
    }
    case DType::I32: {
      auto* p = static_cast<const int32_t*>(host.data_);
      for (size_t i = 0; i < out.size(); ++i) out[i] = float(p[i]);
      break;
    }
    case DType::I64: {
      auto* p = static_cast<const int64_t*>(host.data_);
      for (size_t i = 0; i < out.size(); ++i) out[i] = float(p[i]);
      break;
    }
    default: fail("to_float_vector: unsupported dtype ", dtype_name(dtype_));
  }
  return out;
}

std::string Tensor::describe() const {
  return std::string(dtype_name(dtype_)) + shape_str(shape_) + " on " + device_.str();
}

void check_shape(const Tensor& t, const Shape& expected, const std::string& what) {
  if (t.shape() != expected)
    fail(what, ": expected shape ", shape_str(expected), ", got ", shape_str(t.shape()));
}

void check_dtype(const Tensor& t, DType expected, const std::string& what) {
  if (t.dtype() != expected)
    fail(what, ": expected dtype ", dtype_name(expected), ", got ", dtype_name(t.dtype()));
}

}  // namespace ww
