// How many threads the kernels' at::parallel_for loops really use. at::parallel_for is a header template
// whose body is an OpenMP pragma, so it is parallel only in translation units compiled with OpenMP; this
// function is compiled like the kernels are, so a test (and `info`) can check that a build kept it so.
#pragma once

#include <cstdint>

namespace monologue::kernels {

// Runs at::parallel_for over `tasks` items (grain 1, each task busy for ~`task_us` microseconds) and returns
// the number of distinct threads that ran a task: min(tasks, at::get_num_threads()) when the loops run in
// parallel, 1 when they have silently become serial.
int ThreadsUsedByParallelFor(int64_t tasks, int task_us = 200);

}  // namespace monologue::kernels
