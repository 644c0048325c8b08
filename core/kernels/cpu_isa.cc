#include "core/kernels/cpu_isa.h"

#include <algorithm>
#include <atomic>
#include <cstring>

namespace monologue::kernels {
namespace {
std::atomic<CpuIsa> limit{CpuIsa::kAvx512};
}  // namespace

CpuIsa DetectedCpuIsa() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const CpuIsa detected = [] {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return CpuIsa::kScalar;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
      return CpuIsa::kAvx512;
    return CpuIsa::kAvx2;
  }();
  return detected;
#else
  return CpuIsa::kScalar;
#endif
}

CpuIsa ActiveCpuIsa() { return std::min(DetectedCpuIsa(), limit.load(std::memory_order_relaxed)); }

void SetCpuIsaLimit(CpuIsa isa) { limit.store(isa); }

CpuIsa CpuIsaLimit() { return limit.load(); }

const char* CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return "avx512";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kScalar:
      break;
  }
  return "scalar";
}

bool ParseCpuIsa(const char* name, CpuIsa* isa) {
  for (CpuIsa level : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (std::strcmp(name, CpuIsaName(level)) == 0) {
      *isa = level;
      return true;
    }
  }
  return false;
}

}  // namespace monologue::kernels
