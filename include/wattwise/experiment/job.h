#pragma once
// A process a launcher started (torchrun, mpirun, srun, `wattwise launch`): the device it runs on
// and the group it joins. Shared by `train` and `bench`.
#include <chrono>
#include <memory>
#include <string>

#include "wattwise/core/device.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/dist/world.h"
#include "wattwise/models/runtime.h"
#include "wattwise/train/trainer.h"

#include <nlohmann/json.hpp>

namespace ww::experiment {

// The device `text` names ("cpu", "auto", "cuda", "cuda:N"), except that each rank of a job on GPUs
// takes the GPU of its LOCAL_RANK for "auto" or "cuda". Errors name `option` (the key or flag the
// user gave): one GPU named for several ranks on a machine, a LOCAL_RANK past the machine's GPUs.
Device rank_device(const std::string& text, const dist::World& world, const std::string& option);

// Joins the job `world` describes (null for a single process); every rank must give the same
// `fingerprint`. While ranks are missing, who waits for whom goes to stderr.
std::unique_ptr<dist::ProcessGroup> join_launched_job(const dist::World& world, Device device,
                                                      std::chrono::milliseconds timeout, const std::string& fingerprint);

// What every rank holds, in bytes, collected from all ranks (a collective: every rank calls it at the
// same point): [{rank, parameter_bytes, gradient_bytes, optimizer_state_bytes, model_state_bytes
// (the three together), activation_bytes, peak_memory_bytes}]. ZeRO 1 and 2 cut the optimizer state
// to about 1/N; ZeRO 2 also the gradients (the layers' slots, the embeddings' and head's, and the
// rank's part of the sums, instead of the whole buffer).
nlohmann::json rank_memory(dist::ProcessGroup& group, const train::Trainer& trainer, const models::ModelRuntime& model,
                           Device device);

}  // namespace ww::experiment
