#pragma once
// Hugging Face safetensors: read (memory-mapped, every header field validated), write (atomic,
// byte-compatible with the reference writer), and checkpoints made of one file or of shards.
//
// File layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"format": "pt"}}
// (padded with spaces), then the data buffer. Offsets are relative to the buffer start; like the
// reference implementation, the tensors must cover the buffer exactly, without gaps or overlaps.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wattwise/core/dtype.h"
#include "wattwise/core/tensor.h"

namespace ww::io {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range in the data buffer (relative to its start)
  uint64_t nbytes() const { return end - begin; }
};

// What a validated header says. data_start = 8 + N: where the data buffer starts in the file.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in header order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;
};

// What reading a float tensor does when it holds NaN or Inf: refuse (the default: such weights make
// every prediction garbage without a word), warn once per tensor on stderr and load it anyway (the
// CLI's --allow-nonfinite), or read the values as they are without a word (tools that inspect a
// file's bits, not weights to run).
enum class NonFinite { refuse, warn, allow };

// Non-finite values among `n` elements of a float dtype at `data` (0 for other dtypes); *first gets
// the index of the first one.
int64_t count_nonfinite(const void* data, DType dtype, size_t n, size_t* first = nullptr);

class SafetensorsFile {
 public:
  // Maps the file read-only and validates its header. Throws ww::Error naming the file (and the
  // tensor) for any malformed input; never reads out of bounds.
  static SafetensorsFile open(const std::filesystem::path& path);
  // The same over bytes held in memory (tests, fuzzing); `label` stands for the file name.
  static SafetensorsFile from_bytes(std::string bytes, const std::string& label);
  // The parser behind both: `file_prefix` holds at least the first 8 + N bytes of a file of
  // `file_size` bytes. Errors start with `label`.
  static SafetensorsHeader parse_header(std::string_view file_prefix, uint64_t file_size,
                                        const std::string& label);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const TensorInfo* find(std::string_view name) const;  // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }

  // Owning CPU tensor in the file's dtype.
  Tensor read(std::string_view name) const;
  // Copies into an existing tensor (CPU, or CUDA through a host copy), converting between F32, F16
  // and BF16 (f32 master weights from fp16 checkpoints); other dtypes must match exactly. Shapes
  // must be equal.
  void read_into(std::string_view name, const Tensor& dst) const;
  // The tensor's raw little-endian bytes inside the mapping; valid while this object (or a copy)
  // lives.
  std::string_view raw_bytes(const TensorInfo& info) const;
  // What read() and read_into() do with NaN or Inf in a float tensor (default: refuse, naming the
  // file, the tensor, how many and where the first is).
  void set_nonfinite(NonFinite policy) { nonfinite_ = policy; }

 private:
  struct Storage;
  const TensorInfo& info_or_fail(std::string_view name) const;
  void check_finite(const TensorInfo& info, const void* data, DType dtype, size_t n) const;
  NonFinite nonfinite_ = NonFinite::refuse;

  std::filesystem::path path_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in header_.tensors
  std::shared_ptr<const Storage> storage_;
};

// A checkpoint: a folder holding model.safetensors or model.safetensors.index.json (+ shards), an
// index file, or one .safetensors file. The same find/read/read_into over all shards.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  // Tensor names: header order for one file; the index's weight_map order for shards.
  const std::vector<std::string>& names() const { return names_; }
  const TensorInfo* find(std::string_view name) const;  // nullptr when absent
  Tensor read(std::string_view name) const;
  void read_into(std::string_view name, const Tensor& dst) const;
  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  // The shard holding `name` (throws, naming the checkpoint, when absent).
  const SafetensorsFile& file_of(std::string_view name) const;
  // Values in all its tensors (their headers' shapes, summed; validated not to overflow on open).
  int64_t total_elements() const;
  // For messages: the file ("m/model.safetensors") or "the N shards of m/model.safetensors.index.json".
  std::string description() const;
  void set_nonfinite(NonFinite policy);  // every shard's (SafetensorsFile::set_nonfinite)

 private:
  std::filesystem::path path_;
  std::vector<SafetensorsFile> shards_;
  std::vector<std::string> names_;
  std::map<std::string, size_t, std::less<>> shard_of_;
};

// Writes a safetensors file atomically. Tensors in the order given (CPU or CUDA). store_dtype
// (F32, F16 or BF16) converts F32/F16/BF16 tensors on the way (round to nearest even); other
// tensors are written as they are. The header is padded with spaces to a multiple of 8 bytes like
// the reference writer; metadata defaults to {"format": "pt"}, which transformers expects. A finite
// value beyond store_dtype's range would be stored as Inf: `overflow` refuse (the default: the file
// would then be refused on load) fails before anything is written; warn stores the Inf with a
// warning; allow stores it silently (IEEE rounding, for tools that test the format itself).
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}},
                      std::optional<DType> store_dtype = std::nullopt,
                      NonFinite overflow = NonFinite::refuse);

}  // namespace ww::io
