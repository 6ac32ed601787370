#pragma once
// Resumable training checkpoints of a run folder: <run>/checkpoints/step_<N>/, written by `wattwise
// train` every train.checkpoint_every steps, at the end, and when a signal interrupts it; read by
// `wattwise train --resume <run>`. Layout (format 1):
//
//   manifest.json          format, format_version, wattwise_version, step, task, world_size,
//                          config_fingerprint, the parameter and optimizer files (the optimizer as a
//                          list of shards: rank, file, element range), and every file's size and CRC-32
//   config.toml            the run's configuration when it was written
//   parameters.safetensors the f32 master weights, by parameter name (train/checkpoint.h)
//   optimizer.safetensors  the optimizer's state, one shard covering the flat buffers; or, when the
//                          ranks of a data-parallel job shard it (ZeRO 1/2), one file per rank,
//                          optimizer.rank<R>.safetensors, written by that rank (nothing is gathered)
//   trainer_state.json     everything else the run needs to go on as if never stopped: step, data
//                          position, trainer state (loss scale, skipped steps, dropout stream),
//                          evaluations, best metric, early-stopping count, time and energy so far
//   train_log.csv          the log as of this step (a resumed run continues from it)
//   plan_batches.jsonl     run.export_plan only: plan/batches.jsonl so far
//   best_model/            best_model/ as of this step, as hard links (no extra space), when one exists
//
// A checkpoint is written into a sibling temporary folder and renamed into place, so a crash or a
// full disk never leaves a half-written one; the newest train.checkpoint_keep are kept. With sharded
// optimizer state every rank writes its file into rank 0's temporary folder, so the run folder must
// be one every rank sees (one machine, or a shared file system; checked when the job starts).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/dist/process_group.h"
#include "wattwise/experiment/train_config.h"
#include "wattwise/models/parameters.h"
#include "wattwise/train/optimizer.h"

namespace ww::experiment {

inline constexpr int kCheckpointFormatVersion = 1;
inline constexpr const char* kCheckpointFormat = "wattwise-training-checkpoint";

// The keys `wattwise train --resume` may change (they change neither the steps taken so far nor
// what the checkpoint holds): train.max_steps, train.epochs, train.checkpoint_every,
// train.checkpoint_keep, run.progress.
const std::vector<std::string>& resume_overridable_keys();
// "crc32:<8 hex digits>" of the configuration as TOML with the resume-overridable keys at their
// defaults: equal for a run and its resumption, different when anything else changed.
std::string config_fingerprint(const TrainConfig& cfg);
// The version training checkpoints record ("0.1.0").
std::string wattwise_version();

// What the driver hands over to be written.
struct CheckpointWrite {
  int64_t step = 0;
  std::string task;  // "classification" or "language_modelling"
  const TrainConfig* config = nullptr;
  const models::ParameterStore* parameters = nullptr;
  const train::Optimizer* optimizer = nullptr;
  nlohmann::json state;                       // trainer_state.json
  std::string train_log;                      // train_log.csv as of this step
  const std::string* plan_batches = nullptr;  // run.export_plan: plan/batches.jsonl so far
  int64_t world_size = 1;                     // ranks of the job that wrote it
  // The job's group when its optimizer state is sharded: every rank writes its part (the other
  // ranks call join_checkpoint_round() at the same point).
  dist::ProcessGroup* group = nullptr;
};

// Writes <run_dir>/checkpoints/step_<step>/ atomically (replacing a checkpoint of the same step),
// then removes all but the newest `keep`. Returns the new folder.
std::filesystem::path write_checkpoint(const std::filesystem::path& run_dir, const CheckpointWrite& w, int64_t keep);

// Sharded optimizer state: what every rank other than 0 calls where rank 0 may write a checkpoint.
// Rank 0 says whether it writes one (write_checkpoint) or not (skip_checkpoint_round); when it does,
// this rank writes its optimizer shard into rank 0's temporary folder and reports its size and
// CRC-32. A failure on any rank fails the checkpoint on rank 0, and this rank's own one here.
void join_checkpoint_round(dist::ProcessGroup& group, const train::Optimizer& optimizer);
// Rank 0, sharded optimizer state, at a point where it writes no checkpoint after all (nothing
// changed since the last one): tells the other ranks.
void skip_checkpoint_round(dist::ProcessGroup& group);

// The complete checkpoints of a run (step_<N> folders; a temporary folder of an interrupted write
// is not one), by step, oldest first. A checkpoint being replaced by one of the same step is moved
// to step_<N>.old for a moment: when a crash leaves it there without a step_<N>, it counts.
std::vector<std::pair<int64_t, std::filesystem::path>> list_checkpoints(const std::filesystem::path& run_dir);

// A checkpoint read back and verified.
struct LoadedCheckpoint {
  std::filesystem::path dir;
  int64_t step = 0;
  nlohmann::json manifest, state;
  std::string train_log;
  std::optional<std::string> plan_batches;
  std::vector<std::filesystem::path> optimizer_shards;  // the optimizer state's files, by rank
};

// Opens the newest checkpoint of `run_dir` and verifies it before anything is loaded: the manifest
// (format and version, the optimizer's shards covering the parameters once), the task, the configuration (config_fingerprint(cfg) must
// match; otherwise the error lists the keys that differ), and every file's size and CRC-32. Any
// problem is one ww::Error naming the file (and an older checkpoint to fall back on, if any).
LoadedCheckpoint open_newest_checkpoint(const std::filesystem::path& run_dir, const TrainConfig& cfg,
                                        const std::string& task);
// Renames a checkpoint found as step_<N>.old back to step_<N> (and updates checkpoint.dir).
void recover_checkpoint(LoadedCheckpoint& checkpoint);
// Loads its parameters and optimizer state (this optimizer's part when sharded, from whichever of
// the checkpoint's shards hold it: any number of ranks resumes any other). Errors name the file and
// tensor; nothing is changed when a check fails.
void load_checkpoint_tensors(const LoadedCheckpoint& checkpoint, models::ParameterStore& parameters,
                             train::Optimizer& optimizer);
// Puts <run_dir>/best_model/ back as it was when the checkpoint was written: a best model saved
// after it (by the work a kill lost) is replaced, or removed when the checkpoint had none.
void restore_best_model(const LoadedCheckpoint& checkpoint, const std::filesystem::path& run_dir);
// Removes what an interrupted write leaves in a run folder: checkpoints/*.partial and *.old,
// best_model.partial and best_model.old, and temporary files of atomic writes.
void remove_write_debris(const std::filesystem::path& run_dir);

}  // namespace ww::experiment
