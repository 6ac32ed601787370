#pragma once
// Whole-file reads and crash-safe writes. Every checkpoint, config and report wattwise writes goes
// through write_file_atomic or AtomicFileWriter, so a crash, a full disk or a killed job never
// leaves a half-written file where a good one used to be.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace ww::io {

// The file's bytes. Throws ww::Error naming the file and the OS reason ("No such file or
// directory").
std::string read_file(const std::filesystem::path& path);

// Writes atomically: a temporary file in the same folder, write, fsync, rename over the target,
// fsync the folder. On any failure the target is untouched, the temporary file is removed, and
// ww::Error names the path and the OS reason.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

// Streaming form of write_file_atomic, for files too big to build in memory (checkpoints):
//   AtomicFileWriter out(path); out.write(header); out.write(tensor_bytes); out.commit();
// Until commit() succeeds the target is untouched; the destructor discards an uncommitted file.
class AtomicFileWriter {
 public:
  AtomicFileWriter() = default;
  explicit AtomicFileWriter(const std::filesystem::path& path) { open(path); }
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&& other) noexcept;

  // Creates the temporary file next to `path` (same folder, so the rename cannot cross devices).
  void open(const std::filesystem::path& path);
  void write(std::string_view bytes);
  void write(const void* data, size_t bytes) {
    write(std::string_view(static_cast<const char*>(data), bytes));
  }
  // fsync, rename over the target, fsync the folder. After it the writer is closed.
  void commit();
  // Drops the temporary file; the target stays as it was. Safe to call at any time.
  void discard() noexcept;

  bool is_open() const { return fd_ >= 0; }
  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temp_path() const { return temp_path_; }
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  int fd_ = -1;
  uint64_t bytes_written_ = 0;
};

}  // namespace ww::io
