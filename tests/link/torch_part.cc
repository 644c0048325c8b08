#include "tests/link/torch_part.h"

#include <ATen/ATen.h>

namespace monologue::link_test {
float TorchArangeSum(int n) { return at::arange(n, at::kFloat).sum().item<float>(); }
}  // namespace monologue::link_test
