// Typed access to a Mimi checkpoint's tensors while building the model: every tensor is looked up by its
// released name, checked for shape, converted to the model's device and dtype, and errors name the source
// (file) and the tensor.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace monologue::mimi {

// Returns the CPU tensor called `name`, or NOT_FOUND.
using TensorLookup = std::function<absl::StatusOr<at::Tensor>(const std::string& name)>;

class WeightReader {
 public:
  WeightReader(TensorLookup lookup, std::string source, c10::Device device)
      : lookup_(std::move(lookup)), source_(std::move(source)), device_(device) {}

  // The tensor `name`, which must have exactly `shape`, as contiguous float32 on the device.
  absl::StatusOr<at::Tensor> Get(const std::string& name, std::vector<int64_t> shape) const;
  const std::string& source() const { return source_; }

 private:
  TensorLookup lookup_;
  std::string source_;
  c10::Device device_;
};

}  // namespace monologue::mimi
