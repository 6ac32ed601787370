#include "wattwise/io/safetensors.h"

#include "wattwise/core/checked.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "wattwise/core/error.h"
#include "wattwise/io/file.h"

namespace ww::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; wattwise reads it in place");

namespace {

using Json = nlohmann::ordered_json;  // keeps the header's order, which tensors() reports
namespace fs = std::filesystem;

// Same cap as the reference implementation: real headers are kilobytes to a few megabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Real headers nest three levels ({name: {shape: [..]}}); anything much deeper is garbage, and
// refusing it early bounds the memory a hostile header can make the parser allocate.
constexpr int kMaxJsonDepth = 16;
// Elements converted per step when changing precision, so conversion needs no full-size copy.
constexpr size_t kConvertChunk = size_t(1) << 16;

// Position of the first byte that breaks UTF-8 (overlong forms, surrogates and code points past
// U+10FFFF included), or npos when the text is valid.
size_t first_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size(), i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // Lead byte: sequence length, smallest code point it may encode, its payload bits.
    size_t length = 0;
    uint32_t lowest = 0, code = 0;
    if ((c & 0xe0) == 0xc0) {
      length = 2, lowest = 0x80, code = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      length = 3, lowest = 0x800, code = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      length = 4, lowest = 0x10000, code = c & 0x07;
    } else {
      return i;
    }
    if (n - i < length) return i;
    for (size_t k = 1; k < length; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return i;
      code = (code << 6) | (s[i + k] & 0x3f);
    }
    if (code < lowest || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return i;
    i += length;
  }
  return std::string_view::npos;
}

// Parses JSON refusing duplicate keys (nlohmann would silently keep the last one, hiding a
// conflicting tensor entry) and absurd nesting. `what` prefixes errors.
Json parse_json_strict(std::string_view text, const std::string& what) {
  std::vector<std::set<std::string>> open_objects;
  Json::parser_callback_t check = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth > kMaxJsonDepth) fail(what, ": JSON nested deeper than ", kMaxJsonDepth, " levels");
    switch (event) {
      case Json::parse_event_t::object_start: open_objects.emplace_back(); break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!open_objects.empty() && !open_objects.back().insert(key).second)
          fail(what, ": duplicate key '", key, "' (each tensor name and field may appear once)");
        break;
      }
      default: break;
    }
    return true;
  };
  // nlohmann's lexer takes a NUL byte for the end of input and would ignore whatever follows it;
  // a raw NUL is never valid JSON, so refuse it here.
  if (size_t nul = text.find('\0'); nul != std::string_view::npos)
    fail(what, " is not valid JSON: NUL byte at byte ", nul, " of the JSON text");
  try {
    return Json::parse(text.begin(), text.end(), check);
  } catch (const nlohmann::json::exception& e) {
    fail(what, " is not valid JSON: ", e.what());
  }
}

bool is_float_dtype(DType d) { return d == DType::F32 || d == DType::F16 || d == DType::BF16; }

// The dtypes named by the safetensors format that wattwise has no type for, so their error can say
// "not supported" rather than "unknown".
bool is_other_safetensors_dtype(std::string_view name) {
  for (std::string_view known :
       {"F64", "I16", "U16", "U32", "U64", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"})
    if (name == known) return true;
  return false;
}

DType parse_safetensors_dtype(const std::string& name, const std::string& where) {
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::F8E4M3, DType::F8E5M2, DType::I8,
                  DType::U8, DType::I32, DType::I64, DType::BOOL})
    if (name == safetensors_dtype_name(d)) return d;
  if (is_other_safetensors_dtype(name))
    fail(where, ": dtype ", name,
         " is not supported by wattwise (supported: F32, F16, BF16, F8_E4M3, "
         "F8_E5M2, I8, U8, I32, I64, BOOL)");
  fail(where, ": unknown dtype '", name,
       "' (expected a safetensors dtype such as F32, F16, BF16, I64)");
}

const Json& required_field(const Json& entry, const char* key, const std::string& where) {
  auto it = entry.find(key);
  if (it == entry.end()) fail(where, ": entry is missing \"", key, "\"");
  return *it;
}

