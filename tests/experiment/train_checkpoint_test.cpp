// experiment/train_checkpoint.h: the checkpoint folders of a run (written atomically, listed,
// pruned to train.checkpoint_keep), their verification before a resume (manifest, configuration
// fingerprint, sizes and CRC-32s: each problem one error naming the file, and the older checkpoint
// to fall back on), best_model/ put back as a checkpoint saw it, and what an interrupted write
// leaves cleaned up.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "dist_test_util.h"
#include "test_util.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/experiment/run_energy.h"
#include "wattwise/experiment/train_checkpoint.h"
#include "wattwise/io/file.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/train/trainer.h"

using namespace ww;
using namespace ww::experiment;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "ww_train_checkpoint_test_XXXXXX").string();
    path = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

TrainConfig config() {
  TrainConfig c;
  c.set("data.path", "data.tsv", "test");
  c.set("model.tokenizer", "tok", "test");
  return c;
}

// A tiny model and its optimizer, and a checkpoint writer for them.
struct Fixture {
  TempDir dir;
  TrainConfig cfg = config();
  models::SequenceClassifier model;
  train::Optimizer optimizer;
  Fixture() : model(make_model()), optimizer(model.parameters(), train::OptimizerOptions{}) {}
  static models::SequenceClassifier make_model() {
    models::ModelConfig c = models::preset_config(models::Architecture::Bert, "tiny", 30);
    c.num_layers = 1;
    c.max_position_embeddings = 8;
    models::SequenceClassifier m(c, Device::cpu());
    m.init_weights(3);
    return m;
  }
  fs::path write(int64_t step, int64_t keep) {
    CheckpointWrite w;
    w.step = step;
    w.task = "classification";
    w.config = &cfg;
    w.parameters = &model.parameters();
    w.optimizer = &optimizer;
    w.state = {{"step", step}};
    w.train_log = "step,loss\n1,0.5\n";
    return write_checkpoint(dir.path, w, keep);
  }
};

std::vector<int64_t> steps_of(const fs::path& run_dir) {
  std::vector<int64_t> steps;
  for (const auto& [step, path] : list_checkpoints(run_dir)) steps.push_back(step);
  return steps;
}

void flip_byte(const fs::path& file, size_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c = 0;
  f.get(c);
  f.seekp(std::streamoff(offset));
  f.put(char(c ^ 0x5a));
}

}  // namespace

TEST(TrainCheckpoint, FingerprintIgnoresOnlyTheKeysResumeMayChange) {
  const TrainConfig base = config();
  for (const std::string& key : resume_overridable_keys()) {
    TrainConfig changed = base;
    changed.set(key, key == "run.progress" ? "lines" : key == "train.epochs" ? "7.5" : "17", "test");
    EXPECT_EQ(config_fingerprint(changed), config_fingerprint(base)) << key;
  }
  TrainConfig other = base;
  other.set("train.lr", "0.001", "test");
  EXPECT_NE(config_fingerprint(other), config_fingerprint(base));
  EXPECT_EQ(config_fingerprint(base).rfind("crc32:", 0), 0u);
}

TEST(TrainCheckpoint, WritesCompleteFoldersAndKeepsTheNewest) {
  Fixture f;
  for (int64_t step : {2, 4, 6}) f.write(step, 2);
  EXPECT_EQ(steps_of(f.dir.path), (std::vector<int64_t>{4, 6}));
  const fs::path six = f.dir.path / "checkpoints" / "step_6";
  for (const char* file : {"manifest.json", "config.toml", "parameters.safetensors", "optimizer.safetensors",
                           "trainer_state.json", "train_log.csv"})
    EXPECT_TRUE(fs::exists(six / file)) << file;
  EXPECT_FALSE(fs::exists(six / "best_model"));  // the run had none yet
  // Leftovers of an interrupted write and foreign folders are not checkpoints.
  fs::create_directories(f.dir.path / "checkpoints" / "step_8.partial");
  fs::create_directories(f.dir.path / "checkpoints" / "step_x");
  EXPECT_EQ(steps_of(f.dir.path), (std::vector<int64_t>{4, 6}));
  // Keep 1 leaves only the newest; rewriting a step replaces it.
  f.write(6, 1);
  EXPECT_EQ(steps_of(f.dir.path), (std::vector<int64_t>{6}));
  remove_write_debris(f.dir.path);
  EXPECT_FALSE(fs::exists(f.dir.path / "checkpoints" / "step_8.partial"));
  EXPECT_TRUE(fs::exists(f.dir.path / "checkpoints" / "step_x"));
}

