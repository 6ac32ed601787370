// The Gloo process group, with every rank a thread of this test: sums, broadcasts, the
// fingerprint check, and the errors a job gets when a rank is missing, dies or hangs.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "wattwise/core/error.h"
#include "dist_test_util.h"
#include "wattwise/dist/process_group.h"

namespace ww::dist {
namespace {

using ww::testing::bound_socket;
using ww::testing::Rendezvous;
using ww::testing::run_ranks;
using ww::testing::world_of;

using namespace std::chrono_literals;

JoinOptions options(std::chrono::milliseconds timeout = 60s, std::string fingerprint = "same") {
  JoinOptions o;
  o.timeout = timeout;
  o.fingerprint = std::move(fingerprint);
  return o;
}

TEST(GlooGroup, SumsAreCorrectAndTheSameBitsOnEveryRank) {
  const int size = 3;
  const Rendezvous rendezvous;
  const int64_t n = 100003;  // not a multiple of the ranks or of Gloo's segments
  std::vector<std::vector<float>> inputs(size), outputs(size);
  for (int r = 0; r < size; ++r) {
    std::mt19937 rng(r + 1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int64_t i = 0; i < n; ++i) inputs[r].push_back(normal(rng));
  }
  std::vector<std::vector<double>> scalars(size);
  const auto errors = run_ranks(size, [&](int rank) {
    auto group = join(rendezvous.world(rank, size), Device::cpu(), options());
    EXPECT_EQ(group->rank(), rank);
    EXPECT_EQ(group->size(), size);
    EXPECT_EQ(group->backend(), "gloo");
    Tensor values = Tensor::from_vector(inputs[rank], {n});
    group->all_reduce_sum(values);
    outputs[rank] = values.to_float_vector();
    scalars[rank] = {double(rank), 0.5};
    group->all_reduce_sum(scalars[rank]);
    EXPECT_GE(group->communication_seconds(), 0.0);
  });
  for (int r = 0; r < size; ++r) ASSERT_EQ(errors[r], "") << "rank " << r;
  for (int64_t i = 0; i < n; ++i) {
    const double expected = double(inputs[0][i]) + double(inputs[1][i]) + double(inputs[2][i]);
    // Three terms summed in float in some order: within two roundings of the largest partial sum.
    const double bound = 2 * 6e-8 * (std::abs(inputs[0][i]) + std::abs(inputs[1][i]) + std::abs(inputs[2][i]));
    ASSERT_NEAR(outputs[0][i], expected, bound) << "element " << i;
  }
  for (int r = 1; r < size; ++r) {
    EXPECT_EQ(std::memcmp(outputs[0].data(), outputs[r].data(), n * sizeof(float)), 0) << "rank " << r << " differs";
    EXPECT_EQ(scalars[r], (std::vector<double>{3.0, 1.5}));
  }
}

// ZeRO's pair: reduce-scatter leaves each rank the sums of its part, all-gather gives every rank all
// the parts. Uneven parts (one empty), odd and power-of-two rank counts, and a second round on
// the same buffer (Gloo's algorithm is built once per buffer) with new values.
TEST(GlooGroup, ReduceScatterSumsEachRanksPartAndAllGatherJoinsThem) {
  for (const int size : {2, 3, 4}) {
    const Rendezvous rendezvous;
    std::vector<int64_t> counts;
    for (int r = 0; r < size; ++r) counts.push_back(r == 1 ? 0 : 1000 + 37 * r);
    int64_t n = 0;
    for (int64_t c : counts) n += c;
    auto input = [&](int rank, int round, int64_t i) { return float((rank + 1) * (i % 97)) * 0.25f + float(round); };
    std::vector<std::vector<float>> scattered(size), gathered(size);
    const auto errors = run_ranks(size, [&](int rank) {
      auto group = join(rendezvous.world(rank, size), Device::cpu(), options());
      Tensor values = Tensor::empty({n}, DType::F32);
      for (int round = 0; round < 2; ++round) {
        for (int64_t i = 0; i < n; ++i) values.data<float>()[i] = input(rank, round, i);
        group->reduce_scatter_sum(values, counts);
        scattered[rank] = values.to_float_vector();
      }
      group->all_gather(values, counts);
      gathered[rank] = values.to_float_vector();
    });
    for (int r = 0; r < size; ++r) ASSERT_EQ(errors[r], "") << size << " ranks, rank " << r;
    int64_t offset = 0;
    for (int r = 0; r < size; ++r) {
      for (int64_t i = offset; i < offset + counts[r]; ++i) {
        float expected = 0;  // small integers times 0.25: exact in float in any order
        for (int k = 0; k < size; ++k) expected += input(k, 1, i);
        ASSERT_EQ(scattered[r][i], expected) << size << " ranks: rank " << r << " element " << i;
        for (int k = 0; k < size; ++k) ASSERT_EQ(gathered[k][i], expected) << "rank " << k << " element " << i;
      }
      offset += counts[r];
    }
  }
}

// The ranks' buffers need not sit at matching addresses: here rank 0 sums the same buffer twice
// while rank 1 sums two different ones (as a rank's temporaries may or may not land at a reused
// address), then both sum a third shape. A group whose set-up depended on the address would
// rebuild on one rank only, the ranks' communication slots would part, and both would time out.
TEST(GlooGroup, ReduceScatterDoesNotDependOnWhereTheBuffersAre) {
  const int size = 2;
  const Rendezvous rendezvous;
  const std::vector<int64_t> counts = {300, 301}, other = {50, 60};
  std::vector<std::vector<float>> results(size);
  const auto errors = run_ranks(size, [&](int rank) {
    auto group = join(rendezvous.world(rank, size), Device::cpu(), options(10s));
    Tensor first = Tensor::empty({601}, DType::F32), second = Tensor::empty({601}, DType::F32);
    for (int round = 0; round < 2; ++round) {
      Tensor& values = rank == 1 && round == 1 ? second : first;
      for (int64_t i = 0; i < 601; ++i) values.data<float>()[i] = float(rank + 1 + round);
      group->reduce_scatter_sum(values, counts);
      const int64_t offset = rank == 0 ? 0 : 300;
      results[rank].push_back(values.data<float>()[offset]);
      results[rank].push_back(values.data<float>()[offset + counts[size_t(rank)] - 1]);
    }
    Tensor small = Tensor::empty({110}, DType::F32);
    for (int64_t i = 0; i < 110; ++i) small.data<float>()[i] = 1.0f;
    group->reduce_scatter_sum(small, other);
    results[rank].push_back(small.data<float>()[rank == 0 ? 0 : 50]);
  });
  for (int r = 0; r < size; ++r) ASSERT_EQ(errors[r], "") << "rank " << r;
  // Round 0: 1 + 2; round 1: 2 + 3; the third shape: 1 + 1.
  for (int r = 0; r < size; ++r) EXPECT_EQ(results[r], (std::vector<float>{3, 3, 5, 5, 2})) << "rank " << r;
}

TEST(GlooGroup, BroadcastsCopyTheRootsValuesAndText) {
  const int size = 2;
  const Rendezvous rendezvous;
  std::vector<std::vector<float>> got(size);
  std::vector<std::string> text(size);
  const auto errors = run_ranks(size, [&](int rank) {
    auto group = join(rendezvous.world(rank, size), Device::cpu(), options());
    Tensor values = Tensor::from_vector(std::vector<float>{float(rank), float(rank) + 0.5f, -1.0f}, {3});
    group->broadcast(values, 1);
    got[rank] = values.to_float_vector();
    text[rank] = rank == 0 ? std::string(100000, 'x') + "end" : "short";
    group->broadcast_text(text[rank], 0);
    group->barrier();
  });
  ASSERT_EQ(errors, (std::vector<std::string>{"", ""}));
  for (int r = 0; r < size; ++r) {
    EXPECT_EQ(got[r], (std::vector<float>{1.0f, 1.5f, -1.0f}));
    EXPECT_EQ(text[r], std::string(100000, 'x') + "end");
  }
}

TEST(GlooGroup, ADifferentConfigurationIsRefusedOnEveryRankNamingTheRank) {
  const int size = 3;
  const Rendezvous rendezvous;
  const auto errors = run_ranks(size, [&](int rank) {
    join(rendezvous.world(rank, size), Device::cpu(), options(60s, rank == 1 ? "config B" : "config A"));
  });
  EXPECT_EQ(errors[0],
            "rank 0: rank 1 started with a different configuration or wattwise version (config B against this rank's "
            "config A): start every rank with the same command and binary");
  EXPECT_NE(errors[1].find("rank 1: ranks 0, 2 started with a different configuration"), std::string::npos) << errors[1];
  EXPECT_NE(errors[2].find("rank 2: rank 1 started with a different configuration"), std::string::npos) << errors[2];
}

TEST(GlooGroup, APortInUseIsOneClearError) {
  int port = 0;
  const int fd = bound_socket(INADDR_ANY, true, &port);
  try {
    join(world_of(0, 2, port), Device::cpu(), options(5s));
    ADD_FAILURE() << "joined on a port in use";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "MASTER_PORT " + std::to_string(port) +
                                         " is in use on this machine (another job?): choose a free one with MASTER_PORT");
  }
  ::close(fd);
}

TEST(GlooGroup, AMissingRankIsAnErrorAfterTheTimeoutNotAHang) {
  const Rendezvous rendezvous;
  const int port = rendezvous.port();
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> lines;
  JoinOptions o = options(1500ms);
  o.report_every = 400ms;
  o.waiting = [&](const std::string& line) { lines.push_back(line); };
  try {
    join(rendezvous.world(0, 2), Device::cpu(), o);  // rank 1 never starts
    ADD_FAILURE() << "joined without rank 1";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no rank set 'fingerprint/1' within 1 s: a rank has not started or has failed"),
              std::string::npos)
        << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
  // Meanwhile rank 0 said whom it waits for (a wrong WORLD_SIZE shows before the timeout).
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines.front().rfind("rank 0: waiting for rank 1 of 2 to join at 127.0.0.1:" + std::to_string(port), 0), 0u)
      << lines.front();
  EXPECT_NE(lines.front().find("it gives up after 1 s"), std::string::npos) << lines.front();
}

