// safetensors reading, writing and validation; atomic file writes.
#include <gtest/gtest.h>

#include "test_util.h"
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "wattwise/core/dtype.h"
#include "wattwise/core/error.h"
#include "wattwise/core/tensor.h"
#include "wattwise/io/file.h"
#include "wattwise/io/safetensors.h"

using namespace ww;
using namespace ww::io;
namespace fs = std::filesystem;

namespace {

// A fresh folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("wattwise_io_" + std::to_string(::getpid()) + "_" +
                                         test->test_suite_name() + "_" + test->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  fs::path operator/(const std::string& name) const { return path_ / name; }
  const fs::path& path() const { return path_; }
  // Files in the folder, to check that no temporary file was left behind.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path_))
      names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path path_;
};

// 8-byte little-endian length, header text, data buffer.
std::string safetensors_bytes(const std::string& header, const std::string& buffer) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
  return out + header + buffer;
}

std::string with_length(uint64_t n, const std::string& rest) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
  return out + rest;
}

using ww::testing::expect_error;

// Writes the crafted bytes to a file and expects open() to fail naming the file and the problem.
void expect_corrupt(const TempDir& dir, const std::string& bytes,
                    const std::vector<std::string>& fragments) {
  fs::path file = dir / "corrupt.safetensors";
  write_file_atomic(file, bytes);
  std::vector<std::string> all = fragments;
  all.push_back(file.string());
  expect_error([&] { SafetensorsFile::open(file); }, all);
  // The in-memory entry point (used by the fuzzer) must agree.
  expect_error([&] { SafetensorsFile::from_bytes(bytes, "in-memory"); }, fragments);
}

std::string f32_bytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4);
}

Tensor make_tensor(const Shape& shape, DType dtype, int seed) {
  Tensor t = Tensor::empty(shape, dtype);
  auto n = size_t(t.numel());
  for (size_t i = 0; i < n; ++i) {
    float v =
        float(int(i * 7 + seed) % 23 - 11) * 0.37f;  // exact in bf16? no; exercised by rounding
    switch (dtype) {
      case DType::F32: t.data<float>()[i] = v; break;
      case DType::F16: t.data<half_bits>()[i].bits = float_to_half(v); break;
      case DType::BF16: t.data<bf16_bits>()[i].bits = float_to_bf16(v); break;
      case DType::I32: t.data<int32_t>()[i] = int32_t(i * 1000003 + seed) - 5000; break;
      case DType::I64: t.data<int64_t>()[i] = int64_t(i) * 123456789012345 - seed; break;
      case DType::U8: t.data<uint8_t>()[i] = uint8_t(i * 31 + seed); break;
      default: ADD_FAILURE() << "make_tensor: dtype not covered";
    }
  }
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(Safetensors, RoundTripAllDtypesEmptyAndScalar) {
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"encoder.weight", make_tensor({3, 5}, DType::F32, 1)},
      {"half", make_tensor({7}, DType::F16, 2)},
      {"brain", make_tensor({2, 3, 2}, DType::BF16, 3)},
      {"ids", make_tensor({4}, DType::I32, 4)},
      {"positions", make_tensor({2, 2}, DType::I64, 5)},
      {"empty", make_tensor({0, 3}, DType::F32, 6)},
      {"scalar", make_tensor({}, DType::F32, 7)},
      {"bytes", make_tensor({3}, DType::U8, 8)},
  };
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ünïcode ok"}};
  fs::path file = dir / "model.safetensors";
  save_safetensors(file, tensors, metadata);

  SafetensorsFile f = SafetensorsFile::open(file);
  EXPECT_EQ(f.path(), file);
  EXPECT_EQ(f.metadata(), metadata);
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, expected] = tensors[i];
    EXPECT_EQ(f.tensors()[i].name, name) << "header order must be the order given";
    const TensorInfo* info = f.find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->dtype, expected.dtype()) << name;
    EXPECT_EQ(info->shape, expected.shape()) << name;
    Tensor got = f.read(name);
    EXPECT_TRUE(same_bytes(got, expected)) << name;
  }
  EXPECT_EQ(f.find("nope"), nullptr);
  EXPECT_EQ(f.read("scalar").numel(), 1);
  EXPECT_EQ(f.read("empty").numel(), 0);
  expect_error([&] { f.read("nope"); }, {file.string(), "'nope'"});
}

