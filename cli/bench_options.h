// Flag parsing shared by the `monologue bench` subcommands: batch lists, dtype, device, and which model to
// time (a directory, a config.json with random weights, or a named preset).
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/model_config.h"
#include "core/lm/lm_model.h"

namespace monologue::cli {

inline constexpr int64_t kMaxBenchBatch = 4096;

// --steps >= 1, --warmup >= 0, --threads >= 1 (a bench sets its thread count), each named when wrong.
absl::Status CheckStepsWarmupThreads(int steps, int warmup, int threads);

// "1,8" -> {1, 8}; every size >= 1.
absl::StatusOr<std::vector<int64_t>> ParseBatchList(const std::string& flag);
// "f32" | "bf16" | "f16" | "int8" | "int4" (c10::kChar / c10::ScalarType::Int4: quantised LM weights on CPU,
// see LmLoadOptions::dtype).
absl::StatusOr<c10::ScalarType> ParseDtypeFlag(const std::string& flag);
// "int8,f32" -> {"int8", "f32"}: dtypes timed one after the other in one run (each checked by ParseDtypeFlag).
absl::StatusOr<std::vector<std::string>> ParseDtypeList(const std::string& flag);
// The dtype the reference's side-by-side run uses: the first of the list it has (it has no int8: f32 then).
std::string ReferenceDtype(const std::vector<std::string>& dtypes);
// `--checkpoint-dtype`, how random weights are stored before loading, as a checkpoint file holds them:
// "bf16" (every released LM checkpoint: f32 on the CPU then keeps its Linear weights in bf16, see
// LmLoadOptions) or "f32".
absl::StatusOr<c10::ScalarType> ParseCheckpointDtypeFlag(const std::string& flag);
inline constexpr const char* kCheckpointDtypeHelp =
    "random weights stored as a checkpoint file holds them: bf16 (the released LM checkpoints) or f32";
// One line on the int8 quantisation at load time (what, how long, memory before/after); nothing for a
// float model.
void PrintQuantization(const LmModel& lm);
// One line on how much of the process's memory the kernel backs with 2 MB pages (core/util/huge_pages.h),
// or that placement is off.
void PrintHugePages();
// One line on the instruction set monologue's CPU kernels use, and the cap when MONOLOGUE_CPU_ISA sets one.
void PrintCpuKernels();
// "cpu" | "cuda" | "cuda:N", and CUDA only when a device is present.
absl::StatusOr<c10::Device> ParseDeviceFlag(const std::string& flag);

struct BenchModel {
  ModelConfig config;
  std::string source;  // for the report: the directory, or "<file> (random weights)", or "preset <name> ..."
};
// Exactly one of the three must be non-empty.
absl::StatusOr<BenchModel> ResolveBenchModel(const std::string& model_dir, const std::string& config_file,
                                             const std::string& preset);

}  // namespace monologue::cli