TEST(GlooGroup, ARankThatIsNotThereIsAnErrorForTheOthers) {
  // A port held by a socket that is bound but does not listen: connecting is refused, and no other
  // process can listen on it meanwhile.
  int port = 0;
  const int fd = bound_socket(INADDR_LOOPBACK, false, &port);
  std::vector<std::string> lines;
  JoinOptions o = options(1500ms);
  o.report_every = 400ms;
  o.waiting = [&](const std::string& line) { lines.push_back(line); };
  try {
    join(world_of(1, 2, port), Device::cpu(), o);  // rank 0 never starts
    ADD_FAILURE() << "joined without rank 0";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rendezvous: cannot reach rank 0 at 127.0.0.1:" + std::to_string(port)),
              std::string::npos)
        << e.what();
  }
  ::close(fd);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines.front().rfind("rank 1: waiting for rank 0 at 127.0.0.1:" + std::to_string(port), 0), 0u) << lines.front();
}

TEST(GlooGroup, ARankThatDiesMakesTheOthersFailPromptly) {
  const int size = 2;
  const Rendezvous rendezvous;
  std::chrono::steady_clock::duration waited{};
  const auto errors = run_ranks(size, [&](int rank) {
    auto group = join(rendezvous.world(rank, size), Device::cpu(), options(120s));
    group->barrier();
    if (rank == 1) {
      group.reset();  // dies: its connections close
      return;
    }
    std::this_thread::sleep_for(100ms);
    const auto start = std::chrono::steady_clock::now();
    try {
      Tensor values = Tensor::from_vector(std::vector<float>(1000, 1.0f), {1000});
      group->all_reduce_sum(values);
    } catch (...) {
      waited = std::chrono::steady_clock::now() - start;
      throw;
    }
  });
  EXPECT_NE(errors[0].find("rank 0: all-reduce failed: another rank stopped or cannot be reached"), std::string::npos)
      << errors[0];
  EXPECT_LT(waited, 60s);  // the peer's closed connection, not the 120 s timeout
}

TEST(GlooGroup, ARankThatHangsMakesTheOthersTimeOut) {
  const int size = 2;
  const Rendezvous rendezvous;
  std::atomic<bool> done{false};
  const auto errors = run_ranks(size, [&](int rank) {
    auto group = join(rendezvous.world(rank, size), Device::cpu(), options(5s));  // (5 s: the barrier on a loaded machine)
    group->barrier();
    if (rank == 1) {  // alive, connected, but never joins the next collective
      while (!done) std::this_thread::sleep_for(10ms);
      return;
    }
    try {
      Tensor values = Tensor::from_vector(std::vector<float>(10, 1.0f), {10});
      group->all_reduce_sum(values);
    } catch (...) {
      done = true;
      throw;
    }
    done = true;
  });
  EXPECT_NE(errors[0].find("rank 0: all-reduce timed out after 5 s waiting for another rank"), std::string::npos)
      << errors[0];
}

}  // namespace
}  // namespace ww::dist