TEST(Safetensors, HeaderIsAlignedAndDefaultsToFormatPt) {
  TempDir dir;
  fs::path file = dir / "a.safetensors";
  // A 5-letter name makes the raw header length not a multiple of 8.
  save_safetensors(
      file, {{"attn0", Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, {1, 1, 2, 3})}});
  std::string bytes = read_file(file);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  EXPECT_EQ((8 + n) % 8, 0u);
  std::string header = bytes.substr(8, n);
  std::string json = header.substr(0, header.find_last_not_of(' ') + 1);
  EXPECT_LT(header.size() - json.size(), 8u) << "pad only as much as alignment needs";
  EXPECT_EQ(
      json,
      R"({"__metadata__":{"format":"pt"},"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})");
  EXPECT_EQ(bytes.size(), 8 + n + 24);
  EXPECT_EQ(SafetensorsFile::open(file).metadata().at("format"), "pt");
}

TEST(Safetensors, NoTensorsAndNoMetadata) {
  TempDir dir;
  fs::path file = dir / "empty.safetensors";
  save_safetensors(file, {}, {});
  // The reference writer's bytes for an empty dict: "{}" padded to 8.
  EXPECT_EQ(read_file(file), with_length(8, "{}      "));
  SafetensorsFile f = SafetensorsFile::open(file);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_TRUE(f.metadata().empty());
}

TEST(Safetensors, StoreDtypeConvertsFloatsOnly) {
  TempDir dir;
  std::vector<float> values = {1.0f,     -2.5f,    3.14159265f, 1e-8f,
                               65504.0f, 70000.0f, -0.0f,       1.0f / 3.0f};
  Tensor weights = Tensor::from_vector(values, {2, 4});
  Tensor ids = make_tensor({3}, DType::I64, 1);
  Tensor already_half = make_tensor({5}, DType::F16, 2);

  // 70000 is beyond F16's range: stored as F16 it would be Inf, a file then refused on load. The
  // save is refused instead, and nothing is written.
  expect_error([&] { save_safetensors(dir / "overflow.safetensors", {{"w", weights}}, {}, DType::F16); },
               {"overflow.safetensors", "tensor 'w' holds 70000 at element 5, beyond F16's range"});
  EXPECT_FALSE(fs::exists(dir / "overflow.safetensors"));
  for (DType store : {DType::F16, DType::BF16}) {
    fs::path file = dir / ("stored_" + std::string(dtype_name(store)) + ".safetensors");
    if (store == DType::F16) values[5] = 60000.0f;  // in range
    weights = Tensor::from_vector(values, {2, 4});
    save_safetensors(file, {{"w", weights}, {"ids", ids}, {"h", already_half}}, {{"format", "pt"}},
                     store);
    SafetensorsFile f = SafetensorsFile::open(file);
    EXPECT_EQ(f.find("w")->dtype, store);
    EXPECT_EQ(f.find("ids")->dtype, DType::I64) << "integer tensors are written as they are";
    EXPECT_TRUE(same_bytes(f.read("ids"), ids));
    EXPECT_EQ(f.find("h")->dtype, store);
    Tensor w = f.read("w");
    for (size_t i = 0; i < values.size(); ++i) {
      uint16_t expected = store == DType::F16 ? float_to_half(values[i]) : float_to_bf16(values[i]);
      EXPECT_EQ(reinterpret_cast<const uint16_t*>(w.raw())[i], expected) << "element " << i;
    }
    std::vector<float> h = f.read("h").to_float_vector(), h0 = already_half.to_float_vector();
    for (size_t i = 0; i < h.size(); ++i) {
      float expected = store == DType::F16 ? h0[i] : bf16_to_float(float_to_bf16(h0[i]));
      EXPECT_EQ(h[i], expected);
    }
  }
  expect_error(
      [&] {
        save_safetensors(dir / "x.safetensors", {{"w", weights}}, {}, DType::I32);
      },
      {"store dtype", "i32"});
}

