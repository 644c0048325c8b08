#pragma once
// Torch-free interface to a translation unit that uses libtorch.
namespace monologue::link_test {
// Sum of 0..n-1 computed with an ATen tensor.
float TorchArangeSum(int n);
}  // namespace monologue::link_test
