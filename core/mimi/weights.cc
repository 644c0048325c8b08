#include "core/mimi/weights.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/finite_check.h"
#include "core/util/huge_pages.h"

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
  if (!AllFinite(t)) {
    return absl::InvalidArgumentError(absl::StrCat(
        source_, ": tensor '", name,
        "' holds NaN or infinite values (a corrupt or badly converted checkpoint; the codec cannot run)"));
  }
  // On the CPU the copy lands on 2 MB pages (a streaming frame sweeps ~190 MB of these weights); elsewhere a
  // plain copy.
  if (device_.is_cpu() && HugePagesEnabled()) return PlaceOnHugePages(t.to(at::kFloat));
  return t.to(device_, at::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

}  // namespace monologue::mimi
