// The distributed world read from each launcher's environment, and the errors for bad values.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>

#include "wattwise/core/error.h"
#include "wattwise/dist/store.h"
#include "wattwise/dist/world.h"

namespace ww::dist {
namespace {

World world_of(const std::map<std::string, std::string>& env) {
  return world_from([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

std::string error_of(const std::map<std::string, std::string>& env) {
  try {
    world_of(env);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(World, NoLauncherIsOneProcess) {
  const World w = world_of({});
  EXPECT_EQ(w.size, 1);
  EXPECT_EQ(w.rank, 0);
  EXPECT_FALSE(w.distributed());
  EXPECT_EQ(w.launcher, "");
  EXPECT_EQ(w.master_addr, "127.0.0.1");
  EXPECT_EQ(w.master_port, 29500);
}

TEST(World, TorchrunVariables) {
  const World w = world_of({{"WORLD_SIZE", "4"}, {"RANK", "3"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                            {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "12345"}});
  EXPECT_EQ(w.launcher, "torchrun");
  EXPECT_EQ(w.size, 4);
  EXPECT_EQ(w.rank, 3);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 2);
  EXPECT_EQ(w.master_addr, "node7");
  EXPECT_EQ(w.master_port, 12345);
  EXPECT_TRUE(w.distributed());
  EXPECT_EQ(w.describe(), "rank 3 of 4 (local 1 of 2), rendezvous node7:12345");
}

TEST(World, MpirunVariablesWithDefaultRendezvous) {
  const World w = world_of({{"OMPI_COMM_WORLD_SIZE", "3"}, {"OMPI_COMM_WORLD_RANK", "2"},
                            {"OMPI_COMM_WORLD_LOCAL_RANK", "2"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}});
  EXPECT_EQ(w.launcher, "mpirun");
  EXPECT_EQ(w.size, 3);
  EXPECT_EQ(w.rank, 2);
  EXPECT_EQ(w.local_rank, 2);
  EXPECT_EQ(w.master_addr, "127.0.0.1");
  EXPECT_EQ(w.master_port, 29500);
}

TEST(World, SrunStepVariables) {
  const World w = world_of({{"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_PROCID", "5"}, {"SLURM_LOCALID", "1"},
                            {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"}, {"SLURM_NTASKS", "8"}});
  EXPECT_EQ(w.launcher, "srun");
  EXPECT_EQ(w.size, 8);
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 4);
}

TEST(World, ABatchScriptOutsideSrunIsOneProcess) {
  // sbatch sets SLURM_NTASKS and SLURM_PROCID for the script itself: not a job of N processes.
  const World w = world_of({{"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "0"}});
  EXPECT_FALSE(w.distributed());
}

TEST(World, TorchrunVariablesWinOverTheLaunchers) {
  const World w = world_of({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                            {"OMPI_COMM_WORLD_RANK", "3"}});
  EXPECT_EQ(w.launcher, "torchrun");
  EXPECT_EQ(w.size, 2);
  EXPECT_EQ(w.rank, 1);
}

TEST(World, BadValuesNameTheVariable) {
  EXPECT_EQ(error_of({{"WORLD_SIZE", "2"}, {"RANK", "2"}}), "environment variable RANK=2 is not below WORLD_SIZE=2");
  EXPECT_EQ(error_of({{"WORLD_SIZE", "two"}, {"RANK", "0"}}), "environment variable WORLD_SIZE='two' is not a whole number");
  EXPECT_EQ(error_of({{"WORLD_SIZE", "0"}, {"RANK", "0"}}), "environment variable WORLD_SIZE=0 is out of range [1, 65536]");
  EXPECT_EQ(error_of({{"WORLD_SIZE", "2"}}),
            "environment variable WORLD_SIZE is set but RANK is not (every process needs its rank)");
  EXPECT_EQ(error_of({{"MASTER_PORT", "70000"}}), "environment variable MASTER_PORT=70000 is out of range [1, 65535]");
  EXPECT_EQ(error_of({{"MASTER_PORT", "29500x"}}), "environment variable MASTER_PORT='29500x' is not a whole number");
  EXPECT_EQ(error_of({{"MASTER_ADDR", ""}}),
            "environment variable MASTER_ADDR is empty (the host of rank 0, e.g. 127.0.0.1)");
  EXPECT_EQ(error_of({{"WORLD_SIZE", "4"}, {"RANK", "1"}, {"LOCAL_RANK", "2"}, {"LOCAL_WORLD_SIZE", "2"}}),
            "environment variable LOCAL_RANK=2 is not below the processes on this machine (2)");
  EXPECT_EQ(error_of({{"WORLD_SIZE", "-1"}, {"RANK", "0"}}), "environment variable WORLD_SIZE=-1 is out of range [1, 65536]");
}

// `wattwise launch` hands rank 0 the socket it picked the port with (WW_RENDEZVOUS_FD): taken when
// it listens on MASTER_PORT, refused naming the variable otherwise.
TEST(World, TheLaunchersRendezvousSocketMustListenOnMasterPort) {
  int port = 0;
  const int fd = listen_for_rendezvous(0, &port);
  const std::string fd_text = std::to_string(fd), port_text = std::to_string(port);
  EXPECT_EQ(world_of({}).rendezvous_fd, -1);
  EXPECT_EQ(world_of({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", port_text}, {"WW_RENDEZVOUS_FD", fd_text}})
                .rendezvous_fd,
            fd);
  const std::string other = std::to_string(port == 65535 ? 1 : port + 1);
  EXPECT_EQ(error_of({{"MASTER_PORT", other}, {"WW_RENDEZVOUS_FD", fd_text}}),
            "environment variable WW_RENDEZVOUS_FD=" + fd_text + " is not a socket listening on MASTER_PORT " + other +
                " (`wattwise launch` sets it for rank 0 only)");
  ::close(fd);
  EXPECT_EQ(error_of({{"MASTER_PORT", port_text}, {"WW_RENDEZVOUS_FD", fd_text}}),
            "environment variable WW_RENDEZVOUS_FD=" + fd_text + " is not a socket listening on MASTER_PORT " +
                port_text + " (`wattwise launch` sets it for rank 0 only)");
  EXPECT_EQ(error_of({{"WW_RENDEZVOUS_FD", "-3"}}), "environment variable WW_RENDEZVOUS_FD=-3 is out of range [0, 2147483647]");
}

// Ranks are grouped by machine_name(): WW_HOST_NAME when set and not empty, else the host name
// (which stays the network address either way).
TEST(World, TheMachineNameIsWwHostNameWhenSet) {
  const char* before = std::getenv("WW_HOST_NAME");
  const std::string saved = before ? before : "";
  ::unsetenv("WW_HOST_NAME");
  EXPECT_EQ(machine_name(), host_name());
  ::setenv("WW_HOST_NAME", "", 1);
  EXPECT_EQ(machine_name(), host_name());
  ::setenv("WW_HOST_NAME", "node7", 1);
  EXPECT_EQ(machine_name(), "node7");
  if (before) ::setenv("WW_HOST_NAME", saved.c_str(), 1);
  else ::unsetenv("WW_HOST_NAME");
}

}  // namespace
}  // namespace ww::dist
