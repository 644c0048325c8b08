#include "core/util/finite_check.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace monologue {
namespace {

// An element is NaN or infinite exactly when all of its exponent bits are set.
template <typename Bits>
bool ExponentsFinite(const void* data, int64_t n, Bits exponent) {
  std::atomic<bool> finite{true};
  at::parallel_for(0, n, int64_t{1} << 20, [&](int64_t begin, int64_t end) {
    const Bits* p = static_cast<const Bits*>(data);
    Bits any = 0;
    // Counts the chunk's all-ones exponents without branching, so the compiler vectorises the loop.
    for (int64_t i = begin; i < end; ++i) any |= static_cast<Bits>((p[i] & exponent) == exponent);
    if (any != 0) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

}  // namespace

bool AllFinite(const at::Tensor& t) {
  if (!at::isFloatingType(t.scalar_type()) || t.numel() == 0) return true;
  if (t.device().is_cpu()) {
    const at::Tensor c = t.contiguous();
    switch (c.scalar_type()) {
      case at::kFloat:
        return ExponentsFinite<uint32_t>(c.data_ptr(), c.numel(), 0x7F800000u);
      case at::kBFloat16:
        return ExponentsFinite<uint16_t>(c.data_ptr(), c.numel(), 0x7F80u);
      case at::kHalf:
        return ExponentsFinite<uint16_t>(c.data_ptr(), c.numel(), 0x7C00u);
      case at::kDouble:
        return ExponentsFinite<uint64_t>(c.data_ptr(), c.numel(), 0x7FF0000000000000ull);
      default:
        break;
    }
  }
  return at::isfinite(t).all().item<bool>();
}

}  // namespace monologue
