#include "wattwise/experiment/train_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>

#include "train_task.h"
#include "wattwise/core/error.h"
#include "wattwise/dist/world.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/io/file.h"
#include "wattwise/train/checkpoint.h"

#ifndef WW_VERSION
#define WW_VERSION "unknown"
#endif

namespace ww::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kParametersFile = "parameters.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kLogFile = "train_log.csv";
constexpr const char* kPlanFile = "plan_batches.jsonl";
constexpr const char* kConfigFile = "config.toml";
constexpr const char* kManifestFile = "manifest.json";

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "%08x", value);
  return text;
}

uint32_t crc32_of(std::string_view bytes) {
  uLong crc = crc32_z(0L, Z_NULL, 0);
  return uint32_t(crc32_z(crc, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

// Size and CRC-32 of a file, read in 4 MiB blocks.
std::pair<uint64_t, uint32_t> size_and_crc32(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path.string(), ": cannot read (", std::strerror(errno), ")");
  std::vector<unsigned char> buffer(size_t(4) << 20);
  uLong crc = crc32_z(0L, Z_NULL, 0);
  uint64_t size = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      fail(path.string(), ": cannot read (", std::strerror(error), ")");
    }
    if (n == 0) break;
    crc = crc32_z(crc, buffer.data(), size_t(n));
    size += uint64_t(n);
  }
  ::close(fd);
  return {size, uint32_t(crc)};
}

// step_<N> -> N (nullopt for anything else: step_3.partial, .step_3.tmp, step_x).
std::optional<int64_t> step_of_folder_name(std::string name) {
  if (name.rfind("step_", 0) != 0 || name.size() == 5) return std::nullopt;
  int64_t step = 0;
  const char* begin = name.data() + 5;
  const char* end = name.data() + name.size();
  auto [ptr, ec] = std::from_chars(begin, end, step);
  if (ec != std::errc() || ptr != end || step < 0) return std::nullopt;
  return step;
}

void fsync_folder(const fs::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);  // best effort: the files inside were fsynced by their writers
  ::close(fd);
}

// The files of `dir` as hard links in `into` (a copy where the file system cannot link).
void link_folder(const fs::path& dir, const fs::path& into) {
  fs::create_directories(into);
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const fs::path target = into / entry.path().filename();
    std::error_code ec;
    fs::create_hard_link(entry.path(), target, ec);
    if (ec) fs::copy_file(entry.path(), target, fs::copy_options::overwrite_existing);
  }
}