TEST(Safetensors, ReadIntoConvertsPrecision) {
  TempDir dir;
  std::vector<float> values = {0.5f, -1.25f, 3.140625f, 100.0f, -7.0e-3f, 2.0f};
  fs::path file = dir / "mixed.safetensors";
  Tensor f32 = Tensor::from_vector(values, {2, 3});
  Tensor f16 = Tensor::empty({2, 3}, DType::F16), bf16 = Tensor::empty({2, 3}, DType::BF16);
  for (size_t i = 0; i < values.size(); ++i) {
    f16.data<half_bits>()[i].bits = float_to_half(values[i]);
    bf16.data<bf16_bits>()[i].bits = float_to_bf16(values[i]);
  }
  save_safetensors(
      file,
      {{"f32", f32}, {"f16", f16}, {"bf16", bf16}, {"ids", make_tensor({2, 3}, DType::I32, 0)}});
  SafetensorsFile f = SafetensorsFile::open(file);

  // fp16/bf16 checkpoint -> f32 master weights: exact widening.
  for (const char* name : {"f16", "bf16"}) {
    Tensor dst = Tensor::zeros({2, 3}, DType::F32);
    f.read_into(name, dst);
    EXPECT_EQ(dst.to_float_vector(), f.read(name).to_float_vector()) << name;
  }
  // f32 -> f16 / bf16 rounds to nearest even.
  Tensor to_half = Tensor::zeros({2, 3}, DType::F16), to_bf16 = Tensor::zeros({2, 3}, DType::BF16);
  f.read_into("f32", to_half);
  f.read_into("f32", to_bf16);
  f.read_into("f16", Tensor::zeros({2, 3}, DType::BF16));  // f16 -> bf16 goes through f32
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(to_half.data<half_bits>()[i].bits, float_to_half(values[i]));
    EXPECT_EQ(to_bf16.data<bf16_bits>()[i].bits, float_to_bf16(values[i]));
  }
  // Same dtype: a plain copy.
  Tensor same = Tensor::zeros({2, 3}, DType::F32);
  f.read_into("f32", same);
  EXPECT_EQ(same.to_float_vector(), values);

  expect_error(
      [&] {
        f.read_into("f32", Tensor::zeros({3, 2}, DType::F32));
      },
      {file.string(), "'f32'", "[2, 3]", "[3, 2]"});
  expect_error(
      [&] {
        f.read_into("ids", Tensor::zeros({2, 3}, DType::F32));
      },
      {file.string(), "'ids'", "I32", "F32"});
  expect_error(
      [&] {
        f.read_into("missing", Tensor::zeros({2, 3}, DType::F32));
      },
      {file.string(), "'missing'"});
}

TEST(Safetensors, ReadsForeignUnalignedAndUnorderedFiles) {
  // Header not padded (data starts at an odd offset) and entries not in offset order: both legal.
  std::string header =
      R"({"b":{"dtype":"F16","shape":[1],"data_offsets":[4,6]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  uint16_t h = float_to_half(1.5f);
  std::string buffer = f32_bytes({2.25f}) + std::string(reinterpret_cast<const char*>(&h), 2);
  SafetensorsFile f = SafetensorsFile::from_bytes(safetensors_bytes(header, buffer), "foreign");
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[0].name, "b");
  Tensor dst = Tensor::zeros({1}, DType::F32);
  f.read_into("b", dst);
  EXPECT_EQ(dst.to_float_vector()[0], 1.5f);
  EXPECT_EQ(f.read("a").to_float_vector()[0], 2.25f);
}

// ---------------------------------------------------------------------------------------------
// Checkpoints: single file, sharded index, PyTorch-only folders

TEST(SafetensorsCheckpoint, SingleFileFolderAndPath) {
  TempDir dir;
  Tensor w = make_tensor({2, 2}, DType::F32, 3);
  save_safetensors(dir / "model.safetensors", {{"w", w}, {"b", make_tensor({2}, DType::F32, 4)}});
  for (const fs::path& p : {dir.path(), dir / "model.safetensors"}) {
    SafetensorsCheckpoint c = SafetensorsCheckpoint::open(p);
    EXPECT_EQ(c.names(), (std::vector<std::string>{"w", "b"}));
    EXPECT_TRUE(same_bytes(c.read("w"), w));
    EXPECT_NE(c.find("b"), nullptr);
    EXPECT_EQ(c.find("zz"), nullptr);
    expect_error([&] { c.read("zz"); }, {p.string(), "'zz'"});
  }
}

