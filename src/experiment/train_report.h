#pragma once
// What a training run records about itself (train_run.cpp drives the run): metrics.json, status.json,
// the trainer_state.json of its checkpoints, and the checks of what metrics.json is compared with
// (train.target, train.scaling_baseline).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "train_loop.h"
#include "train_task.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/energy/monitor.h"
#include "wattwise/experiment/train_config.h"
#include "wattwise/models/runtime.h"
#include "wattwise/train/target.h"
#include "wattwise/train/trainer.h"

namespace ww::experiment {

// How a run (or this session of it) ended, for metrics.json, status.nlohmann::json and the exit code.
struct Ending {
  std::string status = "completed";  // or "interrupted"
  int signal = 0;
  std::filesystem::path checkpoint;  // the newest checkpoint written (empty: none)
  int64_t resumes = 0;  // sessions before this one
};

// What a data-parallel run reports beyond one process's metrics, gathered from the ranks.
struct JobReport {
  nlohmann::json memory_per_rank;      // rank_memory()
  nlohmann::json energy_by_machine;    // machine_energy_entry() per machine, rank 0's first
  nlohmann::json scaling_baseline;     // scaling_baseline_of() (null: none given)
  double loop_communication_s = 0;  // rank 0's time in collectives during this session's training loop
  double loop_seconds = 0;          // the wall time of this session's training loop
};

// metrics.json, the same layout for every task (docs/METRICS.md): what the driver measured, with
// the task's "model" and "data" objects and its entries of "train".
// With train.target's figures ("target") and MFU against the peak of `host`'s devices ("train").
nlohmann::json run_metrics(const TrainTask& task, const std::filesystem::path& run_dir, const RunOutcome& r,
                           const train::Trainer& trainer, models::ModelRuntime& m, nlohmann::json energy,
                           const Ending& ending, const dist::ProcessGroup* group, const JobReport& job,
                           const TrainConfig& cfg, const std::optional<train::TrainingTarget>& target,
                           const energy::HostInfo& host);

// status.json: how the run folder's last session stands (docs/METRICS.md). Written atomically; a
// failure to write it never hides the error being reported.
void write_status(const std::filesystem::path& run_dir, nlohmann::json status);

// trainer_state.json of a checkpoint: everything but the tensors.
nlohmann::json checkpoint_state(const RunOutcome& r, const train::Trainer& trainer, bool done, double seconds,
                                nlohmann::json energy, int64_t sessions, uint64_t seed);
// Reads checkpoint_state() back into `r`; errors name the file.
void restore_outcome(const nlohmann::json& state, const std::filesystem::path& file, RunOutcome& r);

// train.target, checked against what the task's evaluations report (before anything is trained).
std::optional<train::TrainingTarget> training_target_of(const TrainConfig& cfg, const TrainTask& task);
// train.scaling_baseline for this job: read and checked on rank 0 (whose machine holds the run
// folder) before anything is written; a bad file stops every rank with rank 0's error. Null when not
// given. One process has no scaling to report: it says so and ignores the key.
nlohmann::json scaling_baseline_of(const TrainConfig& cfg, const TrainTask& task, dist::ProcessGroup* group);

}  // namespace ww::experiment