// The names of the regular files under `dir` (one level; best_model/ has no subfolders), relative.
std::vector<std::string> files_in(const fs::path& dir, const std::string& prefix = "") {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory()) {
      for (const std::string& inner : files_in(entry.path(), prefix + name + "/")) names.push_back(inner);
    } else if (entry.is_regular_file()) {
      names.push_back(prefix + name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

// A rank's optimizer shard in a checkpoint of sharded state.
std::string optimizer_shard_name(int rank) { return "optimizer.rank" + std::to_string(rank) + ".safetensors"; }

// This rank's optimizer shard written into `folder`, and every rank's outcome, by rank: "<bytes>
// <crc32>", or "error: <what went wrong>". A collective.
std::vector<std::string> write_optimizer_shards(dist::ProcessGroup& group, const train::Optimizer& optimizer,
                                                const fs::path& folder) {
  std::string mine;
  try {
    const fs::path path = folder / optimizer_shard_name(group.rank());
    std::error_code ec;
    if (!fs::is_directory(folder, ec))
      fail(folder.string(), ": not found by rank ", group.rank(), " on ", dist::host_name(), " (a sharded optimizer's checkpoint needs "
           "the run folder on a file system every rank sees)");
    train::save_optimizer_state(path, optimizer, group.size());
    const auto [bytes, crc] = size_and_crc32(path);
    mine = std::to_string(bytes) + " " + hex32(crc);
  } catch (const std::exception& e) {
    mine = std::string("error: ") + e.what();
  }
  std::vector<std::string> results;
  for (int rank = 0; rank < group.size(); ++rank) {
    std::string text = rank == group.rank() ? mine : std::string();
    group.broadcast_text(text, rank);
    results.push_back(text);
  }
  return results;
}

// A rank's "<bytes> <crc32>" (an error it reports fails the checkpoint, naming the rank).
std::pair<uint64_t, std::string> parse_shard_result(const std::string& result, int rank, const fs::path& file) {
  if (result.rfind("error: ", 0) == 0) fail("checkpoint: rank ", rank, " could not write its optimizer shard: ", result.substr(7));
  unsigned long long bytes = 0;
  char crc[9] = {0};
  if (std::sscanf(result.c_str(), "%llu %8s", &bytes, crc) != 2 || std::strlen(crc) != 8)
    fail("checkpoint: rank ", rank, " sent '", result, "' for ", file.string());
  std::error_code ec;
  const uint64_t size = fs::file_size(file, ec);
  if (ec || size != bytes)
    fail(file.string(), ": rank ", rank, " wrote ", bytes, " bytes, ",
         ec ? "but the file is not found here (a sharded optimizer's checkpoint needs the run folder on a file system "
              "every rank sees)"
            : "but the file here has " + std::to_string(size));
  return {uint64_t(bytes), crc};
}

}  // namespace

void join_checkpoint_round(dist::ProcessGroup& group, const train::Optimizer& optimizer) {
  WW_CHECK(group.rank() != 0, "rank 0 writes the checkpoint");
  std::string folder;
  group.broadcast_text(folder, 0);
  if (folder.empty()) return;  // rank 0 writes none this time
  const std::vector<std::string> results = write_optimizer_shards(group, optimizer, folder);
  const std::string& mine = results[size_t(group.rank())];
  if (mine.rfind("error: ", 0) == 0) fail("checkpoint: rank ", group.rank(), ": ", mine.substr(7));
}

void skip_checkpoint_round(dist::ProcessGroup& group) {
  std::string none;
  group.broadcast_text(none, 0);
}

const std::vector<std::string>& resume_overridable_keys() {
  static const std::vector<std::string> keys = {"train.max_steps", "train.epochs", "train.checkpoint_every",
                                                "train.checkpoint_keep", "run.progress"};
  return keys;
}

std::string wattwise_version() { return WW_VERSION; }

std::string config_fingerprint(const TrainConfig& cfg) {
  TrainConfig normalised = cfg;
  const TrainConfig defaults;
  for (const std::string& key : resume_overridable_keys())
    normalised.set(key, defaults.get_string(key), "fingerprint");
  return "crc32:" + hex32(crc32_of(normalised.to_toml()));
}

fs::path write_checkpoint(const fs::path& run_dir, const CheckpointWrite& w, int64_t keep) {
  WW_CHECK(w.config && w.parameters && w.optimizer, "checkpoint without its parts");
  WW_CHECK(!w.group || w.group->rank() == 0, "a checkpoint is written by rank 0");
  const fs::path folder = run_dir / "checkpoints";
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) fail(folder.string(), ": cannot create the checkpoints folder (", ec.message(), ")");
  const fs::path dir = folder / ("step_" + std::to_string(w.step));
  const bool sharded = w.group && w.optimizer->sharded();
  const int64_t numel = w.parameters->numel();
  save_model_folder(
      [&](const fs::path& tmp) {
        fs::create_directories(tmp);
        json shards = json::array();
        std::map<std::string, std::pair<uint64_t, std::string>> reported;  // shard file -> size, CRC-32
        if (sharded) {
          // Every rank writes its part of the optimizer state here, and says how it went.
          std::string where = fs::absolute(tmp).string();
          w.group->broadcast_text(where, 0);
          const std::vector<std::string> results = write_optimizer_shards(*w.group, *w.optimizer, tmp);
          const std::vector<int64_t> counts = train::shard_counts(numel, w.group->size());
          int64_t begin = 0;
          for (int rank = 0; rank < w.group->size(); ++rank) {
            const std::string name = optimizer_shard_name(rank);
            const auto [bytes, crc] = parse_shard_result(results[size_t(rank)], rank, tmp / name);
            reported[name] = {bytes, crc};
            shards.push_back({{"rank", rank}, {"file", name}, {"begin", begin}, {"end", begin + counts[size_t(rank)]}});
            begin += counts[size_t(rank)];
          }
        } else {
          train::save_optimizer_state(tmp / kOptimizerFile, *w.optimizer);
          shards.push_back({{"rank", 0}, {"file", kOptimizerFile}, {"begin", 0}, {"end", numel}});
        }
        train::save_parameters(tmp / kParametersFile, *w.parameters);
        io::write_file_atomic(tmp / kStateFile, w.state.dump(1) + "\n");
        io::write_file_atomic(tmp / kLogFile, w.train_log);
        io::write_file_atomic(tmp / kConfigFile, w.config->to_toml());
        if (w.plan_batches) io::write_file_atomic(tmp / kPlanFile, *w.plan_batches);
        if (fs::is_directory(run_dir / "best_model")) link_folder(run_dir / "best_model", tmp / "best_model");
        json files = json::object();
        for (const std::string& name : files_in(tmp)) {
          auto it = reported.find(name);
          if (it != reported.end()) {  // the rank that wrote it read it back
            files[name] = {{"bytes", it->second.first}, {"crc32", it->second.second}};
            continue;
          }
          const auto [size, crc] = size_and_crc32(tmp / name);
          files[name] = {{"bytes", size}, {"crc32", hex32(crc)}};
        }
        for (const auto& [name, info] : reported)
          if (!files.contains(name)) fail((tmp / name).string(), ": written by its rank but not found here");
        const json manifest = {
            {"format", kCheckpointFormat},
            {"format_version", kCheckpointFormatVersion},
            {"wattwise_version", WW_VERSION},
            {"created", utc_timestamp()},
            {"step", w.step},
            {"task", w.task},
            {"world_size", w.world_size},
            {"config_fingerprint", config_fingerprint(*w.config)},
            {"parameters", {{"file", kParametersFile}, {"count", w.parameters->all().size()}, {"numel", numel}}},
            {"optimizer",
             {{"kind", std::string(train::optimizer_kind_name(w.optimizer->options().kind))},
              {"numel", numel},
              {"shards", shards}}},
            {"files", files}};
        // Last: a folder with a manifest is complete.
        io::write_file_atomic(tmp / kManifestFile, manifest.dump(2) + "\n");
      },
      dir);
  fsync_folder(folder);
  // Keep the newest `keep` (the one just written is the newest: steps only grow).
  const auto all = list_checkpoints(run_dir);
  for (size_t i = 0; i + size_t(keep) < all.size(); ++i) {
    if (all[i].second == dir) continue;
    fs::remove_all(all[i].second, ec);
  }
  return dir;
}

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  const fs::path folder = run_dir / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return found;
  std::vector<std::pair<int64_t, fs::path>> moved_aside;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (!entry.is_directory()) continue;
    std::string name = entry.path().filename().string();
    const bool old = name.size() > 4 && name.compare(name.size() - 4, 4, ".old") == 0;
    if (old) name.resize(name.size() - 4);
    if (auto step = step_of_folder_name(name)) (old ? moved_aside : found).emplace_back(*step, entry.path());
  }
  for (const auto& [step, path] : moved_aside) {
    const bool replaced = std::any_of(found.begin(), found.end(), [&](const auto& f) { return f.first == step; });
    if (!replaced && fs::exists(path / kManifestFile)) found.emplace_back(step, path);
  }
  std::sort(found.begin(), found.end());
  return found;
}

