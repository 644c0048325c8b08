#include "core/kernels/avx512.h"

namespace monologue::kernels {

bool CpuHasAvx512() {
#ifdef MONOLOGUE_KERNELS_AVX512
  static const bool have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
  return have;
#else
  return false;
#endif
}

}  // namespace monologue::kernels
