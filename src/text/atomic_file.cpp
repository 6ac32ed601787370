#include "text/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "wattwise/core/error.h"

namespace ww::text::detail {

void write_file_atomic(const std::filesystem::path& path, std::string_view contents) {
  static std::atomic<unsigned> counter{0};
  const std::filesystem::path folder = path.parent_path().empty() ? "." : path.parent_path();
  std::string temp_name = ".";  // hidden, next to the target so that rename stays atomic
  temp_name += path.filename().string();
  temp_name += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  const std::filesystem::path temp = folder / temp_name;
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) fail("cannot write ", path.string(), ": ", std::strerror(errno));
  auto give_up = [&](const char* step) {
    int saved = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    fail("cannot write ", path.string(), " (", step, "): ", std::strerror(saved));
  };
  size_t written = 0;
  while (written < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      give_up("write");
    }
    written += size_t(n);
  }
  if (::fsync(fd) != 0) give_up("fsync");
  if (::close(fd) != 0) {
    int saved = errno;
    ::unlink(temp.c_str());
    fail("cannot write ", path.string(), " (close): ", std::strerror(saved));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(temp.c_str());
    fail("cannot write ", path.string(), " (rename): ", std::strerror(saved));
  }
  // Make the rename itself durable.
  int dir_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace ww::text::detail
