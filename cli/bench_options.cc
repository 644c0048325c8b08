#include "cli/bench_options.h"

#include <ATen/Context.h>

#include <cstdio>
#include <exception>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/kernels/cpu_isa.h"
#include "core/model/presets.h"
#include "core/util/huge_pages.h"
#include "core/util/status_macros.h"

namespace monologue::cli {

absl::Status CheckStepsWarmupThreads(int steps, int warmup, int threads) {
  if (steps < 1) return absl::InvalidArgumentError(absl::StrCat("--steps must be >= 1 (got ", steps, ")"));
  if (warmup < 0) return absl::InvalidArgumentError(absl::StrCat("--warmup must be >= 0 (got ", warmup, ")"));
  if (threads < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("--threads must be from 1 to 1024 for a bench (got ", threads, ")"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ParseBatchList(const std::string& flag) {
  std::vector<int64_t> batches;
  for (absl::string_view b : absl::StrSplit(flag, ',')) {
    int64_t v = 0;
    // Past a few thousand streams the KV caches alone outgrow any machine (10^8 reached 8.6 GB in 15 s).
    if (!absl::SimpleAtoi(b, &v) || v < 1 || v > kMaxBenchBatch) {
      return absl::InvalidArgumentError(
          absl::StrCat("--batch must be a comma-separated list of sizes from 1 to ", kMaxBenchBatch,
                       " (got '", flag, "')"));
    }
    batches.push_back(v);
  }
  return batches;
}

absl::StatusOr<c10::ScalarType> ParseDtypeFlag(const std::string& flag) {
  if (flag == "f32") return c10::kFloat;
  if (flag == "bf16") return c10::kBFloat16;
  if (flag == "f16") return c10::kHalf;
  if (flag == "int8") return c10::kChar;  // int8 LM weights, f32 activations (LmLoadOptions::dtype)
  if (flag == "int4") return c10::ScalarType::Int4;  // 4-bit LM weights, f32 activations
  return absl::InvalidArgumentError("--dtype must be f32, bf16, f16, int8 or int4");
}

absl::StatusOr<std::vector<std::string>> ParseDtypeList(const std::string& flag) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(flag, ',')) {
    const std::string name(part);
    if (auto d = ParseDtypeFlag(name); !d.ok()) return d.status();
    out.push_back(name);
  }
  return out;
}

std::string ReferenceDtype(const std::vector<std::string>& dtypes) {
  for (const std::string& d : dtypes) {
    if (d != "int8" && d != "int4") return d;
  }
  return "f32";
}

absl::StatusOr<c10::ScalarType> ParseCheckpointDtypeFlag(const std::string& flag) {
  if (flag == "bf16") return c10::kBFloat16;
  if (flag == "f32") return c10::kFloat;
  return absl::InvalidArgumentError(
      absl::StrCat("--checkpoint-dtype must be bf16 or f32 (got '", flag, "')"));
}

void PrintQuantization(const LmModel& lm) {
  const std::string line = DescribeQuantization(lm.quantization());
  if (!line.empty()) std::printf("%s\n", line.c_str());
}

void PrintHugePages() {
  if (!HugePagesEnabled()) {
    std::printf("weights on 4 KB pages (MONOLOGUE_HUGE_PAGES=0)\n");
    return;
  }
  const int64_t bytes = AnonHugePageBytes();
  if (bytes < 0) return;
  std::printf("memory on 2 MB pages: %.1f MB%s\n", static_cast<double>(bytes) / (1 << 20),
              bytes == 0 ? " (transparent huge pages unavailable here: weights stay on 4 KB pages)" : "");
}

void PrintCpuKernels() {
  const kernels::CpuIsa active = kernels::ActiveCpuIsa(), detected = kernels::DetectedCpuIsa();
  if (active == detected) {
    std::printf("cpu kernels: %s\n", kernels::CpuIsaName(active));
  } else {
    std::printf("cpu kernels: %s (capped by MONOLOGUE_CPU_ISA; this CPU has %s)\n",
                kernels::CpuIsaName(active), kernels::CpuIsaName(detected));
  }
}

absl::StatusOr<c10::Device> ParseDeviceFlag(const std::string& flag) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(flag);
  } catch (const std::exception&) {
    return absl::InvalidArgumentError("--device must be cpu or cuda[:N]");
  }
  if (device.is_cuda() && !at::hasCUDA()) {
    return absl::FailedPreconditionError("--device cuda: no CUDA device available");
  }
  return device;
}

absl::StatusOr<BenchModel> ResolveBenchModel(const std::string& model_dir, const std::string& config_file,
                                             const std::string& preset) {
  if ((!model_dir.empty()) + (!config_file.empty()) + (!preset.empty()) != 1) {
    return absl::InvalidArgumentError("give exactly one of --model DIR, --config FILE, --preset NAME");
  }
  BenchModel model;
  if (!model_dir.empty()) {
    ASSIGN_OR_RETURN(model.config, LoadModelConfig(model_dir));
    model.source = model_dir;
  } else if (!config_file.empty()) {
    ASSIGN_OR_RETURN(nlohmann::json json, ReadJsonFile(config_file));
    ASSIGN_OR_RETURN(model.config, ParseModelConfigJson(json, config_file));
    if (model.config.mimi_config_name.has_value()) {
      // A non-released Mimi's config, beside the file (as in a model directory; --write-config writes one).
      const std::filesystem::path mimi_path =
          std::filesystem::path(config_file).parent_path() / *model.config.mimi_config_name;
      ASSIGN_OR_RETURN(nlohmann::json mimi_json, ReadJsonFile(mimi_path));
      ASSIGN_OR_RETURN(model.config.mimi, ParseMimiConfigJson(mimi_json, mimi_path.string()));
    }
    model.source = config_file + " (random weights)";
  } else {
    ASSIGN_OR_RETURN(auto p, GetPreset(preset));
    model.config = p.config;
    model.source = "preset " + preset + " (random weights)";
  }
  return model;
}

}  // namespace monologue::cli