TEST(TrainCheckpoint, OpensTheNewestAfterVerifyingIt) {
  Fixture f;
  f.write(4, 2);
  f.write(6, 2);
  LoadedCheckpoint c = open_newest_checkpoint(f.dir.path, f.cfg, "classification");
  EXPECT_EQ(c.step, 6);
  EXPECT_EQ(c.state["step"], 6);
  EXPECT_EQ(c.train_log, "step,loss\n1,0.5\n");
  EXPECT_EQ(c.manifest["format"], kCheckpointFormat);
  EXPECT_EQ(c.manifest["world_size"], 1);
  EXPECT_EQ(c.manifest["optimizer"]["shards"].size(), 1u);

  // Another configuration: the keys that differ are named.
  TrainConfig other = f.cfg;
  other.set("train.lr", "0.125", "test");
  other.set("train.max_steps", "99", "test");  // allowed to differ
  ww::testing::expect_error([&] { open_newest_checkpoint(f.dir.path, other, "classification"); },
                        {"config.toml: not the configuration checkpoint step_6 was written with",
                         "train.lr was '5e-05', is '0.125'"});
  ww::testing::expect_error([&] { open_newest_checkpoint(f.dir.path, f.cfg, "language_modelling"); },
                        {"manifest.json", "a classification run"});

  // A damaged file: named, with the older checkpoint to fall back on.
  const fs::path params = f.dir.path / "checkpoints" / "step_6" / "parameters.safetensors";
  flip_byte(params, fs::file_size(params) - 3);
  ww::testing::expect_error([&] { open_newest_checkpoint(f.dir.path, f.cfg, "classification"); },
                        {"step_6/parameters.safetensors: damaged (CRC-32", "step_4 remains"});
  flip_byte(params, fs::file_size(params) - 3);  // back as it was
  fs::resize_file(f.dir.path / "checkpoints" / "step_6" / "train_log.csv", 3);
  ww::testing::expect_error([&] { open_newest_checkpoint(f.dir.path, f.cfg, "classification"); },
                        {"step_6/train_log.csv: damaged or truncated (3 bytes"});
  fs::remove(f.dir.path / "checkpoints" / "step_6" / "manifest.json");
  ww::testing::expect_error([&] { open_newest_checkpoint(f.dir.path, f.cfg, "classification"); },
                        {"step_6/manifest.json: missing (an incomplete checkpoint)"});
  fs::remove_all(f.dir.path / "checkpoints");
  ww::testing::expect_error([&] { open_newest_checkpoint(f.dir.path, f.cfg, "classification"); },
                        {"no training checkpoint to resume from"});
}