// A JSON value that must be a non-negative integer (shape dimension, offset).
uint64_t as_count(const Json& value, const std::string& where, const char* what) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) fail(where, ": ", what, " is negative (", value.dump(), ")");
  if (value.is_number_float()) fail(where, ": ", what, " is not an integer (", value.dump(), ")");
  fail(where, ": ", what, " must be a non-negative integer, got ", value.type_name());
}

TensorInfo parse_entry(const std::string& name, const Json& entry, uint64_t buffer_size,
                       const std::string& label) {
  std::string where = label + ": tensor '" + name + "'";
  if (!entry.is_object())
    fail(where, ": entry must be an object with dtype, shape and data_offsets, got ",
         entry.type_name());
  TensorInfo info;
  info.name = name;

  const Json& dtype = required_field(entry, "dtype", where);
  if (!dtype.is_string()) fail(where, ": \"dtype\" must be a string, got ", dtype.type_name());
  info.dtype = parse_safetensors_dtype(dtype.get_ref<const std::string&>(), where);

  const Json& shape = required_field(entry, "shape", where);
  if (!shape.is_array()) fail(where, ": \"shape\" must be an array, got ", shape.type_name());
  uint64_t numel = 1;
  for (const Json& dim : shape) {
    uint64_t d = as_count(dim, where, "shape dimension");
    if (d > uint64_t(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, d, &numel) ||
        numel > uint64_t(std::numeric_limits<int64_t>::max()))
      fail(where, ": shape ", shape.dump(), " has more elements than can be addressed");
    info.shape.push_back(int64_t(d));
  }

  const Json& offsets = required_field(entry, "data_offsets", where);
  if (!offsets.is_array() || offsets.size() != 2)
    fail(where, ": \"data_offsets\" must be an array [begin, end], got ", offsets.dump());
  info.begin = as_count(offsets[0], where, "data_offsets begin");
  info.end = as_count(offsets[1], where, "data_offsets end");
  if (info.begin > info.end)
    fail(where, ": data_offsets [", info.begin, ", ", info.end, "] begin past end");
  if (info.end > buffer_size)
    fail(where, ": data_offsets [", info.begin, ", ", info.end,
         "] run past the end of the data buffer (", buffer_size,
         " bytes; the file is truncated or the header is wrong)");

  uint64_t expected = 0;
  if (__builtin_mul_overflow(numel, uint64_t(dtype_size(info.dtype)), &expected) ||
      expected != info.nbytes())
    fail(where, ": ", info.nbytes(), " bytes in data_offsets, but shape ", shape_str(info.shape),
         " of ", safetensors_dtype_name(info.dtype), " needs ", numel, " x ",
         dtype_size(info.dtype), " bytes");
  return info;
}

std::map<std::string, std::string> parse_metadata(const Json& value, const std::string& label) {
  std::map<std::string, std::string> metadata;
  if (value.is_null()) return metadata;  // the reference writes no key, but accepts null
  if (!value.is_object())
    fail(label, ": \"__metadata__\" must be an object of strings, got ", value.type_name());
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string())
      fail(label, ": \"__metadata__\" value for key '", key, "' must be a string, got ",
           item.type_name());
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

// The reference implementation requires the tensors to tile the data buffer exactly: sorted by
// offset, each starts where the previous ended, and the last ends at the end of the file.
void check_coverage(const std::vector<TensorInfo>& tensors, uint64_t buffer_size,
                    const std::string& label) {
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::pair(tensors[a].begin, tensors[a].end) <
           std::pair(tensors[b].begin, tensors[b].end);
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (size_t i : order) {
    const TensorInfo& t = tensors[i];
    if (t.begin < covered)
      fail(label, ": tensor '", t.name, "' bytes [", t.begin, ", ", t.end, ") overlap tensor '",
           previous->name, "' bytes [", previous->begin, ", ", previous->end, ")");
    if (t.begin > covered)
      fail(label, ": gap in the data buffer: bytes [", covered, ", ", t.begin, ") before tensor '",
           t.name,
           "' belong to no tensor (safetensors requires the tensors to cover the buffer "
           "without gaps)");
    covered = t.end;
    previous = &t;
  }
  if (covered != buffer_size)
    fail(label, ": the data buffer has ", buffer_size,
         " bytes but the tensors cover only the first ", covered,
         " (trailing bytes belong to no tensor)");
}

