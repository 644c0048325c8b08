#include "core/kernels/thread_team.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace monologue::kernels {
namespace {

// Sets the intra-op thread count for a test's scope.
class Threads {
 public:
  explicit Threads(int n) : before_(at::get_num_threads()) { at::set_num_threads(n); }
  ~Threads() { at::set_num_threads(std::max(1, before_)); }

 private:
  int before_;
};

TEST(ThreadTeamTest, MembersAreTheIntraOpThreadsEachWithItsOwnRank) {
  for (int threads : {1, 2, 3}) {
    Threads scope(threads);
    std::mutex mu;
    std::set<int> ranks;
    std::set<std::thread::id> ids;
    std::vector<int> sizes;
    RunTeam([&](ThreadTeam& team) {
      std::lock_guard<std::mutex> lock(mu);
      ranks.insert(team.rank());
      ids.insert(std::this_thread::get_id());
      sizes.push_back(team.size());
    });
    EXPECT_EQ(static_cast<int>(sizes.size()), threads) << threads << " threads";
    EXPECT_EQ(static_cast<int>(ranks.size()), threads) << threads << " threads";
    EXPECT_EQ(static_cast<int>(ids.size()), threads) << threads << " threads";
    for (int s : sizes) EXPECT_EQ(s, threads);
  }
}

TEST(ThreadTeamTest, SharesCoverEveryItemOnceCutAtTheAlignment) {
  for (int threads : {1, 2, 3}) {
    Threads scope(threads);
    for (int64_t n : {0, 1, 7, 8, 9, 100, 3072, 4100}) {
      for (int64_t align : {1, 4, 8}) {
        std::mutex mu;
        std::vector<std::pair<int64_t, int64_t>> parts;
        RunTeam([&](ThreadTeam& team) {
          const auto part = team.Share(n, align);
          std::lock_guard<std::mutex> lock(mu);
          parts.push_back(part);
        });
        std::sort(parts.begin(), parts.end());
        int64_t next = 0;
        for (const auto& [begin, end] : parts) {
          if (begin == end) continue;
          EXPECT_EQ(begin, next) << "n " << n << " align " << align << " threads " << threads;
          EXPECT_LT(begin, end);
          EXPECT_TRUE(end == n || end % align == 0) << "n " << n << " align " << align << " end " << end;
          next = end;
        }
        EXPECT_EQ(next, n) << "n " << n << " align " << align << " threads " << threads;
      }
    }
  }
}

// Each round every member writes the round's number to its slot; after the barrier every member must see
// every slot at that round (one that went on early would see an older number).
TEST(ThreadTeamTest, NoMemberPassesTheBarrierBeforeAllArrive) {
  for (int threads : {2, 3}) {
    Threads scope(threads);
    constexpr int kRounds = 3000;
    std::vector<std::atomic<int>> slots(static_cast<size_t>(threads));
    for (auto& s : slots) s.store(-1);
    std::atomic<int> stale{0};
    RunTeam([&](ThreadTeam& team) {
      for (int round = 0; round < kRounds; ++round) {
        slots[static_cast<size_t>(team.rank())].store(round, std::memory_order_relaxed);
        team.Sync();
        for (const auto& s : slots) {
          if (s.load(std::memory_order_relaxed) != round) stale.fetch_add(1);
        }
        team.Sync();
      }
    });
    EXPECT_EQ(stale.load(), 0) << threads << " threads";
  }
}

TEST(ThreadTeamTest, ATeamInsideATeamIsOneMember) {
  Threads scope(2);
  std::atomic<int> inner_sizes{0}, inner_calls{0};
  RunTeam([&](ThreadTeam&) {
    RunTeam([&](ThreadTeam& inner) {
      inner_sizes.fetch_add(inner.size());
      inner_calls.fetch_add(1);
      inner.Sync();  // a no-op for one member
    });
  });
  EXPECT_EQ(inner_calls.load(), 2);
  EXPECT_EQ(inner_sizes.load(), 2);
}

TEST(ThreadTeamTest, AMembersExceptionReachesTheCallerAndReleasesTheOthers) {
  for (int threads : {1, 2, 3}) {
    Threads scope(threads);
    EXPECT_THROW(RunTeam([&](ThreadTeam& team) {
                   if (team.rank() == team.size() - 1) throw std::runtime_error("member failed");
                   for (int i = 0; i < 5; ++i) team.Sync();
                 }),
                 std::runtime_error)
        << threads << " threads";
  }
  // A team runs normally afterwards.
  std::atomic<int> ran{0};
  RunTeam([&](ThreadTeam& team) {
    team.Sync();
    ran.fetch_add(1);
  });
  EXPECT_EQ(ran.load(), at::get_num_threads());
}

}  // namespace
}  // namespace monologue::kernels
