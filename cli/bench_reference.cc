#include "cli/bench_reference.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "core/config/mimi_config.h"

namespace monologue::cli {

absl::Status RunReferenceBenchmark(const std::string& python_flag, const std::string& script,
                                   const ModelConfig& config, const std::string& name, const std::string& args) {
  const char* env_python = std::getenv("MONOLOGUE_PYTHON");
  const char* home = std::getenv("HOME");
  const std::string python = !python_flag.empty() ? python_flag
                             : env_python != nullptr
                                 ? std::string(env_python)
                                 : std::string(home != nullptr ? home : ".") + "/.cache/monologue/venv/bin/python";
  const std::filesystem::path tmp = std::filesystem::temp_directory_path();
  const std::string config_path = (tmp / absl::StrCat("monologue_bench_", name, "_config.json")).string();
  const std::string mimi_path = (tmp / absl::StrCat("monologue_bench_", name, "_mimi.json")).string();
  {
    std::ofstream out(config_path);
    out << ModelConfigToJson(config).dump(1) << "\n";
    std::ofstream mimi_out(mimi_path);
    mimi_out << MimiConfigToJson(config.mimi).dump(1) << "\n";
  }
  const std::string command = absl::StrCat("NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 '", python, "' '", script,
                                           "' --config '", config_path, "' --mimi-config '", mimi_path, "'", args);
  std::printf("\n$ %s\n", command.c_str());
  std::fflush(stdout);
  const int status = std::system(command.c_str());
  if (status != 0) return absl::UnavailableError(absl::StrCat("the reference benchmark failed (status ", status, ")"));
  return absl::OkStatus();
}

}  // namespace monologue::cli
