// One parser for the `--device` / `--dtype` spellings every mode and front end accepts.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

#include "absl/status/statusor.h"

namespace monologue {

// "cpu", "cuda", "cuda:N". FAILED_PRECONDITION for CUDA when this libtorch has no usable device;
// INVALID_ARGUMENT for anything else.
absl::StatusOr<c10::Device> ParseDevice(const std::string& name);
// "" (the device's default: bf16 on CUDA, f32 on CPU), "f32"/"float32", "bf16"/"bfloat16", "f16"/"float16",
// and "int8" (CPU only): c10::kChar, which the LM loader (LmLoadOptions::dtype) reads as int8 Linear weights
// with everything else in f32 (so every other use of the model dtype, e.g. Mimi's, sees f32); "int4" (CPU
// only): c10::ScalarType::Int4, the same with 4-bit Linear weights. `int8_checkpoint` (config `quantize:
// true`, weights stored in int8): "" on the CPU is int8, the checkpoint's own form, not f32 (4x its size).
absl::StatusOr<c10::ScalarType> ParseDtype(const std::string& name, const c10::Device& device,
                                           bool int8_checkpoint = false);
// "f32", "bf16", "f16", "int8", "int4" ("?" for others).
const char* DtypeName(c10::ScalarType type);

}  // namespace monologue