// Element conversion between F32, F16 and BF16 through fp32, in chunks. `src` may be unaligned
// (foreign files need not pad their header), hence the memcpy loads.
void to_float(const char* src, DType dtype, float* out, size_t n) {
  switch (dtype) {
    case DType::F32: std::memcpy(out, src, n * 4); break;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = half_to_float(h);
      }
      break;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, src + 2 * i, 2);
        out[i] = bf16_to_float(b);
      }
      break;
    default: fail("internal: to_float on ", dtype_name(dtype));
  }
}

void from_float(const float* in, DType dtype, char* dst, size_t n) {
  switch (dtype) {
    case DType::F32: std::memcpy(dst, in, n * 4); break;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h = float_to_half(in[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      break;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t b = float_to_bf16(in[i]);
        std::memcpy(dst + 2 * i, &b, 2);
      }
      break;
    default: fail("internal: from_float on ", dtype_name(dtype));
  }
}

void convert_elements(const char* src, DType src_dtype, char* dst, DType dst_dtype, size_t n) {
  if (src_dtype == dst_dtype) {
    if (n) std::memcpy(dst, src, n * dtype_size(src_dtype));
    return;
  }
  std::vector<float> buffer(std::min(n, kConvertChunk));
  for (size_t done = 0; done < n; done += buffer.size()) {
    size_t count = std::min(buffer.size(), n - done);
    to_float(src + done * dtype_size(src_dtype), src_dtype, buffer.data(), count);
    from_float(buffer.data(), dst_dtype, dst + done * dtype_size(dst_dtype), count);
  }
}

[[noreturn]] void fail_not_safetensors(const fs::path& folder, const std::string& found) {
  fail("checkpoint ", folder.string(), " holds ", found,
       ", but wattwise reads only safetensors. Convert it "
       "once with transformers: load it with the model class of your task and save it with "
       "save_pretrained(folder, safe_serialization=True), e.g. python3 -c \"from transformers "
       "import "
       "AutoModel; AutoModel.from_pretrained('",
       folder.string(), "').save_pretrained('", folder.string(),
       "', safe_serialization=True)\" (use AutoModelFor<Task> to keep a task head)");
}

// For a folder without the standard names: "; it has adapter.safetensors (pass that file's path)".
std::string other_safetensors_hint(const fs::path& folder) {
  std::vector<std::string> found;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(folder, error))
    if (entry.path().extension() == ".safetensors")
      found.push_back(entry.path().filename().string());
  if (found.empty()) return "";
  std::sort(found.begin(), found.end());
  std::string hint = "; it has ";
  for (size_t i = 0; i < found.size() && i < 3; ++i) hint += (i ? ", " : "") + found[i];
  if (found.size() > 3) hint += ", ...";
  return hint + " (pass a file's path to read it)";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SafetensorsFile

// The file's bytes: a read-only mapping (open) or an owned string (from_bytes).
struct SafetensorsFile::Storage {
  const char* data = nullptr;
  uint64_t size = 0;
  void* mapping = nullptr;
  size_t mapping_size = 0;
  std::string owned;

  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (mapping) ::munmap(mapping, mapping_size);
  }
};