TEST(SafetensorsCheckpoint, ShardedIndex) {
  TempDir dir;
  Tensor a = make_tensor({3, 2}, DType::F32, 1), b = make_tensor({4}, DType::BF16, 2),
         c = make_tensor({2}, DType::I64, 3);
  save_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", a}, {"b", b}});
  save_safetensors(dir / "model-00002-of-00002.safetensors", {{"c", c}});
  write_file_atomic(dir / "model.safetensors.index.json", R"({"metadata": {"total_size": 48},
    "weight_map": {"c": "model-00002-of-00002.safetensors", "a": "model-00001-of-00002.safetensors",
                   "b": "model-00001-of-00002.safetensors"}})");
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir.path());
  EXPECT_EQ(ckpt.shards().size(), 2u);
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"c", "a", "b"}));
  EXPECT_TRUE(same_bytes(ckpt.read("a"), a));
  EXPECT_TRUE(same_bytes(ckpt.read("c"), c));
  Tensor b32 = Tensor::zeros({4}, DType::F32);
  ckpt.read_into("b", b32);
  EXPECT_EQ(b32.to_float_vector(), b.to_float_vector());
  EXPECT_EQ(ckpt.file_of("c").path(), dir / "model-00002-of-00002.safetensors");
  // The index file itself is accepted too.
  EXPECT_EQ(SafetensorsCheckpoint::open(dir / "model.safetensors.index.json").names().size(), 3u);
}

TEST(SafetensorsCheckpoint, BadIndexesAreClearErrors) {
  TempDir dir;
  save_safetensors(dir / "shard.safetensors", {{"a", make_tensor({1}, DType::F32, 0)}});
  fs::path index = dir / "model.safetensors.index.json";
  write_file_atomic(index,
                    R"({"weight_map": {"a": "shard.safetensors", "ghost": "shard.safetensors"}})");
  expect_error([&] { SafetensorsCheckpoint::open(dir.path()); },
               {index.string(), "'ghost'", "shard.safetensors"});
  write_file_atomic(index, R"({"weight_map": {"a": "../shard.safetensors"}})");
  expect_error([&] { SafetensorsCheckpoint::open(dir.path()); },
               {index.string(), "not a file inside"});
  write_file_atomic(index, R"({"weight_map": {"a": "missing.safetensors"}})");
  expect_error([&] { SafetensorsCheckpoint::open(dir.path()); },
               {"missing.safetensors", "No such file"});
  write_file_atomic(index, R"({"metadata": {}})");
  expect_error([&] { SafetensorsCheckpoint::open(dir.path()); }, {index.string(), "weight_map"});
  write_file_atomic(index, R"({"weight_map": {"a": 3}})");
  expect_error([&] { SafetensorsCheckpoint::open(dir.path()); }, {index.string(), "'a'", "string"});
  write_file_atomic(index,
                    R"({"weight_map": {"a": "shard.safetensors", "a": "shard.safetensors"}})");
  expect_error([&] { SafetensorsCheckpoint::open(dir.path()); },
               {index.string(), "duplicate key 'a'"});
}

TEST(SafetensorsCheckpoint, PytorchOnlyFolderExplainsConversion) {
  TempDir dir;
  write_file_atomic(dir / "pytorch_model.bin", "not read");
  write_file_atomic(dir / "config.json", "{}");
  expect_error([&] { SafetensorsCheckpoint::open(dir.path()); },
               {dir.path().string(), "pytorch_model.bin", "only safetensors", "save_pretrained",
                "safe_serialization=True"});
  expect_error([&] { SafetensorsCheckpoint::open(dir / "pytorch_model.bin"); },
               {"only safetensors"});
  fs::remove(dir / "pytorch_model.bin");
  expect_error([&] { SafetensorsCheckpoint::open(dir.path()); },
               {dir.path().string(), "model.safetensors"});
  save_safetensors(dir / "adapter.safetensors", {});
  expect_error([&] { SafetensorsCheckpoint::open(dir.path()); },
               {"it has adapter.safetensors (pass a file's path"});
  expect_error([&] { SafetensorsCheckpoint::open(dir / "nothing-here"); },
               {"nothing-here", "does not exist"});
}

