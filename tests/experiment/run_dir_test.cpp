#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

#include "wattwise/core/error.h"
#include "wattwise/experiment/limits.h"
#include "wattwise/experiment/run_dir.h"

using namespace ww;
using namespace ww::experiment;
namespace fs = std::filesystem;

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "ww_run_dir_test_XXXXXX").string();
    path = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path); }
};
}  // namespace

TEST(RunDir, NamesArePlainFolderNameSuffixes) {
  EXPECT_NO_THROW(check_run_name("sst2", "--name"));
  EXPECT_NO_THROW(check_run_name("a.b-c_d", "--name"));
  for (const std::string& bad : std::vector<std::string>{"", ".", "..", "a/b", "x/../../../escaped", "/abs", "tab\there"}) {
    const std::string e = error_of([&] { check_run_name(bad, "--name"); });
    EXPECT_NE(e.find("--name '" + bad + "' must be a plain folder-name suffix"), std::string::npos) << bad << ": " << e;
  }
}

TEST(RunDir, CreateRefusesEscapingNamesAndWritesNothing) {
  TempDir t;
  const fs::path base = t.path / "runs" / "deep";
  EXPECT_NE(error_of([&] { create_run_dir(base, "x/../../../escaped"); }).find("plain folder-name suffix"), std::string::npos);
  EXPECT_FALSE(fs::exists(t.path / "runs"));
  const fs::path a = create_run_dir(base, "ok"), b = create_run_dir(base, "ok");
  EXPECT_NE(a, b);  // never the same folder twice
  EXPECT_TRUE(fs::is_directory(a) && fs::is_directory(b));
}

TEST(RunDir, GuardRemovesTheFolderUnlessKept) {
  TempDir t;
  const fs::path failed = create_run_dir(t.path, "failed"), done = create_run_dir(t.path, "done");
  {
    RunDirGuard guard(failed);
    std::ofstream(failed / "power_trace.csv") << "time_s\n";
    RunDirGuard kept(done);
    std::ofstream(done / "metrics.json") << "{}\n";
    kept.keep();
  }
  EXPECT_FALSE(fs::exists(failed));
  EXPECT_TRUE(fs::exists(done / "metrics.json"));
  { RunDirGuard nothing; }  // an empty guard does nothing
  // An exception between creating and completing a run leaves nothing behind.
  fs::path thrown;
  EXPECT_THROW(
      {
        thrown = create_run_dir(t.path, "thrown");
        RunDirGuard guard(thrown);
        fail("simulated failure");
      },
      Error);
  EXPECT_FALSE(fs::exists(thrown));
}

TEST(RunDir, OutputMayNotBeTheInput) {
  TempDir t;
  const fs::path input = t.path / "in.txt", other = t.path / "out.jsonl";
  std::ofstream(input) << "text\n";
  EXPECT_NO_THROW(check_output_is_not_input(input, "--input", other, "--output"));  // missing output
  std::ofstream(other) << "x\n";
  EXPECT_NO_THROW(check_output_is_not_input(input, "--input", other, "--output"));  // another file
  fs::create_symlink(input, t.path / "link.jsonl");
  fs::create_hard_link(input, t.path / "hard.jsonl");
  for (const fs::path& same : {input, t.path / "." / "in.txt", t.path / "link.jsonl", t.path / "hard.jsonl"}) {
    const std::string e = error_of([&] { check_output_is_not_input(input, "--input", same, "--output"); });
    EXPECT_NE(e.find("is the --input file"), std::string::npos) << same << ": " << e;
  }
}

TEST(Limits, IntegerTextIsWholeAndInRange) {
  EXPECT_FALSE(integer_text_error("64", limits::kBatchSize));
  EXPECT_FALSE(integer_text_error("+64", limits::kBatchSize));
  EXPECT_EQ(*integer_text_error("0", limits::kBatchSize), "0 is out of range (1..1048576)");
  EXPECT_EQ(*integer_text_error("9223372036854775807", limits::kBatchSize), "9223372036854775807 is out of range (1..1048576)");
  EXPECT_EQ(*integer_text_error("99999999999999999999", limits::kBatchSize), "99999999999999999999 is out of range (1..1048576)");
  EXPECT_EQ(*integer_text_error("-99999999999999999999", limits::kBatchSize), "-99999999999999999999 is out of range (1..1048576)");
  EXPECT_EQ(*integer_text_error("12x", limits::kBatchSize), "'12x' is not an integer (1..1048576)");
  EXPECT_EQ(*integer_text_error("", limits::kBatchSize), "'' is not an integer (1..1048576)");
  EXPECT_EQ(*integer_text_error("1e3", limits::kBatchSize), "'1e3' is not an integer (1..1048576)");
  EXPECT_EQ(check_range(5, limits::kRepeats, "--repeats"), 5);
  EXPECT_EQ(error_of([] { check_range(99999999999, limits::kWarmupPasses, "sweep.toml:4: warmup"); }),
            "sweep.toml:4: warmup 99999999999 is out of range (0..1000)");
}

// ---- GracefulInterrupt: the first signal is a request, the second ends the process ----

namespace {
// Runs `child` in a forked process and returns its wait status (signals must not touch the test
// runner itself).
int in_child(const std::function<int()>& child) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(child());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}
}  // namespace

TEST(GracefulInterrupt, FirstSignalIsARequestSecondEndsTheProcess) {
  const int status = in_child([] {
    GracefulInterrupt interrupt;
    if (interrupt.requested()) return 10;
    ::raise(SIGTERM);
    if (!interrupt.requested() || interrupt.signal() != SIGTERM) return 11;
    ::raise(SIGINT);  // the second: default action, the process ends by it
    return 12;
  });
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  EXPECT_EQ(WTERMSIG(status), SIGINT);
}

TEST(GracefulInterrupt, IgnoredSignalsStayIgnoredAndPreviousActionsComeBack) {
  const int status = in_child([] {
    std::signal(SIGHUP, SIG_IGN);
    {
      GracefulInterrupt interrupt;
      ::raise(SIGHUP);  // nohup: ignored, no request
      if (interrupt.requested()) return 20;
      struct sigaction now {};
      ::sigaction(SIGTERM, nullptr, &now);
      if (now.sa_handler == SIG_DFL) return 21;  // ours while it lives
    }
    struct sigaction after {};
    ::sigaction(SIGTERM, nullptr, &after);
    if (after.sa_handler != SIG_DFL) return 22;  // the default again
    ::sigaction(SIGHUP, nullptr, &after);
    if (after.sa_handler != SIG_IGN) return 23;
    GracefulInterrupt again;  // a second one later starts with no request
    return again.requested() ? 24 : 0;
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(RunDirLock, OneHolderAtATime) {
  TempDir t;
  {
    RunDirLock first(t.path);
    EXPECT_NE(error_of([&] { RunDirLock second(t.path); }).find("another wattwise process is training in this run folder"),
              std::string::npos);
  }
  EXPECT_NO_THROW(RunDirLock again(t.path));  // released with the first
  EXPECT_NE(error_of([&] { RunDirLock missing(t.path / "nowhere"); }).find("cannot open the run folder"), std::string::npos);
}
