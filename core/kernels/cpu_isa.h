// Which vector instruction set the kernels use: the best this CPU (and this build) offers, capped by a
// process-wide limit. The cap runs, on a CPU that has AVX-512, exactly what a laptop or desktop CPU with only
// AVX2 (or none) would run, so the slower paths are tested and measured here (the CLI's MONOLOGUE_CPU_ISA).
#pragma once

namespace monologue::kernels {

// Ordered: each level includes the ones below it.
//   kAvx2: AVX2 + FMA (x86-64 CPUs since 2013-2015, most laptops);
//   kAvx512: AVX-512 F, BW and VL + FMA (server CPUs, AMD Zen 4 and later).
enum class CpuIsa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// What this CPU supports of the sets this build has code for.
CpuIsa DetectedCpuIsa();
// min(DetectedCpuIsa(), limit): what the kernels use.
CpuIsa ActiveCpuIsa();
// Caps ActiveCpuIsa() for the whole process (default: no cap). Set it before loading models: layouts chosen
// at load (bf16 weights kept for the few-row kernel, for instance) follow the level active then.
void SetCpuIsaLimit(CpuIsa limit);
CpuIsa CpuIsaLimit();

inline bool CpuHasAvx512() { return ActiveCpuIsa() >= CpuIsa::kAvx512; }
inline bool CpuHasAvx2() { return ActiveCpuIsa() >= CpuIsa::kAvx2; }

// "scalar", "avx2", "avx512".
const char* CpuIsaName(CpuIsa isa);
// CpuIsaName's words -> the level; false for anything else.
bool ParseCpuIsa(const char* name, CpuIsa* isa);

}  // namespace monologue::kernels
