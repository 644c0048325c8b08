#include "core/kernels/thread_team.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace monologue::kernels {

namespace {
// A spinning core's hint to the CPU that it is waiting (frees the sibling hyperthread, saves power).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}
}  // namespace

struct ThreadTeam::Shared {
  alignas(64) std::atomic<int> arrived{0};
  alignas(64) std::atomic<uint32_t> generation{0};
  std::atomic<bool> broken{false};
  int spin_limit = 1 << 14;
  std::mutex mu;
  std::exception_ptr error;
};

void ThreadTeam::Sync() {
  if (size_ == 1) return;
  Shared& s = *shared_;
  const uint32_t generation = s.generation.load(std::memory_order_acquire);
  if (s.arrived.fetch_add(1, std::memory_order_acq_rel) == size_ - 1) {
    s.arrived.store(0, std::memory_order_relaxed);
    s.generation.store(generation + 1, std::memory_order_release);
    return;
  }
  // Spin while the wait is short (the usual case: the others are in the same product); past ~100 µs give the
  // core away, so that a member the OS has descheduled is not kept out. With more members than cores, yield
  // at once.
  for (int spins = 0; s.generation.load(std::memory_order_acquire) == generation;) {
    if (s.broken.load(std::memory_order_relaxed)) return;
    if (spins < s.spin_limit) {
      ++spins;
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
}

std::pair<int64_t, int64_t> ThreadTeam::Share(int64_t n, int64_t align) const {
  align = std::max<int64_t>(align, 1);
  const int64_t units = (n + align - 1) / align;
  const int64_t per = (units + size_ - 1) / size_;
  const int64_t begin = std::min(n, rank_ * per * align);
  const int64_t end = rank_ == size_ - 1 ? n : std::min(n, (rank_ + 1) * per * align);
  return {begin, end};
}

namespace {
// The CPUs this process may run on.
int UsableCpus() {
  static const int cpus = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return cpus;
}
}  // namespace

void RunTeam(const std::function<void(ThreadTeam&)>& body) {
  ThreadTeam::Shared shared;
  const int64_t wanted = at::in_parallel_region() ? 1 : std::max(1, at::get_num_threads());
  if (wanted > UsableCpus()) shared.spin_limit = 0;
  if (wanted == 1) {
    ThreadTeam alone(&shared, 0, 1);
    body(alone);
    return;
  }
  // at::parallel_for over `wanted` tasks gives each thread of the region one task when the region has that
  // many threads. Every thread sees the same team size, so all agree: a smaller region (or none) runs the
  // body once, on the thread with the first task, as a team of one.
  at::parallel_for(0, wanted, 1, [&](int64_t begin, int64_t end) {
#ifdef _OPENMP
    const bool whole = omp_in_parallel() && omp_get_num_threads() == wanted;
#else
    const bool whole = false;
#endif
    if (!whole && begin != 0) return;
    ThreadTeam member(&shared, whole ? static_cast<int>(begin) : 0, whole ? static_cast<int>(wanted) : 1);
    (void)end;
    try {
      body(member);
    } catch (...) {
      std::lock_guard<std::mutex> lock(shared.mu);
      if (!shared.error) shared.error = std::current_exception();
      shared.broken.store(true, std::memory_order_relaxed);
    }
  });
  if (shared.error) std::rethrow_exception(shared.error);
}

}  // namespace monologue::kernels
