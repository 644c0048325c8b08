// Checks for the CLI's numeric flags. CLI11's own ranges let NaN through (a comparison with NaN is false) and
// word their failures with their bounds as 300-digit numbers ("Value 0 not in range 0.000000 to 1797...");
// these reject NaN and infinities and say the rule plainly ("--temp: must be a finite number >= 0, got nan").
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace monologue::cli {

// The most intra-op threads a command takes. More threads than cores only wait for each other (each of a
// step's parallel regions waits for its slowest thread); far more, and libgomp fails to allocate its pool or
// the first step hangs (--threads 100000 did on the 2-vCPU VM).
inline constexpr int kMaxThreads = 1024;

// A finite number >= min.
CLI::Validator FiniteAtLeast(double min);
// A finite number from min to max.
CLI::Validator FiniteInRange(double min, double max);
// A whole number >= min.
CLI::Validator WholeAtLeast(int64_t min);
// --seed: a whole number from 0 to 2^64 - 1, digits only (strtoull would wrap -1 and saturate 2^64 silently).
CLI::Validator Seed();
// --server: HOST:PORT, the port a whole number from 1 to 65535 (112556 wrapped to another port; "" ran
// locally).
CLI::Validator ServerAddress();
// With --server the model and its settings are the server's: the refusal naming the first of `local_flags`
// given to `cmd` (e.g. "--lora goes with a local model: ..."), or "" when none was. They used to be accepted
// and silently ignored.
std::string LocalFlagGivenWithServer(const CLI::App& cmd, std::initializer_list<const char*> local_flags);
// --threads: 0 (libtorch's choice, one per core) up to kMaxThreads.
CLI::Validator ThreadCount();

}  // namespace monologue::cli