SafetensorsHeader SafetensorsFile::parse_header(std::string_view file_prefix, uint64_t file_size,
                                                const std::string& label) {
  if (file_size < 8 || file_prefix.size() < 8)
    fail(label, ": not a safetensors file: it has ", file_size,
         " bytes, fewer than the 8-byte header length that starts every safetensors file");
  uint64_t header_bytes = 0;
  for (int i = 0; i < 8; ++i) header_bytes |= uint64_t(uint8_t(file_prefix[i])) << (8 * i);
  if (header_bytes > kMaxHeaderBytes)
    fail(label, ": header length ", header_bytes, " bytes is over the ", kMaxHeaderBytes,
         "-byte limit (not a safetensors file, or a corrupt one)");
  if (header_bytes > file_size - 8)
    fail(label, ": header length ", header_bytes, " bytes runs past the end of the file (",
         file_size, " bytes; the file is truncated or not a safetensors file)");
  if (file_prefix.size() - 8 < header_bytes)
    fail(label, ": only ", file_prefix.size(), " of the ", 8 + header_bytes,
         " header bytes were given");

  std::string_view text = file_prefix.substr(8, size_t(header_bytes));
  if (size_t bad = first_invalid_utf8(text); bad != std::string_view::npos)
    fail(label, ": header is not valid UTF-8 (bad byte at offset ", 8 + bad, ")");
  Json root = parse_json_strict(text, label + ": header");
  if (!root.is_object()) fail(label, ": header must be a JSON object, got ", root.type_name());

  SafetensorsHeader header;
  header.data_start = 8 + header_bytes;
  uint64_t buffer_size = file_size - header.data_start;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__")
      header.metadata = parse_metadata(value, label);
    else
      header.tensors.push_back(parse_entry(key, value, buffer_size, label));
  }
  check_coverage(header.tensors, buffer_size, label);
  return header;
}

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  std::string label = path.string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open safetensors file ", label, ": ", std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    int error = errno;
    ::close(fd);
    fail("cannot stat safetensors file ", label, ": ", std::strerror(error));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    fail(label, ": not a regular file (a safetensors file was expected)");
  }
  auto storage = std::make_shared<Storage>();
  storage->size = uint64_t(info.st_size);
  if (storage->size > 0) {
    void* p = ::mmap(nullptr, size_t(storage->size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int error = errno;
      ::close(fd);
      fail("cannot map safetensors file ", label, " into memory: ", std::strerror(error));
    }
    // Checkpoints are read front to back: aggressive read-ahead cut a warm 256 MiB read by ~25%.
    ::madvise(p, size_t(storage->size), MADV_SEQUENTIAL);
    storage->mapping = p;
    storage->mapping_size = size_t(storage->size);
    storage->data = static_cast<const char*>(p);
  }
  ::close(fd);  // the mapping stays valid without the descriptor

  SafetensorsFile file;
  file.path_ = path;
  file.header_ =
      parse_header(std::string_view(storage->data, size_t(storage->size)), storage->size, label);
  file.storage_ = std::move(storage);
  for (size_t i = 0; i < file.header_.tensors.size(); ++i)
    file.index_[file.header_.tensors[i].name] = i;
  return file;
}

SafetensorsFile SafetensorsFile::from_bytes(std::string bytes, const std::string& label) {
  auto storage = std::make_shared<Storage>();
  storage->owned = std::move(bytes);
  storage->data = storage->owned.data();
  storage->size = storage->owned.size();
  SafetensorsFile file;
  file.path_ = label;
  file.header_ = parse_header(storage->owned, storage->size, label);
  file.storage_ = std::move(storage);
  for (size_t i = 0; i < file.header_.tensors.size(); ++i)
    file.index_[file.header_.tensors[i].name] = i;
  return file;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const TensorInfo& SafetensorsFile::info_or_fail(std::string_view name) const {
  const TensorInfo* info = find(name);
  if (!info)
    fail(path_.string(), ": no tensor named '", name, "' (the file holds ", header_.tensors.size(),
         " tensors)");
  return *info;
}

std::string_view SafetensorsFile::raw_bytes(const TensorInfo& info) const {
  // parse_header checked data_start + end <= file size for every entry.
  return std::string_view(storage_->data + header_.data_start + info.begin, size_t(info.nbytes()));
}

namespace {
// Element i of a float dtype as a float; the file's bytes need not be aligned for the type.
float float_element(const void* data, DType dtype, size_t i) {
  const char* bytes = static_cast<const char*>(data);
  if (dtype == DType::F32) {
    float value;
    std::memcpy(&value, bytes + 4 * i, 4);
    return value;
  }
  uint16_t bits;
  std::memcpy(&bits, bytes + 2 * i, 2);
  return dtype == DType::F16 ? half_to_float(bits) : bf16_to_float(bits);
}
}  // namespace

int64_t count_nonfinite(const void* data, DType dtype, size_t n, size_t* first) {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16) return 0;
  int64_t count = 0;
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(float_element(data, dtype, i)) && count++ == 0 && first != nullptr) *first = i;
  return count;
}

