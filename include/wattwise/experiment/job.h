#pragma once
// A process a launcher started (torchrun, mpirun, srun, `wattwise launch`): the device it runs on
// and the group it joins. Shared by `train` and `bench`.
#include <chrono>
#include <memory>
#include <string>

#include "wattwise/core/device.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/dist/world.h"

namespace ww::experiment {

// The device `text` names ("cpu", "auto", "cuda", "cuda:N"), except that each rank of a job on GPUs
// takes the GPU of its LOCAL_RANK for "auto" or "cuda". Errors name `option` (the key or flag the
// user gave): one GPU named for several ranks on a machine, a LOCAL_RANK past the machine's GPUs.
Device rank_device(const std::string& text, const dist::World& world, const std::string& option);

// Joins the job `world` describes (null for a single process); every rank must give the same
// `fingerprint`. While ranks are missing, who waits for whom goes to stderr.
std::unique_ptr<dist::ProcessGroup> join_launched_job(const dist::World& world, Device device,
                                                      std::chrono::milliseconds timeout, const std::string& fingerprint);

}  // namespace ww::experiment
