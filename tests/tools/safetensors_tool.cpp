// Test helper for tests/cli/safetensors_python.sh: lets Python's safetensors check our reader and
// writer byte for byte.
//
//   safetensors_tool dump FILE
//       prints {"metadata": {...}, "tensors": [{"name", "dtype", "shape", "raw_hex", "f32_bits"}]}
//       in header order; f32_bits (floating tensors only) comes from read_into an F32 tensor.
//   safetensors_tool write SPEC.json OUT.safetensors [f32|f16|bf16]
//       SPEC: {"metadata": {...}, "tensors": [{"name", "dtype", "shape", "raw_hex"}]}; writes them
//       with save_safetensors, converting floating tensors to the optional store dtype.
//   safetensors_tool check FILE...
//       prints one JSON line per file: {"file", "ok", "error"}: whether open() accepts it.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "wattwise/core/error.h"
#include "wattwise/io/file.h"
#include "wattwise/io/safetensors.h"

using namespace ww;
using Json = nlohmann::ordered_json;

namespace {

std::string to_hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string from_hex(const std::string& hex) {
  auto value = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    fail("bad hex digit '", c, "'");
  };
  if (hex.size() % 2) fail("hex string of odd length");
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = char(value(hex[2 * i]) * 16 + value(hex[2 * i + 1]));
  return out;
}

int dump(const std::string& path) {
  io::SafetensorsFile file = io::SafetensorsFile::open(path);
  file.set_nonfinite(io::NonFinite::allow);  // the bits as they are: NaN and Inf included
  Json out = {{"metadata", file.metadata()}, {"tensors", Json::array()}};
  for (const io::TensorInfo& info : file.tensors()) {
    Json t = {{"name", info.name},
              {"dtype", safetensors_dtype_name(info.dtype)},
              {"shape", info.shape},
              {"raw_hex", to_hex(file.raw_bytes(info))}};
    if (info.dtype == DType::F32 || info.dtype == DType::F16 || info.dtype == DType::BF16) {
      Tensor widened = Tensor::empty(info.shape, DType::F32);
      file.read_into(info.name, widened);
      Json bits = Json::array();
      for (int64_t i = 0; i < widened.numel(); ++i) {
        uint32_t u;
        std::memcpy(&u, widened.data<float>() + i, 4);
        bits.push_back(u);
      }
      t["f32_bits"] = std::move(bits);
    }
    out["tensors"].push_back(std::move(t));
  }
  std::cout << out.dump() << "\n";
  return 0;
}

int write(const std::string& spec_path, const std::string& out_path, const std::string& store) {
  Json spec = Json::parse(io::read_file(spec_path));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const Json& t : spec.at("tensors")) {
    Tensor tensor =
        Tensor::empty(t.at("shape").get<Shape>(), parse_dtype(t.at("dtype").get<std::string>()));
    std::string bytes = from_hex(t.at("raw_hex").get<std::string>());
    if (bytes.size() != tensor.nbytes())
      fail("spec tensor '", t.at("name").get<std::string>(), "': ", bytes.size(), " bytes for ",
           tensor.describe());
    if (!bytes.empty()) std::memcpy(tensor.raw(), bytes.data(), bytes.size());
    tensors.emplace_back(t.at("name").get<std::string>(), tensor);
  }
  std::map<std::string, std::string> metadata =
      spec.at("metadata").get<std::map<std::string, std::string>>();
  std::optional<DType> store_dtype;
  if (!store.empty()) store_dtype = parse_dtype(store);
  // IEEE rounding as it is: values past F16's range become Inf, as numpy rounds them.
  io::save_safetensors(out_path, tensors, metadata, store_dtype, io::NonFinite::allow);
  return 0;
}

int check(int count, char** files) {
  for (int i = 0; i < count; ++i) {
    Json line = {{"file", files[i]}, {"ok", true}, {"error", ""}};
    try {
      io::SafetensorsFile::open(files[i]);
    } catch (const Error& e) {
      line["ok"] = false;
      line["error"] = e.what();
    }
    std::cout << line.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string command = argc > 1 ? argv[1] : "";
    if (command == "dump" && argc == 3) return dump(argv[2]);
    if (command == "check") return check(argc - 2, argv + 2);
    if (command == "write" && (argc == 4 || argc == 5))
      return write(argv[2], argv[3], argc == 5 ? argv[4] : "");
    std::cerr << "usage: safetensors_tool dump FILE | write SPEC.json OUT.safetensors "
                 "[f32|f16|bf16] | check FILE...\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "safetensors_tool: " << e.what() << "\n";
    return 1;
  }
}
