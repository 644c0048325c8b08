// Weight-only int8 matrix product for the LM's linear layers on CPU: y = x W^T * scale (+ bias), with W
// int8 [N, K] (one f32 scale per output row) and x, y in f32. At the LM's batch sizes (1..8 rows per step)
// the product is bound by reading W, so storing it in 8 bits instead of 32 cuts a step's time by up to
// ~4x. The activations stay f32 in memory; the kernels round each input row to 16-bit fixed point on the fly
// (below), an error 256 times finer than the weights' own.
//
// Four implementations chosen at run time by CPU feature detection. Three of them round each input row to
// 16-bit fixed point (q = round(x / s), s = max |x| / 32767: ~1/65534 of the row's largest value, far below
// the weights' own rounding) and compute the exact integer sum of q * w, scaled once in double, so they give
// the same bits on every CPU:
// - kVnni (AVX-512 VNNI): q split into two unsigned 8-bit limbs; two `vpdpbusd` per 64 weights and input row.
//   1.6x the kAvx512 path at batch 1 and 8 on stt-1b shapes (docs/benchmarks.md), close to the memory speed.
// - kAvx2 (AVX2, the laptop and desktop CPUs without AVX-512): weights sign-extended to 16 bits, `vpmaddwd`
//   with q, 32-bit sums widened to 64 bits every 4096 inputs. 1.6-1.9x the f32 FMA code it replaced on an
//   AVX2 AMD EPYC (depformer-size products at batch 1), 2.2-2.5x at batch 8 (stt-1b LM step).
// - kScalar: plain loops, 64-bit sums (any CPU, ARM included; ~8x slower than the vector paths).
// - kAvx512 (F + BW + VL, for AVX-512 CPUs without VNNI): int8 -> f32 conversion in registers and FMA with
// the
//   f32 input (f32 arithmetic: its own bits).
// Every path computes each (output row, input row) value independently of the other input rows, so a row's
// result does not depend on the batch it is in.
#pragma once

#include <cstdint>

namespace monologue::lm::int8 {

enum class KernelPath { kScalar, kAvx2, kAvx512, kVnni };

// The fastest path this CPU runs (kVnni, else kAvx512, else kAvx2, else kScalar). A path the CPU lacks falls
// back to the next one down.
KernelPath BestPath();
const char* PathName(KernelPath path);
// Caps BestPath() at `limit` for the whole process (default kVnni: no cap), to run what a CPU without AVX-512
// or VNNI would on this one (the CLI's MONOLOGUE_INT8_KERNEL). Set it before loading models.
void SetPathLimit(KernelPath limit);
// "scalar", "avx2", "avx512" or "avx512-vnni" (PathName's words) -> the path; false for anything else.
bool ParsePathName(const char* name, KernelPath* path);

// The weights' packed layout. At batch 1 a block of 8 output rows would read 8 separate 1-8 KB rows at once;
// the hardware prefetchers follow such short, interleaved streams badly (15-20 GB/s on the development VM for
// the depformer's [1024, 1024]-[4096, 1024] matrices, against ~30 GB/s for one long stream). So W [N, K] is
// stored in groups of kRowGroup rows, each group as K / kChunk chunks of kChunk values per row (one 64-byte
// cache line each), row by row within a chunk: a block of 8 rows then reads one contiguous stream. K is
// padded to a multiple of kChunk and N to a multiple of kRowGroup with zeros, which add nothing to any sum.
inline constexpr int64_t kRowGroup = 8;
inline constexpr int64_t kChunk = 64;

// K rounded up to kChunk.
int64_t PaddedK(int64_t k);
// Bytes of the packed form of an [n, k] weight.
int64_t PackedBytes(int64_t n, int64_t k);
// Byte offset of w[row, i] in the packed form.
inline int64_t PackedOffset(int64_t row, int64_t i, int64_t padded_k) {
  return (row / kRowGroup) * kRowGroup * padded_k + (i / kChunk) * (kRowGroup * kChunk) +
         (row % kRowGroup) * kChunk + i % kChunk;
}
// One row's symmetric quantisation: scale = max_k |w[k]| / 127 (1 for an all-zero row), q = round(w / scale)
// in
// [-127, 127] (IEEE division, round to nearest even); returns the scale and sets *sum = sum_k q[k].
float QuantizeRow(const float* w, int64_t k, int8_t* q, int32_t* sum);

// w [n, k] row-major -> packed (PackedBytes(n, k) bytes, padding zeroed), and back.
void PackRows(const int8_t* w, int64_t n, int64_t k, int8_t* packed);
void UnpackRows(const int8_t* packed, int64_t n, int64_t k, int8_t* w);

// Output rows [n_begin, n_end) of y[b, n] = scale[n] * sum_k x[b, k] w[n, k] (+ bias[n] when bias is not
// null) for b < batch. x: [batch, k] with row stride ldx; w: the packed form of an [N, k] weight (PackRows);
// row_sums[n] = sum_k w[n, k] (the kVnni path needs it; may be null for the others); y: [batch, N] with row
// stride ldy. Rows outside [n_begin, n_end) are neither read from scale, row_sums and bias nor written.
// Single-threaded: callers split the rows among threads (at multiples of kRowGroup for speed).
void GemmRows(KernelPath path, const float* x, int64_t ldx, int64_t batch, int64_t k, const int8_t* w,
              const float* scale, const int32_t* row_sums, const float* bias, float* y, int64_t ldy,
              int64_t n_begin, int64_t n_end);

}  // namespace monologue::lm::int8