TEST(TrainCheckpoint, ACheckpointMovedAsideByACutShortReplacementCounts) {
  Fixture f;
  f.write(2, 2);
  const fs::path dir = f.write(4, 2);
  // A replacement of step_4 interrupted between its two renames: step_4.old and step_4.partial.
  fs::rename(dir, dir.string() + ".old");
  fs::create_directories(dir.string() + ".partial");
  EXPECT_EQ(steps_of(f.dir.path), (std::vector<int64_t>{2, 4}));
  LoadedCheckpoint c = open_newest_checkpoint(f.dir.path, f.cfg, "classification");
  EXPECT_EQ(c.step, 4);
  recover_checkpoint(c);
  EXPECT_EQ(c.dir, dir);
  EXPECT_TRUE(fs::exists(dir / "manifest.json"));
  remove_write_debris(f.dir.path);
  EXPECT_FALSE(fs::exists(dir.string() + ".partial"));
  // With step_4 in place, a step_4.old beside it is debris, not a second checkpoint.
  fs::create_directories(dir.string() + ".old");
  io::write_file_atomic(fs::path(dir.string() + ".old") / "manifest.json", "{}");
  EXPECT_EQ(steps_of(f.dir.path), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(open_newest_checkpoint(f.dir.path, f.cfg, "classification").dir, dir);
}

TEST(TrainCheckpoint, NewerFormatsAreRefused) {
  Fixture f;
  const fs::path dir = f.write(2, 1);
  nlohmann::json manifest = nlohmann::json::parse(io::read_file(dir / "manifest.json"));
  manifest["format_version"] = kCheckpointFormatVersion + 1;
  io::write_file_atomic(dir / "manifest.json", manifest.dump());
  ww::testing::expect_error([&] { open_newest_checkpoint(f.dir.path, f.cfg, "classification"); },
                        {"manifest.json: checkpoint format 2", "newer than this wattwise reads (1)"});
  manifest["format_version"] = kCheckpointFormatVersion;
  manifest["world_size"] = 0;
  io::write_file_atomic(dir / "manifest.json", manifest.dump());
  ww::testing::expect_error([&] { open_newest_checkpoint(f.dir.path, f.cfg, "classification"); },
                        {"manifest.json: world_size 0 is not a number of processes >= 1"});
  // A data-parallel job's checkpoint resumes on any number of ranks.
  manifest["world_size"] = 4;
  io::write_file_atomic(dir / "manifest.json", manifest.dump());
  EXPECT_NO_THROW(open_newest_checkpoint(f.dir.path, f.cfg, "classification"));
  // The optimizer's shards must be listed by rank, with files the manifest lists.
  nlohmann::json bad = manifest;
  bad["optimizer"]["shards"].push_back(manifest["optimizer"]["shards"][0]);
  io::write_file_atomic(dir / "manifest.json", bad.dump());
  ww::testing::expect_error([&] { open_newest_checkpoint(f.dir.path, f.cfg, "classification"); },
                            {"manifest.json: optimizer.shards[1] is not {\"rank\": 1"});
  bad = manifest;
  bad["optimizer"]["shards"][0]["file"] = "optimizer.rank0.safetensors";
  io::write_file_atomic(dir / "manifest.json", bad.dump());
  ww::testing::expect_error([&] { open_newest_checkpoint(f.dir.path, f.cfg, "classification"); },
                            {"optimizer.shards[0]'s file optimizer.rank0.safetensors is not listed"});
  bad = manifest;
  bad["optimizer"].erase("shards");
  io::write_file_atomic(dir / "manifest.json", bad.dump());
  ww::testing::expect_error([&] { open_newest_checkpoint(f.dir.path, f.cfg, "classification"); },
                            {"optimizer.shards is not a list"});
}

// ZeRO: three ranks (threads joined through Gloo) each write their part of the optimizer state into
// rank 0's checkpoint; the checkpoint lists the shards, and loads into two ranks, or one process,
// bit for bit. A round rank 0 skips writes nothing.
TEST(TrainCheckpoint, ShardedOptimizerStateIsWrittenByEveryRankAndReshardsOnLoad) {
  Fixture f;  // rank 0's folder and configuration; its own model is the reference
  const int64_t n = f.model.parameters().numel();
  // The reference state: a few AdamW steps with made-up gradients, the same on every replica.
  auto train_steps = [](models::SequenceClassifier& model, train::Optimizer& optimizer) {
    for (int step = 0; step < 3; ++step) {
      std::vector<float> g(size_t(model.parameters().numel()));
      for (size_t i = 0; i < g.size(); ++i) g[i] = float(int((i * 7 + size_t(step) * 13) % 17) - 8) * 1e-2f;
      model.parameters().flat_grads().copy_from(Tensor::from_vector(g, {int64_t(g.size())}));
      optimizer.step(1e-2);
    }
  };
  train_steps(f.model, f.optimizer);
  auto state_of = [](const train::Optimizer& optimizer, const std::string& which) {
    for (const auto& [name, t] : optimizer.state())
      if (name == which) return t.to_float_vector();
    return std::vector<float>();
  };
  const std::vector<float> expected = state_of(f.optimizer, "exp_avg_sq");

  fs::path written;
  const ww::testing::Rendezvous three_ranks;
  auto errors = ww::testing::run_ranks(3, [&](int rank) {
    dist::JoinOptions join;
    join.timeout = std::chrono::seconds(60);
    auto group = dist::join(three_ranks.world(rank, 3), Device::cpu(), join);
    models::SequenceClassifier model = Fixture::make_model();
    train::Optimizer optimizer(model.parameters(), train::OptimizerOptions{}, train::shard_of(group.get(), n));
    train_steps(model, optimizer);
    if (rank == 0) {
      skip_checkpoint_round(*group);
      CheckpointWrite w;
      w.step = 3;
      w.task = "classification";
      w.config = &f.cfg;
      w.parameters = &model.parameters();
      w.optimizer = &optimizer;
      w.state = {{"step", 3}};
      w.world_size = 3;
      w.group = group.get();
      written = write_checkpoint(f.dir.path, w, 2);
    } else {
      join_checkpoint_round(*group, optimizer);  // skipped
      join_checkpoint_round(*group, optimizer);
    }
  });
  for (int r = 0; r < 3; ++r) ASSERT_EQ(errors[size_t(r)], "") << "rank " << r;
  const nlohmann::json manifest = nlohmann::json::parse(io::read_file(written / "manifest.json"));
  ASSERT_EQ(manifest["optimizer"]["shards"].size(), 3u);
  const std::vector<int64_t> counts = train::shard_counts(n, 3);
  EXPECT_EQ(manifest["optimizer"]["shards"][1],
            (nlohmann::json{{"rank", 1}, {"file", "optimizer.rank1.safetensors"}, {"begin", counts[0]},
                            {"end", counts[0] + counts[1]}}));
  EXPECT_FALSE(fs::exists(written / "optimizer.safetensors"));
  EXPECT_EQ(steps_of(f.dir.path), (std::vector<int64_t>{3}));  // the skipped round wrote nothing

  // Into one process: the whole state.
  LoadedCheckpoint c = open_newest_checkpoint(f.dir.path, f.cfg, "classification");
  ASSERT_EQ(c.optimizer_shards.size(), 3u);
  models::SequenceClassifier whole_model = Fixture::make_model();
  train::Optimizer whole(whole_model.parameters(), train::OptimizerOptions{});
  load_checkpoint_tensors(c, whole_model.parameters(), whole);
  EXPECT_EQ(state_of(whole, "exp_avg_sq"), expected);
  EXPECT_EQ(whole.steps_taken(), 3);
  // Into two ranks: each its part.
  std::vector<std::vector<float>> parts(2);
  const ww::testing::Rendezvous two_ranks;
  errors = ww::testing::run_ranks(2, [&](int rank) {
    dist::JoinOptions join;
    join.timeout = std::chrono::seconds(60);
    auto group = dist::join(two_ranks.world(rank, 2), Device::cpu(), join);
    models::SequenceClassifier model = Fixture::make_model();
    train::Optimizer optimizer(model.parameters(), train::OptimizerOptions{}, train::shard_of(group.get(), n));
    load_checkpoint_tensors(c, model.parameters(), optimizer);
    parts[size_t(rank)] = state_of(optimizer, "exp_avg_sq");
  });
  for (int r = 0; r < 2; ++r) ASSERT_EQ(errors[size_t(r)], "") << "rank " << r;
  std::vector<float> joined = parts[0];
  joined.insert(joined.end(), parts[1].begin(), parts[1].end());
  EXPECT_EQ(parts[0].size(), size_t(train::shard_counts(n, 2)[0]));
  EXPECT_EQ(joined, expected);
  // A damaged shard is found before anything loads.
  flip_byte(written / "optimizer.rank2.safetensors", 200);
  ww::testing::expect_error([&] { open_newest_checkpoint(f.dir.path, f.cfg, "classification"); },
                            {"optimizer.rank2.safetensors: damaged (CRC-32"});
}

TEST(TrainCheckpoint, BestModelIsLinkedAndPutBackAsTheCheckpointSawIt) {
  Fixture f;
  const fs::path best = f.dir.path / "best_model";
  fs::create_directories(best);
  io::write_file_atomic(best / "model.safetensors", "first best");
  const fs::path dir = f.write(3, 2);
  EXPECT_TRUE(fs::equivalent(dir / "best_model" / "model.safetensors", best / "model.safetensors"));  // a link
  // A later best model (saved after the checkpoint by work a kill then lost) is replaced.
  fs::remove_all(best);
  fs::create_directories(best);
  io::write_file_atomic(best / "model.safetensors", "a later best");
  io::write_file_atomic(best / "extra.json", "{}");
  LoadedCheckpoint c = open_newest_checkpoint(f.dir.path, f.cfg, "classification");
  restore_best_model(c, f.dir.path);
  EXPECT_EQ(io::read_file(best / "model.safetensors"), "first best");
  EXPECT_FALSE(fs::exists(best / "extra.json"));
  // A checkpoint from before any best model: one saved since is removed.
  fs::remove_all(f.dir.path / "checkpoints");
  fs::remove_all(best);
  f.write(1, 2);
  fs::create_directories(best);
  io::write_file_atomic(best / "model.safetensors", "after the checkpoint");
  restore_best_model(open_newest_checkpoint(f.dir.path, f.cfg, "classification"), f.dir.path);
  EXPECT_FALSE(fs::exists(best));
}

TEST(RunEnergy, WindowsOfTwoSessionsAdd) {
  const nlohmann::json before = {
      {"name", "training"}, {"duration_s", 10.0}, {"energy_j", 100.0}, {"gpu_j", nullptr}, {"cpu_j", 80.0},
      {"ram_j", 20.0}, {"kwh", 100.0 / 3.6e6}, {"gco2e", 0.01}, {"avg_w", 10.0}, {"gpu_present", false},
      {"gpu_absent_reason", "no NVML"}, {"samples", 40}, {"j_per_sample", 2.5},
      {"sources", {{{"source", "cpu"}, {"energy_j", 80.0}, {"avg_w", 8.0}, {"measured", false}, {"provenance", "estimated: TDP"}},
                   {{"source", "ram"}, {"energy_j", 20.0}, {"avg_w", 2.0}, {"measured", false}, {"provenance", "estimated: RAM"}}}},
      {"carbon", {{"pue", 1.0}}}, {"notes", {"first"}}, {"baseline", nullptr}};
  nlohmann::json after = before;
  after["duration_s"] = 30.0;
  after["energy_j"] = 300.0;
  after["cpu_j"] = 240.0;
  after["ram_j"] = 60.0;
  after["kwh"] = 300.0 / 3.6e6;
  after["gco2e"] = 0.03;
  after["samples"] = 60;
  after["sources"][0]["energy_j"] = 240.0;
  after["sources"][0]["measured"] = true;
  after["sources"][0]["provenance"] = "measured: RAPL";
  after["sources"][1]["energy_j"] = 60.0;
  after["notes"] = {"second"};
  const nlohmann::json sum = add_energy_windows(before, after);
  EXPECT_DOUBLE_EQ(sum["duration_s"], 40.0);
  EXPECT_DOUBLE_EQ(sum["energy_j"], 400.0);
  EXPECT_DOUBLE_EQ(sum["cpu_j"], 320.0);
  EXPECT_DOUBLE_EQ(sum["ram_j"], 80.0);
  EXPECT_DOUBLE_EQ(sum["kwh"], 400.0 / 3.6e6);
  EXPECT_DOUBLE_EQ(sum["gco2e"], 0.04);
  EXPECT_DOUBLE_EQ(sum["avg_w"], 10.0);
  EXPECT_TRUE(sum["gpu_j"].is_null());
  EXPECT_EQ(sum["samples"], 100);
  EXPECT_DOUBLE_EQ(sum["j_per_sample"], 4.0);
  ASSERT_EQ(sum["sources"].size(), 2u);
  EXPECT_DOUBLE_EQ(sum["sources"][0]["energy_j"], 320.0);
  EXPECT_DOUBLE_EQ(sum["sources"][0]["avg_w"], 8.0);
  EXPECT_FALSE(sum["sources"][0]["measured"]);  // measured only when both parts were
  EXPECT_EQ(sum["sources"][0]["provenance"], "estimated: TDP; then measured: RAPL");
  EXPECT_EQ(sum["sources"][1]["provenance"], "estimated: RAM");
  EXPECT_EQ(sum["notes"], nlohmann::json({"first", "second"}));
  EXPECT_EQ(add_energy_windows(nullptr, after), after);
}
