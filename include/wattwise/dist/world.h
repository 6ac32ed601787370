#pragma once
// Who this process is in a distributed job, read from the environment its launcher set, so the
// launchers users already have drive wattwise unchanged: torchrun (and `wattwise launch`) set
// WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT; Open MPI's mpirun
// sets OMPI_COMM_WORLD_SIZE / _RANK / _LOCAL_RANK / _LOCAL_SIZE; Slurm's srun sets
// SLURM_STEP_NUM_TASKS, SLURM_PROCID, SLURM_LOCALID and SLURM_STEP_TASKS_PER_NODE. Under mpirun
// and srun the rendezvous address still comes from MASTER_ADDR / MASTER_PORT (default
// 127.0.0.1:29500, torchrun's port: one machine needs nothing more).
#include <cstdint>
#include <functional>
#include <string>

namespace ww::dist {

struct World {
  int rank = 0, size = 1;              // this process among all of the job's processes
  int local_rank = 0, local_size = 1;  // among those on this machine (picks the GPU)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Rank 0's rendezvous socket, already listening on master_port, when its launcher bound it
  // (WW_RENDEZVOUS_FD, which `wattwise launch` sets when it picks the port): a port found free and
  // closed could be taken by another process before rank 0 binds it; -1 for rank 0 to bind it.
  int rendezvous_fd = -1;
  std::string launcher;  // "torchrun" (WORLD_SIZE...), "mpirun", "srun", or "" (one process)
  bool distributed() const { return size > 1; }
  // Whether this process joins a job: several ranks, or torchrun-style variables even for one
  // (`wattwise launch --nproc 1`, `torchrun --nproc-per-node 1`: the data-parallel path over one
  // rank, as DDP runs it, which is how its overhead is measured). One task of mpirun or srun stays
  // a plain process: a single-task Slurm job must not need a free rendezvous port.
  bool joins() const { return size > 1 || launcher == "torchrun"; }
  std::string describe() const;  // "rank 1 of 3 (local 1 of 3), rendezvous 127.0.0.1:29500"
};

// The world this process belongs to; a single process (size 1) when no launcher variable is set.
// Bad values throw ww::Error naming the variable ("RANK=3 is not below WORLD_SIZE=2").
World world_from_environment();
// The same from any lookup (tests): `lookup(name)` returns the value or nullptr.
World world_from(const std::function<const char*(const char*)>& lookup);
// This machine's name (gethostname), the address peers reach it by when MASTER_ADDR is not loopback.
std::string host_name();
// Which machine this rank is on, for grouping the ranks by machine (whose meters count whose
// energy): $WW_HOST_NAME when set, else host_name(). The override is for containers whose names
// do not tell their machines apart (or apart from each other), and for tests that pose ranks of
// one machine as several.
std::string machine_name();

}  // namespace ww::dist
