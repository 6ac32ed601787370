// `wattwise launch --nproc N -- train ...`: torchrun's single-machine job for wattwise. Starts N
// copies of a wattwise command with the environment of a distributed job (WORLD_SIZE, RANK,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and forwards SIGINT, SIGTERM and SIGHUP
// to every rank once (each rank runs in its own process group, so a Ctrl-C reaches it through us
// only, not twice). When a rank fails, the others stop by themselves (they see its connections
// close) or are stopped after --grace seconds. Exit code: the first failing rank's (128 + signal
// for a rank a signal ended), else 0.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "wattwise/core/error.h"
#include "wattwise/dist/store.h"

namespace ww::cli {
namespace {

std::atomic<int> g_forward_signal{0};
void remember_signal(int signal_number) { g_forward_signal.store(signal_number); }

int exit_code_of(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

}  // namespace

Command launch_command(CLI::App& app) {
  struct Args {
    int nproc = 0, master_port = 0;
    double grace_s = 30;
    std::vector<std::string> command;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "launch", "Run a wattwise command as N data-parallel ranks on this machine (torchrun-style): launch --nproc 2 -- train ...");
  cmd->add_option("--nproc", args->nproc, "Ranks to start (one per GPU when training on GPUs)")
      ->required()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--master-port", args->master_port, "Rendezvous port on 127.0.0.1 (default: a free one)")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--grace", args->grace_s,
                  "Seconds the other ranks get to stop by themselves after one fails (they notice within seconds, or "
                  "after run.dist_timeout_s for a rank that hangs), before they are stopped: SIGTERM, then SIGKILL 10 s later")
      ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("command", args->command, "The wattwise command each rank runs (after --), e.g. train --config run.toml")
      ->required();
  return {cmd, [args] {
            if (args->command.front() != "train" && args->command.front() != "bench")
              fail("launch: only `train` and `bench` run distributed (got '", args->command.front(), "')");
            // A port we pick we also hold: rank 0 inherits the listening socket, so no other
            // process can take the port before rank 0 serves on it. A port given is rank 0's to bind.
            int port = args->master_port, listening = -1;
            if (port == 0) listening = dist::listen_for_rendezvous(0, &port);
            const std::string self = "/proc/self/exe";
            char exe[4096] = {};
            if (::readlink(self.c_str(), exe, sizeof exe - 1) <= 0) fail("launch: cannot find the wattwise binary");

            // Signals are remembered and forwarded from the loop below (never from a handler).
            struct sigaction action {};
            action.sa_handler = remember_signal;
            sigemptyset(&action.sa_mask);
            for (int s : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(s, &action, nullptr);

            std::vector<pid_t> ranks;
            auto signal_all = [&](int s) {
              for (pid_t pid : ranks)
                if (pid > 0) ::kill(pid, s);
            };
            for (int rank = 0; rank < args->nproc; ++rank) {
              const pid_t pid = ::fork();
              if (pid < 0) {
                signal_all(SIGKILL);
                fail("launch: cannot start rank ", rank, " (", std::strerror(errno), ")");
              }
              if (pid == 0) {
                ::setpgid(0, 0);
                for (int s : {SIGINT, SIGTERM, SIGHUP}) ::signal(s, SIG_DFL);
                ::setenv("WORLD_SIZE", std::to_string(args->nproc).c_str(), 1);
                ::setenv("RANK", std::to_string(rank).c_str(), 1);
                ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
                ::setenv("LOCAL_WORLD_SIZE", std::to_string(args->nproc).c_str(), 1);
                ::setenv("MASTER_ADDR", "127.0.0.1", 1);
                ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
                if (rank == 0 && listening >= 0) {
                  ::fcntl(listening, F_SETFD, 0);  // kept across exec, for rank 0 only
                  ::setenv("WW_RENDEZVOUS_FD", std::to_string(listening).c_str(), 1);
                } else {
                  ::unsetenv("WW_RENDEZVOUS_FD");  // one in our own environment names no socket of theirs
                }
                std::vector<char*> argv = {exe};
                for (std::string& a : args->command) argv.push_back(a.data());
                argv.push_back(nullptr);
                ::execv(exe, argv.data());
                std::fprintf(stderr, "wattwise launch: cannot run %s (%s)\n", exe, std::strerror(errno));
                ::_exit(127);
              }
              ranks.push_back(pid);
            }
            // Rank 0 holds it now; a copy here would keep accepting connections should rank 0 die.
            if (listening >= 0) ::close(listening);
            std::fprintf(stderr, "wattwise launch: %d ranks, rendezvous 127.0.0.1:%d\n", args->nproc, port);

            int result = 0, running = args->nproc;
            bool failed = false;
            std::vector<int> forwarded;  // signals passed on: a rank they end (128 + signal) did not fail
            auto stop_deadline = std::chrono::steady_clock::time_point::max();
            auto kill_deadline = stop_deadline;
            while (running > 0) {
              if (const int s = g_forward_signal.exchange(0)) {
                forwarded.push_back(s);
                signal_all(s);
              }
              int status = 0;
              const pid_t pid = ::waitpid(-1, &status, WNOHANG);
              if (pid > 0) {
                for (size_t rank = 0; rank < ranks.size(); ++rank) {
                  if (ranks[rank] != pid) continue;
                  ranks[rank] = -1;
                  --running;
                  const int code = exit_code_of(status);
                  if (code != 0 && result == 0) result = code;
                  const bool by_forwarded_signal =
                      std::find_if(forwarded.begin(), forwarded.end(), [&](int s) { return code == 128 + s; }) != forwarded.end();
                  if (failed && code != 0)
                    std::fprintf(stderr, "wattwise launch: rank %zu exited with %d\n", rank, code);
                  if (code != 0 && !failed && !by_forwarded_signal) {
                    failed = true;
                    // The others notice by themselves (a closed connection, or the timeout of a
                    // rank that hangs) and report it: they get the grace period to do so.
                    std::fprintf(stderr, "wattwise launch: rank %zu exited with %d; the others stop too\n", rank, code);
                    stop_deadline = std::chrono::steady_clock::now() +
                                    std::chrono::milliseconds(int64_t(args->grace_s * 1000));
                  }
                }
                continue;
              }
              const auto now = std::chrono::steady_clock::now();
              if (now > stop_deadline) {
                std::fprintf(stderr, "wattwise launch: stopping the ranks still running (SIGTERM)\n");
                signal_all(SIGTERM);
                stop_deadline = std::chrono::steady_clock::time_point::max();
                kill_deadline = now + std::chrono::seconds(10);
              }
              if (now > kill_deadline) {
                signal_all(SIGKILL);
                kill_deadline = std::chrono::steady_clock::time_point::max();
              }
              std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
            return result;
          }};
}

}  // namespace ww::cli