// ---------------------------------------------------------------------------------------------
// Corrupt files: one test per problem. Each must name the file and the problem.

TEST(SafetensorsCorrupt, ShorterThanEightBytes) {
  TempDir dir;
  expect_corrupt(dir, "", {"fewer than the 8-byte"});
  expect_corrupt(dir, std::string("\x02\0\0", 3), {"3 bytes", "fewer than the 8-byte"});
}

TEST(SafetensorsCorrupt, HeaderLengthPastEndOfFile) {
  TempDir dir;
  expect_corrupt(dir, with_length(100, "{}"), {"header length 100", "past the end of the file"});
}

TEST(SafetensorsCorrupt, HeaderLengthAbsurd) {
  TempDir dir;
  expect_corrupt(dir, with_length(uint64_t(1) << 40, "{}"),
                 {"header length 1099511627776", "limit"});
  expect_corrupt(dir, with_length(~uint64_t(0), "{}"), {"header length 18446744073709551615"});
}

TEST(SafetensorsCorrupt, HeaderNotUtf8) {
  TempDir dir;
  expect_corrupt(dir, safetensors_bytes("{\"a\xff\":1}", ""), {"not valid UTF-8", "offset 11"});
  expect_corrupt(dir, safetensors_bytes("{\"\xc0\xaf\":1}", ""),
                 {"not valid UTF-8"});  // overlong '/'
  expect_corrupt(dir, safetensors_bytes("{\"\xed\xa0\x80\":1}", ""),
                 {"not valid UTF-8"});  // surrogate
}

TEST(SafetensorsCorrupt, HeaderNotJson) {
  TempDir dir;
  expect_corrupt(dir, safetensors_bytes("{\"a\": ", ""), {"not valid JSON"});
  expect_corrupt(dir, safetensors_bytes("", ""), {"not valid JSON"});
  expect_corrupt(dir, safetensors_bytes("{} trailing", ""), {"not valid JSON"});
  // nlohmann stops at a NUL byte; what follows must not be silently ignored.
  expect_corrupt(dir, safetensors_bytes(std::string("{}\0garbage", 10), ""),
                 {"not valid JSON", "NUL byte at byte 2"});
}

TEST(SafetensorsCorrupt, HeaderNotAnObject) {
  TempDir dir;
  expect_corrupt(dir, safetensors_bytes("[1, 2]", ""), {"must be a JSON object", "array"});
  expect_corrupt(dir, safetensors_bytes("\"text\"", ""), {"must be a JSON object", "string"});
}

TEST(SafetensorsCorrupt, EntryMissingFields) {
  TempDir dir;
  expect_corrupt(dir,
                 safetensors_bytes(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", f32_bytes({1})),
                 {"tensor 'w'", "missing \"dtype\""});
  expect_corrupt(dir,
                 safetensors_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", f32_bytes({1})),
                 {"tensor 'w'", "missing \"shape\""});
  expect_corrupt(dir, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1]}})", f32_bytes({1})),
                 {"tensor 'w'", "missing \"data_offsets\""});
}

TEST(SafetensorsCorrupt, EntryWrongJsonTypes) {
  TempDir dir;
  std::string one = f32_bytes({1});
  expect_corrupt(dir, safetensors_bytes(R"({"w":[1,2]})", one),
                 {"tensor 'w'", "must be an object"});
  expect_corrupt(dir,
                 safetensors_bytes(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", one),
                 {"tensor 'w'", "\"dtype\" must be a string", "number"});
  expect_corrupt(
      dir, safetensors_bytes(R"({"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", one),
      {"tensor 'w'", "\"shape\" must be an array"});
  expect_corrupt(
      dir, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", one),
      {"tensor 'w'", "\"data_offsets\" must be an array [begin, end]"});
  expect_corrupt(
      dir, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}})", one),
      {"tensor 'w'", "data_offsets begin must be a non-negative integer, got string"});
  expect_corrupt(
      dir, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[null],"data_offsets":[0,4]}})", one),
      {"tensor 'w'", "shape dimension must be a non-negative integer, got null"});
}

