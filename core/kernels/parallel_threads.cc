#include "core/kernels/parallel_threads.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <mutex>
#include <set>
#include <thread>

namespace monologue::kernels {

int ThreadsUsedByParallelFor(int64_t tasks, int task_us) {
  std::mutex mu;
  std::set<std::thread::id> ids;
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ids.insert(std::this_thread::get_id());
    }
    // Busy long enough that one thread cannot take every chunk before the others start.
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(task_us * (end - begin));
    while (std::chrono::steady_clock::now() < until) {
    }
  });
  return static_cast<int>(ids.size());
}

}  // namespace monologue::kernels