namespace {

json read_json_file(const fs::path& path) {
  const std::string text = io::read_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(path.string(), ": not valid JSON (", e.what(), ")");
  }
}

// The keys whose values differ between the configuration a checkpoint was written with and now.
std::string config_differences(const fs::path& stored_path, const TrainConfig& now) {
  TrainConfig stored;
  try {
    stored.merge_toml_text(io::read_file(stored_path), stored_path.string());
  } catch (const Error& e) {
    return std::string("its copy cannot be read: ") + e.what();
  }
  const auto& overridable = resume_overridable_keys();
  std::string out;
  int shown = 0, total = 0;
  for (const ConfigKey& k : train_config_schema()) {
    if (std::find(overridable.begin(), overridable.end(), k.key) != overridable.end()) continue;
    if (stored.get_string(k.key) == now.get_string(k.key)) continue;
    ++total;
    if (shown == 4) continue;
    ++shown;
    out += (out.empty() ? "" : "; ") + k.key + " was '" + stored.get_string(k.key) + "', is '" + now.get_string(k.key) + "'";
  }
  if (total > shown) out += "; and " + std::to_string(total - shown) + " more";
  return out.empty() ? "no key differs, but the fingerprint does (the checkpoint's config.toml was changed)" : out;
}

}  // namespace

