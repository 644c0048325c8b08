#include "core/util/device_dtype.h"

#include <ATen/Context.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/util/torch_status.h"

namespace monologue {

absl::StatusOr<c10::Device> ParseDevice(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (name != "cuda" && (name.size() == 5 || name.find_first_not_of("0123456789", 5) != std::string::npos ||
                           !absl::SimpleAtoi(name.substr(5), &index) || index > 1023)) {
      return absl::InvalidArgumentError(
          absl::StrCat("device '", name, "': expected cuda:N, with N the device's number (0 for the first)"));
    }
    if (!at::hasCUDA()) {
      return absl::FailedPreconditionError(
          absl::StrCat("device '", name, "': this libtorch has no usable CUDA device"));
    }
    const size_t count = at::getNumGPUs();
    if (static_cast<size_t>(index) >= count) {
      return absl::InvalidArgumentError(
          absl::StrCat("device '", name, "': this machine has ", count, " CUDA device", count == 1 ? "" : "s",
                       " (cuda:0", count > 1 ? absl::StrCat(" to cuda:", count - 1) : "", ")"));
    }
    return GuardTorch(absl::StrCat("device '", name, "'"), [&] { return c10::Device(name); });
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown device '", name, "' (expected cpu, cuda or cuda:N)"));
}

absl::StatusOr<c10::ScalarType> ParseDtype(const std::string& name, const c10::Device& device,
                                           bool int8_checkpoint) {
  if (name.empty()) return device.is_cuda() ? c10::kBFloat16 : int8_checkpoint ? c10::kChar : c10::kFloat;
  if (name == "f32" || name == "float32") return c10::kFloat;
  if (name == "bf16" || name == "bfloat16") return c10::kBFloat16;
  if (name == "f16" || name == "float16") return c10::kHalf;
  if (name == "int8" || name == "int4") {
    if (!device.is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat("dtype '", name, "' (", name,
                                                     " LM weights) runs on the CPU only for now; on ",
                                                     device.str(), " use bf16 or f16"));
    }
    return name == "int8" ? c10::kChar : c10::ScalarType::Int4;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", name, "' (expected f32, bf16, f16, int8 or int4)"));
}

const char* DtypeName(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat:
      return "f32";
    case c10::kBFloat16:
      return "bf16";
    case c10::kHalf:
      return "f16";
    case c10::kChar:
      return "int8";
    case c10::ScalarType::Int4:
      return "int4";
    default:
      return "?";
  }
}

}  // namespace monologue
