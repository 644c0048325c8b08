#include "cli/memory_speed.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "core/util/huge_pages.h"

namespace monologue::cli {
namespace {

constexpr int64_t kSweepBytes = int64_t{256} << 20;
constexpr int kRounds = 4;

// The 64-bit words [begin, end) summed with independent accumulators, so that the loads, not the adds, set
// the pace.
uint64_t SumWords(const uint64_t* w, int64_t begin, int64_t end) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  int64_t i = begin;
  for (; i + 4 <= end; i += 4) {
    a += w[i];
    b += w[i + 1];
    c += w[i + 2];
    d += w[i + 3];
  }
  for (; i < end; ++i) a += w[i];
  return a + b + c + d;
}

}  // namespace

double MeasureMemoryReadSpeed(int threads) {
  const int previous = at::get_num_threads();
  at::set_num_threads(threads);
  // On 2 MB pages like the weights (core/util/huge_pages.h), written once so that every page is backed.
  at::Tensor buffer =
      EmptyOnHugePages({kSweepBytes / 8}, at::TensorOptions().dtype(at::kLong), /*own_mapping=*/true)
          .fill_(1);
  const auto* words = reinterpret_cast<const uint64_t*>(buffer.data_ptr<int64_t>());
  const int64_t n = buffer.numel();
  double best = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<uint64_t> sums(static_cast<size_t>(std::max(threads, 1)) * 8, 0);
    const auto t0 = std::chrono::steady_clock::now();
    // One contiguous part per thread (the grain keeps parallel_for from splitting finer).
    at::parallel_for(0, n, (n + threads - 1) / threads, [&](int64_t begin, int64_t end) {
      sums[static_cast<size_t>(at::get_thread_num()) * 8] += SumWords(words, begin, end);
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    uint64_t total = 0;
    for (uint64_t s : sums) total += s;
    // Every word is 1: a wrong total would mean the loop was not what was timed (reported as 0, not shown).
    if (total != static_cast<uint64_t>(n)) {
      best = 0;
      break;
    }
    best = std::max(best, static_cast<double>(kSweepBytes) / seconds / 1e9);
  }
  at::set_num_threads(previous);
  return best;
}

void PrintMemoryReadSpeed(int threads, const char* when) {
  const double speed = MeasureMemoryReadSpeed(threads);
  if (speed <= 0) return;
  std::printf("memory read speed %s: %.1f GB/s (%d thread%s, %lld MB sweep)\n", when, speed, threads,
              threads == 1 ? "" : "s", static_cast<long long>(kSweepBytes >> 20));
}

void PrintWeightReadFloor(const char* what, int64_t weight_bytes, int threads) {
  const double speed = MeasureMemoryReadSpeed(threads);
  std::printf("%s read per step: %.1f MB\n", what, static_cast<double>(weight_bytes) / 1e6);
  if (speed > 0) {
    std::printf(
        "memory read speed now: %.1f GB/s (%d thread%s): reading them all from memory takes %.2f ms\n", speed,
        threads, threads == 1 ? "" : "s", static_cast<double>(weight_bytes) / speed / 1e6);
  }
}

}  // namespace monologue::cli
