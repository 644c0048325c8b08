#include "core/mimi/weights.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace monologue::mimi {

absl::StatusOr<at::Tensor> WeightReader::Get(const std::string& name, std::vector<int64_t> shape) const {
  absl::StatusOr<at::Tensor> found = lookup_(name);
  if (!found.ok()) {
    return absl::NotFoundError(absl::StrCat(source_,
                                            ": not a Mimi checkpoint of this architecture: missing tensor '",
                                            name, "' (expected shape [", absl::StrJoin(shape, ", "), "])"));
  }
  const at::Tensor& t = *found;
  if (t.sizes().vec() != shape) {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": tensor '", name, "' has shape [",
                                                   absl::StrJoin(t.sizes().vec(), ", "), "], expected [",
                                                   absl::StrJoin(shape, ", "), "]"));
  }
  if (!at::isFloatingType(t.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": tensor '", name, "' has dtype ",
                                                   c10::toString(t.scalar_type()),
                                                   ", expected a floating-point type"));
  }
  return t.to(device_, at::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

}  // namespace monologue::mimi
