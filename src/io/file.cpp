#include "wattwise/io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "wattwise/core/error.h"

namespace ww::io {

namespace {

std::string os_reason(int error) { return std::strerror(error); }

// Parent folder of `path` for creating the temporary file and fsyncing the rename; "." for a bare
// file name.
std::filesystem::path folder_of(const std::filesystem::path& path) {
  std::filesystem::path parent = path.parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

// A name no other writer (thread or process) picks at the same time: pid, a process-wide counter
// and random bits. O_EXCL below still guards against the unlikely clash.
std::string temp_name_for(const std::filesystem::path& path) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 random_bits{std::random_device{}()};
  // Built with appends: GCC 12 warns falsely (-Wrestrict) on `"." + std::string`.
  std::string name = ".";
  name += path.filename().string();
  name += ".tmp-";
  name += std::to_string(::getpid());
  name += '-';
  name += std::to_string(counter.fetch_add(1));
  name += '-';
  name += std::to_string(random_bits() % 1000000000ull);
  return name;
}

void fsync_folder(const std::filesystem::path& folder, const std::filesystem::path& target) {
  int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    fail("cannot open folder ", folder.string(), " to make the write of ", target.string(),
         " durable: ", os_reason(errno));
  int rc = ::fsync(fd);
  int error = errno;
  ::close(fd);
  // Some file systems cannot fsync a folder (EINVAL); the rename itself has happened, so carry on.
  if (rc != 0 && error != EINVAL && error != EROFS)
    fail("cannot fsync folder ", folder.string(), " after writing ", target.string(), ": ",
         os_reason(error));
}

}  // namespace

std::string read_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open ", path.string(), " for reading: ", os_reason(errno));
  std::string contents;
  struct stat info {};
  if (::fstat(fd, &info) == 0 && S_ISREG(info.st_mode)) contents.reserve(size_t(info.st_size));
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      fail("cannot read ", path.string(), ": ", os_reason(error));
    }
    if (n == 0) break;
    contents.append(buffer, size_t(n));
  }
  ::close(fd);
  return contents;
}

void write_file_atomic(const std::filesystem::path& path, std::string_view contents) {
  AtomicFileWriter writer(path);
  writer.write(contents);
  writer.commit();
}

AtomicFileWriter::~AtomicFileWriter() { discard(); }

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      temp_path_(std::move(other.temp_path_)),
      fd_(other.fd_),
      bytes_written_(other.bytes_written_) {
  other.fd_ = -1;
}

AtomicFileWriter& AtomicFileWriter::operator=(AtomicFileWriter&& other) noexcept {
  if (this != &other) {
    discard();
    path_ = std::move(other.path_);
    temp_path_ = std::move(other.temp_path_);
    fd_ = other.fd_;
    bytes_written_ = other.bytes_written_;
    other.fd_ = -1;
  }
  return *this;
}

void AtomicFileWriter::open(const std::filesystem::path& path) {
  discard();
  if (path.empty()) fail("cannot write a file with an empty path");
  if (!path.has_filename())
    fail("cannot write ", path.string(), ": the path names a folder, not a file");
  path_ = path;
  bytes_written_ = 0;
  std::filesystem::path folder = folder_of(path);
  for (int attempt = 0; attempt < 16; ++attempt) {
    temp_path_ = folder / temp_name_for(path);
    // 0666 minus the umask, like any ordinary file the user creates.
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) {
      // Replacing a file keeps its permissions (a private file stays private).
      struct stat existing {};
      if (::stat(path.c_str(), &existing) == 0 && S_ISREG(existing.st_mode))
        ::fchmod(fd_, existing.st_mode & 07777);
      return;
    }
    if (errno != EEXIST) break;
  }
  int error = errno;
  temp_path_.clear();
  fail("cannot write ", path.string(), ": cannot create a temporary file in ", folder.string(),
       ": ", os_reason(error));
}

void AtomicFileWriter::write(std::string_view bytes) {
  if (fd_ < 0)
    fail("cannot write ", path_.string(),
         ": the file is not open (open() it first; commit() closes it)");
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    // Linux writes at most about 2 GiB per call; loop over partial writes.
    ssize_t n = ::write(fd_, p, left < (size_t(1) << 30) ? left : (size_t(1) << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int error = n < 0 ? errno : ENOSPC;
      uint64_t written = bytes_written_;
      discard();
      fail("cannot write ", path_.string(), " (failed after ", written,
           " bytes): ", os_reason(error), "; the previous file, if any, is unchanged");
    }
    p += n;
    left -= size_t(n);
    bytes_written_ += uint64_t(n);
  }
}

void AtomicFileWriter::commit() {
  if (fd_ < 0) fail("cannot commit ", path_.string(), ": the file is not open");
  if (::fsync(fd_) != 0) {
    int error = errno;
    discard();
    fail("cannot write ", path_.string(), ": fsync failed: ", os_reason(error),
         "; the previous file, if any, is unchanged");
  }
  // close() can report a deferred write error (NFS, quotas), so it is checked too.
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    int error = errno;
    discard();
    fail("cannot write ", path_.string(), ": close failed: ", os_reason(error),
         "; the previous file, if any, is unchanged");
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    int error = errno;
    discard();
    fail("cannot write ", path_.string(),
         ": renaming the temporary file over it failed: ", os_reason(error),
         "; the previous file, if any, is unchanged");
  }
  temp_path_.clear();
  fsync_folder(folder_of(path_), path_);
}

void AtomicFileWriter::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!temp_path_.empty()) {
    ::unlink(temp_path_.c_str());
    temp_path_.clear();
  }
}

}  // namespace ww::io
