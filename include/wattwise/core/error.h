#pragma once
// One project error type. Every error a user can cause (bad file, bad config, bad flag) is thrown as
// ww::Error with a message that names the file, tensor, key or line at fault; the CLI prints it as
// one line and exits non-zero. Internal invariants use WW_CHECK, which throws the same type.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace ww {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Not enough memory on a device: carries the size asked for so the CLI can suggest remedies.
class OutOfMemoryError : public Error {
 public:
  OutOfMemoryError(const std::string& message, size_t bytes_requested)
      : Error(message), bytes_requested_(bytes_requested) {}
  size_t bytes_requested() const { return bytes_requested_; }

 private:
  size_t bytes_requested_;
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// ww::fail("file ", path, ": header length ", n, " is past the end of the file");
template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(detail::concat(std::forward<Args>(args)...));
}

}  // namespace ww

#define WW_CHECK(cond, ...)                                                                     \
  do {                                                                                          \
    if (!(cond)) ::ww::fail("internal check failed (" #cond ") at ", __FILE__, ":", __LINE__,   \
                            ": ", ##__VA_ARGS__);                                               \
  } while (0)
