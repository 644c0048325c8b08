#include "core/kernels/parallel_threads.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>

namespace monologue::kernels {
namespace {

// The kernels' loops must really use the intra-op threads: a build whose kernels lost OpenMP ran every
// few-row and int8 product on one thread whatever --threads said (the step took 1.7x as long on 2 cores).
TEST(ParallelThreadsTest, KernelLoopsUseTheIntraOpThreads) {
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  EXPECT_EQ(ThreadsUsedByParallelFor(8), 2);
  at::set_num_threads(1);
  EXPECT_EQ(ThreadsUsedByParallelFor(8), 1);
  at::set_num_threads(std::max(1, before));
}

TEST(ParallelThreadsTest, OneTaskRunsOnOneThread) {
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  EXPECT_EQ(ThreadsUsedByParallelFor(1), 1);
  at::set_num_threads(std::max(1, before));
}

}  // namespace
}  // namespace monologue::kernels