TEST(SafetensorsCorrupt, UnknownDtype) {
  TempDir dir;
  std::string one = f32_bytes({1});
  expect_corrupt(
      dir, safetensors_bytes(R"({"w":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", one),
      {"tensor 'w'", "unknown dtype 'F99'"});
  expect_corrupt(
      dir, safetensors_bytes(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", one),
      {"tensor 'w'", "unknown dtype 'f32'"});
  expect_corrupt(
      dir,
      safetensors_bytes(R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", one + one),
      {"tensor 'w'", "F64 is not supported"});
}

TEST(SafetensorsCorrupt, NegativeOrNonIntegerShape) {
  TempDir dir;
  std::string one = f32_bytes({1});
  expect_corrupt(
      dir, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", one),
      {"tensor 'w'", "shape dimension is negative (-1)"});
  expect_corrupt(
      dir, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", one),
      {"tensor 'w'", "shape dimension is not an integer (1.5)"});
  expect_corrupt(
      dir, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", one),
      {"tensor 'w'", "not an integer"});
}

TEST(SafetensorsCorrupt, ShapeOverflow) {
  TempDir dir;
  expect_corrupt(
      dir,
      safetensors_bytes(
          R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""),
      {"tensor 'w'", "more elements than can be addressed"});
  // numel fits in 63 bits but numel * 4 bytes does not.
  expect_corrupt(
      dir,
      safetensors_bytes(
          R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", ""),
      {"tensor 'w'", "needs 4611686018427387904 x 4 bytes"});
}

TEST(SafetensorsCorrupt, BeginPastEnd) {
  TempDir dir;
  expect_corrupt(dir,
                 safetensors_bytes(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})",
                                   f32_bytes({1})),
                 {"tensor 'w'", "[4, 0]", "begin past end"});
}

TEST(SafetensorsCorrupt, EndPastBuffer) {
  TempDir dir;
  expect_corrupt(dir,
                 safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                   f32_bytes({1})),
                 {"tensor 'w'", "past the end of the data buffer (4 bytes"});
  expect_corrupt(
      dir,
      safetensors_bytes(
          R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,18446744073709551615]}})",
          ""),
      {"tensor 'w'", "past the end of the data buffer"});
}

TEST(SafetensorsCorrupt, ByteSizeDiffersFromShape) {
  TempDir dir;
  expect_corrupt(dir,
                 safetensors_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                   f32_bytes({1, 2})),
                 {"tensor 'w'", "8 bytes in data_offsets", "shape [3] of F32 needs 3 x 4 bytes"});
}

TEST(SafetensorsCorrupt, OverlappingRanges) {
  TempDir dir;
  std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  expect_corrupt(dir, safetensors_bytes(header, f32_bytes({1, 2, 3})),
                 {"tensor 'b'", "overlap tensor 'a'"});
  // Two names for the same bytes is an overlap too.
  header =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  expect_corrupt(dir, safetensors_bytes(header, f32_bytes({1})), {"overlap"});
}

TEST(SafetensorsCorrupt, GapsAndTrailingBytes) {
  TempDir dir;
  std::string header =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  expect_corrupt(dir, safetensors_bytes(header, f32_bytes({1, 2, 3})),
                 {"gap", "bytes [4, 8)", "tensor 'b'"});
  header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_corrupt(dir, safetensors_bytes(header, f32_bytes({1, 2})), {"gap", "bytes [0, 4)"});
  header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  expect_corrupt(dir, safetensors_bytes(header, f32_bytes({1, 2})),
                 {"8 bytes", "cover only the first 4"});
}

TEST(SafetensorsCorrupt, DuplicateNames) {
  TempDir dir;
  std::string header =
      R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_corrupt(dir, safetensors_bytes(header, f32_bytes({1, 2})), {"duplicate key 'w'"});
  header = R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})";
  expect_corrupt(dir, safetensors_bytes(header, f32_bytes({1})), {"duplicate key 'dtype'"});
}

