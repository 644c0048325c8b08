// Per-op CPU profile for `monologue bench ... --profile`: runs a callable under libtorch's profiler and prints
// each op's and each named scope's self time (time not spent in nested ops), heaviest first. Scopes come from
// RECORD_FUNCTION in the models (e.g. "mimi.encode.seanet"); they cost nothing while no profiler runs.
#pragma once

#include <functional>

namespace monologue::cli {

// Starts and stops libtorch's profiler once with nothing to record. Its first start prints what its
// initialisation logs (on a machine without a GPU, kineto's "gpuGetDeviceCount failed with code 35" on
// stderr): a bench calls this before its report so that this lands above it, not inside a table row.
void InitializeProfiler();

// Runs `body` once under the profiler and prints the `top` heaviest entries; `iterations` divides the
// times so they read per step.
void ProfileAndPrint(const std::function<void()>& body, int iterations, int top = 30);

}  // namespace monologue::cli
