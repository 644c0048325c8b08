// The tensor inventory a checkpoint must hold for a given config, in the released (PyTorch) naming (other
// attention key layouts the reference accepts are mapped to it by core/io/checkpoint_view.h):
// fused `self_attn.in_proj_weight` [W*3*D, D] / `out_proj.weight` [W*D, D] over depformer weight sets,
// `conv.conv` / `convtr.convtr` nesting for Mimi, etc. (moshi-reference.md §1.11, §2.3). Verified against
// the reference modules' state_dict for tiny and released configs (tests/reference/check_schemas.py
// writes tests/data/configs/reference_schemas.json, compared in tests/config/checkpoint_schema_test.cc).
//
// Each spec also carries the deterministic init rule the random-weight generator uses:
// value = init_offset + init_scale * u, u ~ uniform[-1, 1) from DeterministicTensor(seed, name, shape)
// (core/model/deterministic_weights.h), so C++ and Python (tests/reference/detinit.py) regenerate the
// same weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/config/lm_config.h"
#include "core/config/mimi_config.h"

namespace monologue {

class SafeTensorsFile;
class CheckpointView;

enum class TensorClass {
  kWeight,       // a parameter in the model dtype (bf16 in released LMs, f32 in Mimi)
  kConditioner,  // condition_provider.* / fuser.*: always loaded as float32 (F32 in released files)
  kBuffer,       // Mimi VQ codebook buffers (float32)
  kInt8Weight,   // a Linear weight of a `quantize: true` LM: bitsandbytes int8 values (I8)
  kInt8Scale,    // its `_scb`: each row's absolute maximum (float32)
};
const char* TensorClassName(TensorClass c);

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  TensorClass tensor_class = TensorClass::kWeight;
  // Generator init rule (see the header comment).
  float init_scale = 0.0f;
  float init_offset = 0.0f;
  int64_t numel() const;
};

// In the reference module registration (state_dict) order.
std::vector<TensorSpec> ExpectedLmTensors(const LmConfig& config);
std::vector<TensorSpec> ExpectedMimiTensors(const MimiConfig& config);

// Checks `file` against `specs`: every missing, unexpected and mis-shaped tensor, and every tensor whose
// dtype is not a float type (F16/BF16/F32/F64), is listed in one INVALID_ARGUMENT error naming the file
// (at most ~50 lines, then "... and N more"). OK when everything matches.
absl::Status ValidateCheckpoint(const SafeTensorsFile& file, const std::vector<TensorSpec>& specs);
// The same on the released names of any attention key layout (core/io/checkpoint_view.h); a renamed or
// merged tensor's problem also names the file's own keys.
absl::Status ValidateCheckpoint(const CheckpointView& file, const std::vector<TensorSpec>& specs);

// Sum of numel over specs (optionally only one class).
int64_t CountParameters(const std::vector<TensorSpec>& specs);
int64_t CountParameters(const std::vector<TensorSpec>& specs, TensorClass only);

// "[2048, 1024]".
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace monologue
