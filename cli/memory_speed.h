// The memory's read speed, measured in the benchmarks' own runs. On the shared VMs this project is measured
// on, it moves by up to 2x from one minute to the next (docs/benchmarks.md), and a CPU step at small batch
// is bound by it: the benchmarks print it beside their step times so that each figure can be read against
// the floor the memory set at that moment.
#pragma once

#include <cstdint>

namespace monologue::cli {

// GB/s (1e9 bytes a second): the best of a few sweeps over a 256 MB buffer (far beyond any cache of the
// machines measured) by `threads` threads, each reading its own contiguous part, as the weight kernels do.
double MeasureMemoryReadSpeed(int threads);

// One line: "memory read speed <when>: 30.1 GB/s (2 threads, 256 MB sweep)".
void PrintMemoryReadSpeed(int threads, const char* when);

// Two lines on a step that reads `weight_bytes` of weights (`what`: "LM weights"): how many, and the time
// reading them all from memory takes at the speed measured now. That is the floor of a memory-bound step
// whose weights exceed the caches; a step can beat it where it re-reads weights the caches still hold (the
// tts-1.6b depformer's shared weight sets: 42 MB, read by 8 codebooks in a row, partly from a 32 MB L3).
void PrintWeightReadFloor(const char* what, int64_t weight_bytes, int threads);

}  // namespace monologue::cli
