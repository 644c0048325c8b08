// Weight-only 4-bit matrix product for the LM's linear layers on CPU (`--dtype int4`): y = x Wᵀ (+ bias),
// W stored as signed 4-bit values with one scale per group of 32 inputs of a row, x and y in f32.
//
// Why: a batch-1 step reads every weight once, so its time is the weights' bytes over the memory speed. int8
// halves f32-from-bf16's bytes; 4 bits (4.5 with the scales) halve them again, and a depformer weight set
// shared by 8 codebook steps (21-23 MB instead of 42-46 MB at tts-1.6b size) then stays in a 32 MB L3 from
// one step to the next instead of streaming from memory 8 times. The price is precision: a 4-bit weight is
// within half a step (absmax / 8 of its group) of the float one, ~10x int8's error (docs/lm.md, "int4
// weights").
//
// Quantisation of a group of 32 weights (QuantizeGroup): d = the group's value of largest magnitude / -8
// (rounded to f16, as stored), q = round(w / d) clamped to [-8, 7], so the extreme value maps to -8 exactly
// and the 16 levels are all used (llama.cpp's Q4_0 rule).
//
// Three implementations chosen at run time:
// - kVnni (AVX-512 VNNI): each input row is rounded to 16-bit fixed point (scale max|x| / 32639, ~1/65000 of
//   the row's largest value, far below the weights' rounding) and split into two signed bytes, q = 256 hi +
//   lo; `vpdpbusd` of the unsigned stored nibbles (q + 8) with each byte gives exact integer sums per group,
//   the zero point is removed exactly in integers, and each group's sum is scaled in f32.
// - kAvx2 (AVX2 + FMA + F16C: laptops and desktops without AVX-512): kVnni's arithmetic with vpmaddubsw +
//   vpmaddwd for each 4-byte dot product (exact: a nibble times a signed byte, twice, fits 16 bits) and its
//   16 lanes as two halves of 8, summed by the same tree: the same bits as kVnni.
// - kScalar: plain loops over the dequantised weights and the f32 input (any CPU; the definition the tests
//   hold the vector path to).
// Every path computes each (output row, input row) value independently of the other input rows, so a row's
// result does not depend on the batch it is in.
#pragma once

#include <cstdint>

namespace monologue::lm::int4 {

enum class KernelPath { kScalar, kAvx2, kVnni };

// The fastest path this CPU runs (kVnni, else kAvx2, else kScalar), under kernels::SetCpuIsaLimit's cap.
KernelPath BestPath();
const char* PathName(KernelPath path);

// Inputs per scale.
inline constexpr int64_t kGroup = 32;
// Output rows whose packed data is interleaved into one stream (a kernel block reads one contiguous stream).
inline constexpr int64_t kRowGroup = 8;
// Inputs per packed chunk of a row: 128 nibbles in 64 bytes, byte j holding input j (low nibble) and input
// 64 + j (high nibble), so one 64-byte load and two masks give the chunk's two 64-byte operands.
inline constexpr int64_t kChunk = 128;
// Bytes of one row group's chunk: 8 rows x 64 bytes of nibbles, then the 8 rows' 4 group scales as f16,
// ordered [half 0 (inputs 0-63): row 0 group 0, row 0 group 1, row 1 group 0, ...; half 1 (64-127): ...].
inline constexpr int64_t kChunkBytes = kRowGroup * 64 + kRowGroup * 4 * 2;

// K rounded up to kChunk.
int64_t PaddedK(int64_t k);
// Bytes of the packed form of an [n, k] weight (n rounded up to kRowGroup, K to kChunk).
int64_t PackedBytes(int64_t n, int64_t k);

// w [n, k] f32 row-major -> packed (PackedBytes(n, k) bytes; padding holds zero weights). `values` (may be
// null) receives the signed 4-bit values [n, k] and `scales` (may be null) the f32 value of each group's f16
// scale [n, ceil(k / kGroup)].
void Quantize(const float* w, int64_t n, int64_t k, uint8_t* packed, int8_t* values = nullptr,
              float* scales = nullptr);
// The inverse: packed -> values [n, k] and scales [n, ceil(k / kGroup)] (either may be null).
void Unpack(const uint8_t* packed, int64_t n, int64_t k, int8_t* values, float* scales);
// values [n, k] in [-8, 7] and f32 scales [n, ceil(k / kGroup)] (each exactly representable in f16) ->
// packed.
void Pack(const int8_t* values, const float* scales, int64_t n, int64_t k, uint8_t* packed);

// Output rows [n_begin, n_end) of y[b, n] = sum_k x[b, k] scale[n, k / 32] q[n, k] (+ bias[n] when bias is
// not null) for b < batch. x: [batch, k] with row stride ldx; w: the packed weight; y: [batch, N] with row
// stride ldy. Rows outside [n_begin, n_end) are not written. Single-threaded: callers split the rows among
// threads (at multiples of kRowGroup).
void GemmRows(KernelPath path, const float* x, int64_t ldx, int64_t batch, int64_t k, const uint8_t* w,
              const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end);

}  // namespace monologue::lm::int4
