// Shared helpers for the Mimi tests: the committed fixtures (tests/data/mimi, written by
// tests/reference/make_mimi_fixtures.py) and the two models they describe.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/config/mimi_config.h"
#include "core/io/safetensors.h"
#include "core/mimi/mimi_model.h"

namespace monologue::mimi_test {

std::string DataPath(const std::string& name);  // tests/data/mimi/<name>

// The small Mimi (weights in tiny_mimi.safetensors, config in tiny_mimi_config.json).
absl::StatusOr<MimiConfig> TinyConfig();
absl::StatusOr<MimiModel> LoadTiny(c10::Device device = c10::Device(c10::kCPU));
// The released architecture with the deterministic weights whose rules real_cases.safetensors records.
absl::StatusOr<MimiModel> LoadReal(c10::Device device = c10::Device(c10::kCPU));

// A tensor of a fixture file (copied, so it outlives the mapping).
at::Tensor Fixture(const SafeTensorsFile& file, const std::string& name);

// Fraction of equal entries.
double Agreement(const at::Tensor& a, const at::Tensor& b);
// ||a - b|| / ||b||.
double RelativeL2(const at::Tensor& a, const at::Tensor& b);

// Streams pcm [B, 1, n * 1920] frame by frame.
at::Tensor StreamEncode(const MimiModel& model, MimiStreamState& state, const at::Tensor& pcm);
at::Tensor StreamDecode(const MimiModel& model, MimiStreamState& state, const at::Tensor& codes);

}  // namespace monologue::mimi_test
