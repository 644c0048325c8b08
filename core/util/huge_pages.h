// Long-lived CPU tensors (model weights) on 2 MB pages.
//
// A batch-1 step on the CPU is a sweep over the weights, bound by how fast the memory streams them. With
// 4 KB pages every 4 KB of that sweep needs its own TLB entry and the hardware prefetchers stop at each page
// boundary; in a virtual machine each TLB miss is a two-level page walk. On the development VM an int8
// sweep over the tts-1.6b temporal transformer's matrices ran ~11% faster on 2 MB pages (12 of 12
// alternating passes; docs/benchmarks.md). Linux backs a mapping with transparent huge pages when it is
// advised to (MADV_HUGEPAGE), which is what most distributions' default ("madvise") requires; libtorch's
// own allocator does so only when C10_THP_MEM_ALLOC_ENABLE is set before the process starts.
//
// Weights are carved out of an arena of 2 MB-aligned mappings of 256 MB (a larger tensor gets one of its
// own), 64-byte aligned, so that small weights share pages instead of each rounding up to 2 MB. A mapping
// is returned to the system when the last tensor in it is freed, so the arena suits weights, which live as
// long as their model: space freed inside a mapping is not reused while it lives. Buffers with a lifetime
// of their own (a generator's KV caches) ask for a mapping of their own (`own_mapping`), which goes with
// them; its last partial 2 MB stays on 4 KB pages. Pages never touched are never backed. Where huge pages
// are unavailable (not Linux, THP "never") the same mappings use 4 KB pages: placement never fails
// because of it, and falls back to at::empty where mmap does.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace monologue {

// Whether new placements use the arena (default true). False makes PlaceOnHugePages a no-op and
// EmptyOnHugePages a plain at::empty, for A/B measurements (`MONOLOGUE_HUGE_PAGES=0` in the CLI).
void SetHugePagesEnabled(bool enabled);
bool HugePagesEnabled();

// An uninitialised contiguous tensor of `sizes` in the arena (`own_mapping`: in a mapping of its own) when
// `options` is a CPU device and placement is enabled; at::empty otherwise.
at::Tensor EmptyOnHugePages(at::IntArrayRef sizes, const at::TensorOptions& options,
                            bool own_mapping = false);

// `t`'s values copied into a contiguous tensor in the arena (same dtype, sizes); t.contiguous() (no copy
// when `t` is contiguous already) when it is not a CPU tensor, is empty, or placement is disabled.
at::Tensor PlaceOnHugePages(const at::Tensor& t, bool own_mapping = false);

// Bytes of this process's anonymous memory that the kernel backs with huge pages now (AnonHugePages of
// /proc/self/smaps_rollup), or -1 where that is not available. For reports (`bench`), not decisions.
int64_t AnonHugePageBytes();

}  // namespace monologue
