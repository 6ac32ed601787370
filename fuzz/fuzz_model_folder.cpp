// libFuzzer target: a whole model folder from one input, the way `predict --model DIR` meets it:
// config.json (BERT, DistilBERT or GPT-2), a tokenizer (tokenizer.json or vocab.txt) and
// model.safetensors, loaded together and checked against each other (the config's size against the
// checkpoint and the machine, the tokenizer's ids against the config's vocabulary, every tensor
// read and widened). Refusing the input with ww::Error is fine; a crash, a sanitizer report, a
// huge allocation (libFuzzer's -rss_limit_mb) or another exception type is a bug.
//
// Input layout: u32 LE config length, u32 LE tokenizer length, the config bytes, the tokenizer
// bytes, then the safetensors bytes. Seeds: fuzz/corpus/model_folder/ (make_model_folder_seeds.py).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "wattwise/core/error.h"
#include "wattwise/core/tensor.h"
#include "wattwise/io/safetensors.h"
#include "wattwise/models/config.h"
#include "wattwise/models/gpt2.h"
#include "wattwise/text/tokenizer.h"

namespace fs = std::filesystem;

namespace {

const fs::path& folder() {
  static const fs::path path = [] {
    char pattern[] = "/tmp/ww_fuzz_model_XXXXXX";
    const char* made = mkdtemp(pattern);
    if (made == nullptr) std::abort();
    return fs::path(made);
  }();
  return path;
}

void write(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

uint32_t read_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// What the loader takes from the config before building the model.
struct ConfigFacts {
  int64_t parameters = 0;
  std::string sizes;
};

ConfigFacts load_config(const fs::path& dir) {
  ConfigFacts facts;
  const std::string text = [&] {
    std::ifstream in(dir / "config.json", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  if (text.find("\"gpt2\"") != std::string::npos) {
    const ww::models::Gpt2Config config = ww::models::Gpt2Config::load(dir);
    config.check_fits(ww::Device::cpu(), 4, "config.json");
    facts = {config.parameter_count(), config.sizes()};
  } else {
    const ww::models::ModelConfig config = ww::models::load_model_config(dir);
    config.check_fits(ww::Device::cpu(), 4, "config.json");
    facts = {config.parameter_count(), config.sizes()};
  }
  return facts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  const uint64_t config_size = read_u32(data), tokenizer_size = read_u32(data + 4);
  if (config_size + tokenizer_size > size - 8) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 8, size - 8);
  const std::string_view config = rest.substr(0, config_size);
  const std::string_view tokenizer = rest.substr(config_size, tokenizer_size);
  const std::string_view weights = rest.substr(config_size + tokenizer_size);

  const fs::path& dir = folder();
  fs::remove(dir / "tokenizer.json");
  fs::remove(dir / "vocab.txt");
  write(dir / "config.json", config);
  write(dir / (!tokenizer.empty() && tokenizer.front() == '{' ? "tokenizer.json" : "vocab.txt"), tokenizer);
  write(dir / "model.safetensors", weights);

  try {
    const ConfigFacts facts = load_config(dir);
    const ww::io::SafetensorsCheckpoint checkpoint = ww::io::SafetensorsCheckpoint::open(dir);
    ww::models::check_config_matches_checkpoint(facts.parameters, facts.sizes, checkpoint.total_elements(),
                                                "config.json", checkpoint.description());
    for (const std::string& name : checkpoint.names()) {
      const ww::io::TensorInfo* info = checkpoint.find(name);
      if (info->dtype == ww::DType::F32 || info->dtype == ww::DType::F16 || info->dtype == ww::DType::BF16) {
        ww::Tensor widened = ww::Tensor::empty(info->shape, ww::DType::F32);
        checkpoint.read_into(name, widened);
      }
    }
    const auto tokenizer_loaded = ww::text::load_tokenizer(dir);
    // Whatever the files held, the ids it produces lie in its own vocabulary.
    const ww::text::Encoding encoding = tokenizer_loaded->encode("Hello, world! naïve café 日本", "a pair", 32);
    for (int32_t id : encoding.input_ids)
      if (id < 0 || id >= tokenizer_loaded->vocab_size()) __builtin_trap();
  } catch (const ww::Error&) {
    // A clear refusal is the expected outcome for most inputs.
  }
  return 0;
}