void SafetensorsFile::check_finite(const TensorInfo& info, const void* data, DType dtype, size_t n) const {
  if (nonfinite_ == NonFinite::allow) return;
  size_t first = 0;
  const int64_t bad = count_nonfinite(data, dtype, n, &first);
  if (bad == 0) return;
  const float value = float_element(data, dtype, first);
  const std::string what = path_.string() + ": tensor '" + info.name + "' holds " + std::to_string(bad) +
                           " non-finite value" + (bad == 1 ? "" : "s") + " (the first, " +
                           (std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf") + ", at element " +
                           std::to_string(first) + " of " + std::to_string(n) + ")";
  if (nonfinite_ == NonFinite::refuse)
    fail(what, ": such weights make every output NaN; pass --allow-nonfinite (train: model.allow_nonfinite) to load "
               "them anyway");
  std::fprintf(stderr, "wattwise: warning: %s; loaded anyway (--allow-nonfinite)\n", what.c_str());
}

Tensor SafetensorsFile::read(std::string_view name) const {
  const TensorInfo& info = info_or_fail(name);
  Tensor t = Tensor::empty(info.shape, info.dtype);
  std::string_view bytes = raw_bytes(info);
  if (!bytes.empty()) std::memcpy(t.raw(), bytes.data(), bytes.size());
  check_finite(info, t.raw(), info.dtype, size_t(t.numel()));
  return t;
}

void SafetensorsFile::read_into(std::string_view name, const Tensor& dst) const {
  const TensorInfo& info = info_or_fail(name);
  std::string where = path_.string() + ": tensor '" + info.name + "'";
  if (dst.shape() != info.shape)
    fail(where, ": the file has shape ", shape_str(info.shape), ", the destination has shape ",
         shape_str(dst.shape()));
  bool convertible =
      dst.dtype() == info.dtype || (is_float_dtype(dst.dtype()) && is_float_dtype(info.dtype));
  if (!convertible)
    fail(where, ": cannot convert the file's ", safetensors_dtype_name(info.dtype),
         " into the destination's ", safetensors_dtype_name(dst.dtype()),
         " (only F32, F16 and BF16 convert into each other)");
  if (info.nbytes() == 0) return;
  if (!dst.defined()) fail(where, ": the destination tensor has no memory");
  // CUDA destinations get converted on the host first, then copied once.
  Tensor host = dst.device().is_cpu() ? dst : Tensor::empty(dst.shape(), dst.dtype());
  convert_elements(raw_bytes(info).data(), info.dtype, static_cast<char*>(host.raw()), dst.dtype(),
                   size_t(dst.numel()));
  // The file's own values: a conversion to a narrower dtype could only add overflows to Inf.
  check_finite(info, raw_bytes(info).data(), info.dtype, size_t(dst.numel()));
  if (!dst.device().is_cpu()) dst.copy_from(host);
}

// ---------------------------------------------------------------------------------------------
// SafetensorsCheckpoint

SafetensorsCheckpoint SafetensorsCheckpoint::open(const fs::path& path) {
  std::error_code error;
  fs::file_status status = fs::status(path, error);
  if (!fs::exists(status)) fail("checkpoint ", path.string(), " does not exist");

  fs::path file = path;
  if (fs::is_directory(status)) {
    if (fs::exists(path / "model.safetensors"))
      file = path / "model.safetensors";
    else if (fs::exists(path / "model.safetensors.index.json"))
      file = path / "model.safetensors.index.json";
    else if (fs::exists(path / "pytorch_model.bin"))
      fail_not_safetensors(path, "pytorch_model.bin");
    else if (fs::exists(path / "pytorch_model.bin.index.json"))
      fail_not_safetensors(path, "pytorch_model.bin.index.json (sharded PyTorch weights)");
    else
      fail("checkpoint folder ", path.string(),
           " holds neither model.safetensors nor model.safetensors.index.json",
           other_safetensors_hint(path));
  } else {
    std::string name = file.filename().string();
    if (name.ends_with(".bin") || name.ends_with(".pt") || name.ends_with(".pth"))
      fail_not_safetensors(file.parent_path().empty() ? fs::path(".") : file.parent_path(), name);
  }

  SafetensorsCheckpoint checkpoint;
  checkpoint.path_ = path;
  std::string file_name = file.filename().string();
  if (!file_name.ends_with(".index.json")) {
    checkpoint.shards_.push_back(SafetensorsFile::open(file));
    for (const TensorInfo& t : checkpoint.shards_[0].tensors()) {
      checkpoint.names_.push_back(t.name);
      checkpoint.shard_of_[t.name] = 0;
    }
    return checkpoint;
  }

  // Sharded: {"metadata": {...}, "weight_map": {"wte.weight": "model-00001-of-00002.safetensors"}}
  std::string label = file.string();
  Json index = parse_json_strict(read_file(file), label);
  if (!index.is_object())
    fail(label, ": checkpoint index must be a JSON object, got ", index.type_name());
  auto weight_map = index.find("weight_map");
  if (weight_map == index.end() || !weight_map->is_object())
    fail(label, ": checkpoint index needs a \"weight_map\" object (tensor name -> shard file)");
  fs::path folder = file.parent_path();
  std::map<std::string, size_t> shard_index;
  for (const auto& [tensor, shard_value] : weight_map->items()) {
    if (!shard_value.is_string())
      fail(label, ": weight_map entry for tensor '", tensor, "' must be a file name string, got ",
           shard_value.type_name());
    const std::string& shard = shard_value.get_ref<const std::string&>();
    fs::path shard_path(shard);
    bool escapes = shard.empty() || shard_path.is_absolute() ||
                   std::any_of(shard_path.begin(), shard_path.end(),
                               [](const fs::path& part) { return part == ".."; });
    if (escapes)
      fail(label, ": weight_map puts tensor '", tensor, "' in '", shard,
           "', which is not a file inside the checkpoint folder");
    auto [it, added] = shard_index.emplace(shard, checkpoint.shards_.size());
    if (added) checkpoint.shards_.push_back(SafetensorsFile::open(folder / shard_path));
    const SafetensorsFile& holder = checkpoint.shards_[it->second];
    if (!holder.find(tensor))
      fail(label, ": weight_map puts tensor '", tensor, "' in ", holder.path().string(),
           ", which has no such tensor");
    checkpoint.names_.push_back(tensor);
    checkpoint.shard_of_[tensor] = it->second;
  }
  return checkpoint;
}

void SafetensorsCheckpoint::set_nonfinite(NonFinite policy) {
  for (SafetensorsFile& shard : shards_) shard.set_nonfinite(policy);
}

std::string SafetensorsCheckpoint::description() const {
  if (shards_.size() == 1) return shards_.front().path().string();
  return "the " + std::to_string(shards_.size()) + " shards of " + path_.string();
}

int64_t SafetensorsCheckpoint::total_elements() const {
  int64_t total = 0;
  for (const std::string& name : names_)
    total = checked_add(total, shape_numel(find(name)->shape), path_.string() + ": the tensors' element count");
  return total;
}

const SafetensorsFile& SafetensorsCheckpoint::file_of(std::string_view name) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end())
    fail("checkpoint ", path_.string(), " has no tensor named '", name, "' (it holds ",
         names_.size(), " tensors)");
  return shards_[it->second];
}