TEST(SafetensorsCorrupt, MetadataValuesNotStrings) {
  TempDir dir;
  expect_corrupt(dir, safetensors_bytes(R"({"__metadata__":{"format":"pt","epoch":3}})", ""),
                 {"__metadata__", "'epoch'", "must be a string", "number"});
  expect_corrupt(dir, safetensors_bytes(R"({"__metadata__":["pt"]})", ""),
                 {"__metadata__", "must be an object"});
}

TEST(SafetensorsCorrupt, DeepNestingIsRefused) {
  TempDir dir;
  std::string deep = "{\"w\":" + std::string(10000, '[') + std::string(10000, ']') + "}";
  expect_corrupt(dir, safetensors_bytes(deep, ""), {"nested deeper"});
}

TEST(SafetensorsCorrupt, NotARegularFile) {
  TempDir dir;
  expect_error([&] { SafetensorsFile::open(dir.path()); },
               {dir.path().string(), "not a regular file"});
  expect_error([&] { SafetensorsFile::open(dir / "absent.safetensors"); },
               {"absent.safetensors", "No such file"});
}

// Every truncation and every single-byte flip of a valid file must either parse or throw ww::Error.
TEST(SafetensorsCorrupt, TruncationsAndByteFlipsNeverCrash) {
  TempDir dir;
  fs::path file = dir / "ok.safetensors";
  save_safetensors(
      file, {{"a", make_tensor({2, 2}, DType::F32, 1)}, {"b", make_tensor({3}, DType::I64, 2)}});
  std::string good = read_file(file);
  size_t parsed = 0, refused = 0;
  auto attempt = [&](const std::string& bytes) {
    try {
      SafetensorsFile f = SafetensorsFile::from_bytes(bytes, "mutant");
      for (const TensorInfo& t : f.tensors()) {
        Tensor full = f.read(t.name);
        EXPECT_EQ(full.nbytes(), t.nbytes());
      }
      ++parsed;
    } catch (const Error&) {
      ++refused;
    }
  };
  for (size_t n = 0; n < good.size(); ++n) attempt(good.substr(0, n));
  for (size_t i = 0; i < good.size(); ++i)
    for (unsigned char flip : {0x01, 0x20, 0x80, 0xff}) {
      std::string bytes = good;
      bytes[i] = char(bytes[i] ^ flip);
      attempt(bytes);
    }
  EXPECT_GT(refused, good.size());  // every truncation is refused
  EXPECT_GT(parsed, 0u);            // flips inside the data buffer stay valid
}

// ---------------------------------------------------------------------------------------------
// Files

TEST(AtomicFile, WriteReadAndReplace) {
  TempDir dir;
  fs::path file = dir / "out.txt";
  write_file_atomic(file, "first");
  EXPECT_EQ(read_file(file), "first");
  write_file_atomic(file, std::string("second\0with nul", 15));
  EXPECT_EQ(read_file(file), std::string("second\0with nul", 15));
  write_file_atomic(file, "");
  EXPECT_EQ(read_file(file), "");
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"out.txt"}))
      << "no temporary file left behind";
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
  write_file_atomic(file, "private");
  EXPECT_EQ(fs::status(file).permissions(), fs::perms::owner_read | fs::perms::owner_write)
      << "replacing a file keeps its permissions";
}

TEST(AtomicFile, ReadFileErrorsNameFileAndReason) {
  TempDir dir;
  expect_error([&] { read_file(dir / "missing.txt"); },
               {(dir / "missing.txt").string(), "No such file or directory"});
  expect_error([&] { read_file(dir.path()); }, {dir.path().string(), "Is a directory"});
}

TEST(AtomicFile, UnwritableFolderFailsCleanly) {
  // Tests run as root, so permissions cannot force a failure: a parent that is a regular file can.
  TempDir dir;
  write_file_atomic(dir / "plain_file", "I am a file");
  fs::path target = dir / "plain_file" / "out.txt";
  expect_error([&] { write_file_atomic(target, "x"); }, {target.string(), "Not a directory"});
  expect_error([&] { save_safetensors(target, {}); }, {target.string(), "Not a directory"});
  expect_error([&] { write_file_atomic("/proc/wattwise-cannot-write-here", "x"); },
               {"/proc/wattwise-cannot-write-here"});
  EXPECT_EQ(read_file(dir / "plain_file"), "I am a file");
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"plain_file"}));
}

