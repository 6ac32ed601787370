// libFuzzer target: arbitrary bytes as a safetensors file. Parsing may refuse the input with
// ww::Error; anything else (a crash, a sanitizer report, another exception type) is a bug.
// Run through scripts/run-fuzzers.sh; seeds in fuzz/corpus/safetensors/.
#include <cstddef>
#include <cstdint>
#include <string>

#include "wattwise/core/error.h"
#include "wattwise/core/tensor.h"
#include "wattwise/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    ww::io::SafetensorsFile file = ww::io::SafetensorsFile::from_bytes(bytes, "fuzz-input");
    for (const ww::io::TensorInfo& info : file.tensors()) {
      // Whatever the header claimed, reading must stay inside the input.
      ww::Tensor copy = file.read(info.name);
      if (copy.nbytes() != info.nbytes()) __builtin_trap();
      if (info.dtype == ww::DType::F32 || info.dtype == ww::DType::F16 ||
          info.dtype == ww::DType::BF16) {
        ww::Tensor widened = ww::Tensor::empty(info.shape, ww::DType::F32);
        file.read_into(info.name, widened);
        ww::Tensor narrowed = ww::Tensor::empty(info.shape, ww::DType::BF16);
        file.read_into(info.name, narrowed);
      }
    }
  } catch (const ww::Error&) {
    // A clear refusal is the expected outcome for most inputs.
  }
  return 0;
}