LoadedCheckpoint open_newest_checkpoint(const fs::path& run_dir, const TrainConfig& cfg, const std::string& task) {
  const auto all = list_checkpoints(run_dir);
  if (all.empty())
    fail(run_dir.string(), ": no training checkpoint to resume from (", (run_dir / "checkpoints").string(),
         " holds none; a run writes one when a signal interrupts it, and every train.checkpoint_every steps)");
  LoadedCheckpoint c;
  c.step = all.back().first;
  c.dir = all.back().second;
  // Where to point a user whose newest checkpoint is damaged.
  const std::string fallback =
      all.size() > 1 ? " (the older checkpoint " + all[all.size() - 2].second.string() +
                           " remains: remove this one to resume from it)"
                     : "";
  try {
    const fs::path manifest_path = c.dir / kManifestFile;
    if (!fs::exists(manifest_path)) fail(manifest_path.string(), ": missing (an incomplete checkpoint)");
    c.manifest = read_json_file(manifest_path);
    const json& m = c.manifest;
    if (!m.is_object() || m.value("format", "") != kCheckpointFormat || !m.contains("format_version") ||
        !m["format_version"].is_number_integer())
      fail(manifest_path.string(), ": not a wattwise training checkpoint manifest");
    const int version = m["format_version"].get<int>();
    if (version > kCheckpointFormatVersion)
      fail(manifest_path.string(), ": checkpoint format ", version, " (written by wattwise ",
           m.value("wattwise_version", "?"), ") is newer than this wattwise reads (", kCheckpointFormatVersion, ")");
    if (m.value("step", int64_t(-1)) != c.step)
      fail(manifest_path.string(), ": says step ", m.value("step", int64_t(-1)), " but the folder is of step ", c.step);
    const json world_size = m.value("world_size", json());
    if (!world_size.is_number_integer() || world_size.get<int64_t>() < 1)
      fail(manifest_path.string(), ": world_size ", world_size.dump(), " is not a number of processes >= 1");
    if (m.value("task", "") != task)
      fail(manifest_path.string(), ": a ", m.value("task", "?"), " run, but the configuration trains ", task);
    if (m.value("config_fingerprint", "") != config_fingerprint(cfg))
      fail((run_dir / "config.toml").string(), ": not the configuration checkpoint ", c.dir.filename().string(),
           " was written with (", config_differences(c.dir / kConfigFile, cfg),
           "); only train.max_steps, train.epochs, train.checkpoint_every, train.checkpoint_keep and run.progress may "
           "change on --resume");
    if (!m.contains("files") || !m["files"].is_object()) fail(manifest_path.string(), ": no file list");
    for (const char* required : {kParametersFile, kStateFile, kLogFile, kConfigFile})
      if (!m["files"].contains(required)) fail(manifest_path.string(), ": lists no ", required);
    // The optimizer's shards, by rank (their ranges are checked against the files' own when loaded).
    const json shards = m.value("optimizer", json::object()).value("shards", json());
    if (!shards.is_array() || shards.empty())
      fail(manifest_path.string(), ": optimizer.shards is not a list of the optimizer state's files");
    for (size_t rank = 0; rank < shards.size(); ++rank) {
      const json& shard = shards[rank];
      const json file = shard.is_object() ? shard.value("file", json()) : json();
      if (!file.is_string() || shard.value("rank", json()) != json(rank))
        fail(manifest_path.string(), ": optimizer.shards[", rank, "] is not {\"rank\": ", rank, ", \"file\": ...}");
      if (!m["files"].contains(file.get<std::string>()))
        fail(manifest_path.string(), ": optimizer.shards[", rank, "]'s file ", file.get<std::string>(), " is not listed");
      c.optimizer_shards.push_back(c.dir / file.get<std::string>());
    }
    for (const auto& [name, info] : m["files"].items()) {
      const fs::path file = c.dir / name;
      if (name.find("..") != std::string::npos || name.empty() || name[0] == '/')
        fail(manifest_path.string(), ": bad file name '", name, "'");
      if (!fs::exists(file)) fail(file.string(), ": missing (the checkpoint is incomplete)");
      const auto [size, crc] = size_and_crc32(file);
      if (size != info.value("bytes", uint64_t(0)))
        fail(file.string(), ": damaged or truncated (", size, " bytes, the manifest says ", info.value("bytes", uint64_t(0)), ")");
      if (hex32(crc) != info.value("crc32", ""))
        fail(file.string(), ": damaged (CRC-32 ", hex32(crc), ", the manifest says ", info.value("crc32", ""), ")");
    }
    c.state = read_json_file(c.dir / kStateFile);
    if (!c.state.is_object() || c.state.value("step", int64_t(-1)) != c.step)
      fail((c.dir / kStateFile).string(), ": not the state of step ", c.step);
    c.train_log = io::read_file(c.dir / kLogFile);
    if (m["files"].contains(kPlanFile)) c.plan_batches = io::read_file(c.dir / kPlanFile);
  } catch (const Error& e) {
    fail(e.what(), fallback);
  }
  return c;
}

