// One parallel region for a chain of dependent pieces of work. A streaming step at batch 1 is hundreds of
// small products, each a parallel region of its own (at::parallel_for): OpenMP's fork and join cost ~2-5 µs a
// region on the 2-vCPU VMs, several percent of a tts-1.6b depformer step's ~70 µs products. A team enters the
// region once; its members split each product among themselves and meet at a spin barrier (~0.2 µs) between
// dependent pieces.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

namespace monologue::kernels {

class ThreadTeam {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Every member waits here until all have arrived (a no-op for a team of one).
  void Sync();
  // This member's part [begin, end) of `n` items split into `size()` contiguous parts, cut at multiples of
  // `align` (the last part takes the remainder).
  std::pair<int64_t, int64_t> Share(int64_t n, int64_t align = 1) const;

 private:
  friend void RunTeam(const std::function<void(ThreadTeam&)>& body);
  struct Shared;
  ThreadTeam(Shared* shared, int rank, int size) : shared_(shared), rank_(rank), size_(size) {}
  Shared* shared_;
  int rank_, size_;
};

// Runs body(team) once on each of the intra-op threads (at::get_num_threads()) at once, or on the calling
// thread alone as a team of one when no parallel region can open (one thread, or already inside a region).
// An exception thrown by a member releases the others from their barriers and is rethrown here; what the
// others computed after it is not to be relied on.
void RunTeam(const std::function<void(ThreadTeam&)>& body);

}  // namespace monologue::kernels