TEST(AtomicFile, FailedWriteLeavesOldFileIntact) {
  // A file-size limit makes write() fail part-way (EFBIG), like a full disk would, even as root.
  TempDir dir;
  fs::path file = dir / "model.safetensors";
  save_safetensors(file, {{"old", make_tensor({4}, DType::F32, 1)}});
  std::string before = read_file(file);

  struct rlimit saved {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  auto old_handler = signal(SIGXFSZ, SIG_IGN);  // report EFBIG instead of killing the process
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  expect_error([&] { write_file_atomic(file, std::string(100000, 'x')); },
               {file.string(), "File too large", "previous file, if any, is unchanged"});
  expect_error(
      [&] {
        save_safetensors(file, {{"big", Tensor::zeros({100000}, DType::F32)}});
      },
      {file.string(), "File too large"});
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, old_handler);

  EXPECT_EQ(read_file(file), before);
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"model.safetensors"}))
      << "temporary file removed";
  EXPECT_EQ(SafetensorsFile::open(file).tensors()[0].name, "old");
}

TEST(AtomicFile, UncommittedWriterDiscards) {
  TempDir dir;
  fs::path file = dir / "data.bin";
  write_file_atomic(file, "old contents");
  {
    AtomicFileWriter writer(file);
    writer.write("new contents that never land");
    EXPECT_TRUE(fs::exists(writer.temp_path()));
    EXPECT_EQ(writer.temp_path().parent_path(), file.parent_path())
        << "same folder, so rename is atomic";
  }
  EXPECT_EQ(read_file(file), "old contents");
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"data.bin"}));

  AtomicFileWriter streamed(file);
  for (int i = 0; i < 3; ++i) streamed.write("chunk" + std::to_string(i) + ";");
  EXPECT_EQ(streamed.bytes_written(), 21u);
  streamed.commit();
  EXPECT_FALSE(streamed.is_open());
  EXPECT_EQ(read_file(file), "chunk0;chunk1;chunk2;");
  expect_error([&] { streamed.write("more"); }, {file.string(), "not open"});
}

// NaN or Inf in a float tensor is refused at load (naming the file, the tensor, how many and where
// the first is) unless the caller allows it, in every float dtype and through every read path; other
// dtypes are not floats and never checked. The checkpoint's total size counts every tensor.
TEST(SafetensorsCheckpoint, NonFiniteWeightsAreRefusedUnlessAllowed) {
  TempDir dir;
  Tensor clean = Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2});
  Tensor bad = Tensor::from_vector(std::vector<float>{1, std::nanf(""), INFINITY, 4}, {4});
  Tensor ids = Tensor::from_vector(std::vector<int32_t>{-1, 7}, {2});
  for (DType store : {DType::F32, DType::F16, DType::BF16}) {
    save_safetensors(dir / "model.safetensors", {{"clean", clean}, {"bad", bad}, {"ids", ids}}, {{"format", "pt"}}, store);
    SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
    EXPECT_EQ(checkpoint.total_elements(), 10);
    Tensor into = Tensor::empty({4}, DType::F32);
    expect_error([&] { checkpoint.read_into("bad", into); },
                 {(dir / "model.safetensors").string(), "tensor 'bad' holds 2 non-finite values",
                  "the first, nan, at element 1 of 4", "--allow-nonfinite"});
    expect_error([&] { checkpoint.read("bad"); }, {"tensor 'bad' holds 2 non-finite values"});
    EXPECT_NO_THROW(checkpoint.read_into("clean", Tensor::empty({2, 2}, DType::F32)));
    EXPECT_NO_THROW(checkpoint.read("ids"));
    checkpoint.set_nonfinite(NonFinite::warn);
    checkpoint.read_into("bad", into);  // a warning on stderr, and the values as they are
    EXPECT_TRUE(std::isnan(into.data<float>()[1]));
    EXPECT_TRUE(std::isinf(into.data<float>()[2]));
  }
  float values[3] = {0, -INFINITY, 0};
  size_t first = 99;
  EXPECT_EQ(count_nonfinite(values, DType::F32, 3, &first), 1);
  EXPECT_EQ(first, 1u);
}
