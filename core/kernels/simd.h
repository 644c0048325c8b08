// What the kernels' vector code needs: the intrinsics where the compiler offers them (x86-64 GCC or Clang)
// and the target attributes their functions carry, so the rest of the build stays portable. Which of them
// runs is decided once at run time (core/kernels/cpu_isa.h).
#pragma once

#include "core/kernels/cpu_isa.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MONOLOGUE_KERNELS_AVX512 1
#define MONOLOGUE_KERNELS_AVX2 1
#define MONOLOGUE_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define MONOLOGUE_AVX2_TARGET __attribute__((target("avx2,fma")))
// GCC 12's AVX-512 cast/extract/reduce intrinsics pass an undefined operand (_mm512_undefined_*) that
// -Wuninitialized reports once inlined; the instruction ignores it. AVX-512 code sits between these two.
#define MONOLOGUE_AVX512_WARNINGS_OFF                                                  \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define MONOLOGUE_AVX512_WARNINGS_ON _Pragma("GCC diagnostic pop")
#endif
