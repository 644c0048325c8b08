// Scaled dot-product attention for the streaming step's small shapes on the CPU: one or two queries per
// (batch row, head) against at most a few hundred keys (the depformer's k + 1 entries, Mimi's 250-entry
// ring). libtorch's CPU flash-attention kernel costs ~90 µs a call at these sizes whatever the arithmetic
// (buffers sized for its blocks, a parallel region), 128 depformer calls a TTS step; this is the plain
// computation: scores q·k / sqrt(D) over the visible keys, softmax (max-subtracted), weighted sum of values.
// The results equal ATen's up to float rounding (summation order), not bit for bit.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace monologue::kernels {

// The most keys (L) SmallAttention reads for keys and values of `kv_dtype`: 1024 in f32, 16384 in bf16.
int64_t SmallAttentionMaxKeys(at::ScalarType kv_dtype);

// Whether SmallAttention serves these operands: CPU, q [B, H, Lq, D] f32 with Lq <= 4, k and v [B, H, L, D]
// both f32 or both bf16 (widened exactly as they are read) with L <= SmallAttentionMaxKeys and unit stride
// over D, an optional bool mask broadcastable as [B, 1, Lq, L] (true = visible; size 1 or B in dim 0, size 1
// in dim 1), on an AVX2 or AVX-512 CPU (the same bits on both).
bool ServesSmallAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const std::optional<at::Tensor>& mask);

// at::scaled_dot_product_attention(q, k, v, mask) for operands ServesSmallAttention accepts, [B, H, Lq, D]
// contiguous. A query row that sees no key gets zeros (ATen gives NaN there; no caller has such rows).
at::Tensor SmallAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const std::optional<at::Tensor>& mask);

// The raw form for one query per (batch row, head) that sees every key (the depformer's step): q and out
// [B, H, D] contiguous; key j of (b, h) at k + b * stride_b + h * stride_h + j * stride_l (unit stride over
// D), the same for v. The same bits as SmallAttention on those operands.
bool ServesSmallAttentionRows(int64_t keys, int64_t d);
void SmallAttentionRows(const float* q, int64_t batch, int64_t heads, int64_t d, const float* k,
                        const float* v, int64_t stride_b, int64_t stride_h, int64_t stride_l, int64_t keys,
                        float* out);
// The (batch row, head) pairs [pair_begin, pair_end) of SmallAttentionRows (pair = b * heads + h) on the
// calling thread alone: a kernels::ThreadTeam member's share, the same bits.
void SmallAttentionRowsPart(const float* q, int64_t batch, int64_t heads, int64_t d, const float* k,
                            const float* v, int64_t stride_b, int64_t stride_h, int64_t stride_l,
                            int64_t keys, float* out, int64_t pair_begin, int64_t pair_end);

// at::scaled_dot_product_attention(q, k, v, mask), through SmallAttention when it serves the operands; k and
// v may be narrower than q (widened to q's dtype for ATen).
at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const std::optional<at::Tensor>& mask);

}  // namespace monologue::kernels