const TensorInfo* SafetensorsCheckpoint::find(std::string_view name) const {
  auto it = shard_of_.find(name);
  return it == shard_of_.end() ? nullptr : shards_[it->second].find(name);
}

Tensor SafetensorsCheckpoint::read(std::string_view name) const { return file_of(name).read(name); }

void SafetensorsCheckpoint::read_into(std::string_view name, const Tensor& dst) const {
  file_of(name).read_into(name, dst);
}

// ---------------------------------------------------------------------------------------------
// Writing

void save_safetensors(const fs::path& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata,
                      std::optional<DType> store_dtype, NonFinite overflow) {
  std::string label = "cannot save " + path.string();
  if (store_dtype && !is_float_dtype(*store_dtype))
    fail(label, ": store dtype ", dtype_name(*store_dtype), " is not one of f32, f16, bf16");

  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [key, value] : metadata) {
      if (first_invalid_utf8(key) != std::string_view::npos ||
          first_invalid_utf8(value) != std::string_view::npos)
        fail(label, ": metadata entry '", key, "' is not valid UTF-8");
      meta[key] = value;
    }
    header["__metadata__"] = std::move(meta);
  }

  std::vector<DType> stored(tensors.size());
  std::set<std::string_view> seen;
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, tensor] = tensors[i];
    if (name == "__metadata__")
      fail(label, ": '__metadata__' is reserved and cannot name a tensor");
    if (first_invalid_utf8(name) != std::string_view::npos)
      fail(label, ": tensor name '", name, "' is not valid UTF-8");
    if (!seen.insert(name).second) fail(label, ": tensor name '", name, "' appears twice");
    if (!tensor.defined() && tensor.numel() != 0)
      fail(label, ": tensor '", name, "' has no memory");
    stored[i] = store_dtype && is_float_dtype(tensor.dtype()) ? *store_dtype : tensor.dtype();
    uint64_t bytes = uint64_t(tensor.numel()) * dtype_size(stored[i]);
    header[name] = Json{{"dtype", safetensors_dtype_name(stored[i])},
                        {"shape", tensor.shape()},
                        {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }

  std::string text = header.dump();             // compact, as the reference writer emits it
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  char length[8];
  for (int i = 0; i < 8; ++i) length[i] = char((uint64_t(text.size()) >> (8 * i)) & 0xff);

  AtomicFileWriter out(path);
  out.write(length, 8);
  out.write(text);
  std::vector<char> converted;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& tensor = tensors[i].second;
    if (tensor.numel() == 0) continue;
    Tensor host = tensor.device().is_cpu() ? tensor : tensor.to(Device::cpu());
    const char* data = static_cast<const char*>(host.raw());
    if (stored[i] == tensor.dtype()) {
      out.write(data, host.nbytes());
      continue;
    }
    size_t n = size_t(host.numel());
    converted.resize(std::min(n, kConvertChunk) * dtype_size(stored[i]));
    for (size_t done = 0; done < n; done += kConvertChunk) {
      size_t count = std::min(kConvertChunk, n - done);
      convert_elements(data + done * dtype_size(tensor.dtype()), tensor.dtype(), converted.data(),
                       stored[i], count);
      // A finite value beyond the narrower dtype's range would be stored as Inf, and the file then
      // refused when read: refuse it now, before the (atomic) file is committed.
      size_t first = 0;
      if (overflow != NonFinite::allow && count_nonfinite(converted.data(), stored[i], count, &first) >
          count_nonfinite(data + done * dtype_size(tensor.dtype()), tensor.dtype(), count)) {
        size_t at = 0;
        for (at = 0; at < count; ++at)
          if (!std::isfinite(float_element(converted.data(), stored[i], at)) &&
              std::isfinite(float_element(data + done * dtype_size(tensor.dtype()), tensor.dtype(), at)))
            break;
        const std::string what = detail::concat(
            path.string(), ": tensor '", tensors[i].first, "' holds ",
            float_element(data + done * dtype_size(tensor.dtype()), tensor.dtype(), at), " at element ", done + at,
            ", beyond ", safetensors_dtype_name(stored[i]), "'s range: stored as ", safetensors_dtype_name(stored[i]),
            " it becomes Inf");
        if (overflow == NonFinite::refuse) fail("cannot save ", what, "; store in BF16 or F32");
        std::fprintf(stderr, "wattwise: warning: %s\n", what.c_str());
      }
      out.write(converted.data(), count * dtype_size(stored[i]));
    }
  }
  out.commit();
}

}  // namespace ww::io