void recover_checkpoint(LoadedCheckpoint& checkpoint) {
  const fs::path dir = checkpoint.dir.parent_path() / ("step_" + std::to_string(checkpoint.step));
  if (checkpoint.dir == dir) return;
  std::error_code ec;
  fs::rename(checkpoint.dir, dir, ec);
  if (ec) fail(checkpoint.dir.string(), ": cannot move the checkpoint back to ", dir.string(), " (", ec.message(), ")");
  checkpoint.dir = dir;
  for (fs::path& shard : checkpoint.optimizer_shards) shard = dir / shard.filename();
}

void load_checkpoint_tensors(const LoadedCheckpoint& checkpoint, models::ParameterStore& parameters,
                             train::Optimizer& optimizer) {
  train::load_parameters(checkpoint.dir / kParametersFile, parameters);
  train::load_optimizer_state(checkpoint.optimizer_shards, optimizer, parameters.numel());
}

void restore_best_model(const LoadedCheckpoint& checkpoint, const fs::path& run_dir) {
  const fs::path saved = checkpoint.dir / "best_model", live = run_dir / "best_model";
  std::error_code ec;
  if (!fs::is_directory(saved)) {
    if (fs::exists(live)) fs::remove_all(live);  // saved after the checkpoint: from work now undone
    return;
  }
  // Unchanged since the checkpoint: every file is the same inode.
  if (fs::is_directory(live, ec)) {
    const auto a = files_in(saved), b = files_in(live);
    bool same = a == b;
    for (size_t i = 0; same && i < a.size(); ++i) same = fs::equivalent(saved / a[i], live / a[i], ec) && !ec;
    if (same) return;
  }
  save_model_folder([&](const fs::path& tmp) { link_folder(saved, tmp); }, live);
}

void remove_write_debris(const fs::path& run_dir) {
  std::error_code ec;
  auto is_debris = [](const std::string& name) {
    auto ends_with = [&](const std::string& suffix) {
      return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    return ends_with(".partial") || ends_with(".old") || (name[0] == '.' && name.find(".tmp-") != std::string::npos);
  };
  for (const fs::path& folder : {run_dir, run_dir / "checkpoints", run_dir / "best_model"}) {
    if (!fs::is_directory(folder, ec)) continue;
    std::vector<fs::path> doomed;
    for (const auto& entry : fs::directory_iterator(folder, ec))
      if (is_debris(entry.path().filename().string())) doomed.push_back(entry.path());
    for (const fs::path& path : doomed) fs::remove_all(path, ec);
  }
}

}  // namespace ww::experiment
