// The reference's side of a `monologue bench` side-by-side run (bench transcribe/synthesize/chat --reference):
// the model's config handed to a Python script of bench/ that times the `moshi` package on the same shapes.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "core/config/model_config.h"

namespace monologue::cli {

// Writes `config` and its Mimi config as JSON to the temp folder (monologue_bench_<name>_config.json,
// monologue_bench_<name>_mimi.json), then runs `script` on them with `args` appended (" --batch 1,8 ...")
// under `python_flag` (else $MONOLOGUE_PYTHON, else the venv scripts/setup.sh makes), with torch.compile and
// CUDA graphs off. The command is printed first. A run that fails is an error naming its exit status.
absl::Status RunReferenceBenchmark(const std::string& python_flag, const std::string& script,
                                   const ModelConfig& config, const std::string& name, const std::string& args);

}  // namespace monologue::cli
