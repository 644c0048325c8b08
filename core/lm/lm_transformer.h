// The streaming transformer of the Moshi LM, used both as the temporal transformer (one step per 80 ms
// frame, ring KV cache of `context` steps, per-slot positions) and as the depformer (one step per
// codebook inside a frame, one weight set per step). moshi-reference.md §3.2-§3.4.
//
// Batch-first and slot-independent: every quantity that depends on a slot's history (its position, the
// part of the ring it has written) is a device tensor indexed by slot, so slots join, pause or restart
// at any frame without touching the others, and on a GPU a step has fixed shapes and no host
// synchronisation (capturable in a CUDA graph). In f32 on the CPU, attention reads only the part of the
// ring that rows can see (TemporalContext), so a young stream's step does not pay for the whole context.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "core/lm/lm_ops.h"
#include "core/util/step_rows.h"

namespace monologue::lm {

enum class PositionalEmbedding { kNone, kRope, kRopeConcat, kSin, kSinRope };

struct TransformerLayer {
  Norm norm1;
  Norm norm2;
  std::vector<LinearWeight> in_proj;   // per weight set [3D, D] (Q, K, V rows; heads contiguous)
  std::vector<LinearWeight> out_proj;  // per weight set [D, D]
  std::vector<FeedForward> ffn;      // per weight set
  at::Tensor layer_scale_1;          // [D] or undefined
  at::Tensor layer_scale_2;
  // Cross-attention (TTS): LayerNorm, query rows of the fused in_proj, key/value rows, out_proj.
  bool cross = false;
  Norm norm_cross;
  at::Tensor layer_scale_cross;
  LinearWeight cross_q;    // [D, D]
  LinearWeight cross_kv;   // [2D, D]
  LinearWeight cross_out;  // [D, D]
};

struct TransformerSpec {
  int64_t dim = 0;
  int64_t num_heads = 1;
  int64_t head_dim() const { return dim / num_heads; }
  int64_t context = -1;  // attention window in steps; -1: unlimited
  int64_t capacity = 0;  // KV ring size (context for the temporal transformer, dep_q for the depformer)
  PositionalEmbedding positional = PositionalEmbedding::kRope;
  double max_period = 10000;
  double positional_scale = 1.0;
  // How the cross-attention keys and values are stored (undefined: the model's dtype). A quantised CPU model
  // keeps them in bf16: a tts-1.6b step reads 16 layers x [625 x 2048] x 2 of them, 164 MB in f32 at batch
  // 1, the largest read after the weights; its logits are already int8/int4 approximations.
  std::optional<at::ScalarType> cross_memory_dtype;
  // How the self-attention KV cache is stored (undefined: the dtype NewState is given). A quantised CPU model
  // keeps it in bf16 too: with a full context a step reads all of it, per batch row 131 MB in f32 for
  // tts-1.6b (16 layers x 500 steps x 2 x 2048), 3.1 GB for Moshi 7B (32 x 3000 x 2 x 4096).
  std::optional<at::ScalarType> kv_memory_dtype;
  // Cross-attention memory entries projected together (Transformer::SetCrossSource): a new source's blocks
  // that equal a held source's are copied, not projected (TTS voices share their padded speaker slots).
  int64_t cross_block_rows = 128;
};

// Streaming state of one transformer for B rows.
struct KvState {
  std::vector<at::Tensor> keys;          // per layer [B, H, capacity, Dh]
  std::vector<at::Tensor> values;        // per layer [B, H, capacity, Dh]
  std::vector<at::Tensor> cross_keys;    // per layer [B, H, S, Dh] (cross-attention layers only)
  std::vector<at::Tensor> cross_values;  // per layer [B, H, S, Dh]
  // Which cross-attention source each row holds (an id into cross_sources; -1: none yet). Rows with the same
  // id hold bitwise-equal keys and values (each distinct source is projected alone), so a step whose rows
  // all share one source reads that one row's keys and values for all of them: the same results, one read
  // of the memory instead of one per row (many streams speaking with one voice).
  std::vector<int64_t> cross_row_source;
  std::map<int64_t, at::Tensor> cross_sources;  // id -> source [S, D] as given (for matching new ones)
  int64_t next_cross_source = 0;
  // Sources projected through the cross-attention layers so far (a source some row's keys and values already
  // hold is copied, not projected again).
  int64_t cross_projections = 0;
  // Blocks of spec.cross_block_rows entries of those sources projected, and copied from another source's equal
  // block (counted once per layer).
  int64_t cross_blocks_projected = 0;
  int64_t cross_blocks_copied = 0;
};

// What one step of every layer shares: where each row writes its new key/value, which ring entries each
// row may attend to, and the positional tables for the rows' positions.
struct StepContext {
  at::Tensor write_index;   // int64 [B, H, 1, Dh]: ring slot of the new entry, expanded for scatter
  at::Tensor ring_slot;     // int64 [B]: the same, one per row
  int64_t write_slot = -1;  // >= 0: every row writes this slot (depformer), write_index unused
  at::Tensor attn_mask;     // bool [B, 1, 1, kv_len], or undefined: every one of the kv_len entries counts
  // Ring entries [0, kv_len) are the only ones any row may attend to (the rest are masked for every row),
  // so attention reads just those: a cache that is not yet full costs what it holds, not its capacity.
  int64_t kv_len = 0;
  at::Tensor rope_cos;      // f32 [B, 1, 1, 1, Dh/2] (rope kinds)
  at::Tensor rope_sin;
  at::Tensor sin_pos;  // [B, 1, D] in the model dtype (sin kinds)
  int64_t weight_set = 0;
};

class Transformer {
 public:
  TransformerSpec spec;
  std::vector<TransformerLayer> layers;
  at::Tensor rope_freqs;  // f32 [Dh/2] on the model device
  at::Tensor ring_slots;  // int64 [1, capacity]: 0 .. capacity - 1 (made once at load, not per step)
  // Whether Step may take RawStep where it serves (tests compare the two paths).
  bool use_raw_step = true;

  // Empty caches for `batch` rows (zeros, the reference's initial content), in spec.kv_memory_dtype if set,
  // else `dtype`.
  KvState NewState(int64_t batch, at::ScalarType dtype, at::Device device) const;

  // Step context for rows at positions `positions` (int64 [B], the number of steps each row has run
  // since its last reset), ring write at `positions % capacity`. Rows attend to the ring entries whose
  // position p satisfies 0 <= q - p < context (q = the row's position), counting the entry written now.
  StepContext TemporalContext(const at::Tensor& positions, at::ScalarType dtype) const;
  // Step context for the depformer's step k (every row at position k, writing slot k, attending to
  // slots 0..k), `batch` rows.
  StepContext DepthContext(int64_t k, int64_t batch, int64_t weight_set, at::ScalarType dtype,
                           at::Device device) const;

  // Sets the cross-attention source (`src` [B, S, D] in the model dtype) for the rows of `state`
  // selected by `rows` (int64 indices; undefined: all rows). The source length S must match the state's
  // when it already has one.
  void SetCrossSource(KvState& state, const at::Tensor& src, const at::Tensor& rows = at::Tensor()) const;

  // One step: x [B, 1, D] -> [B, 1, D]. With `rows`, x and `ctx` hold the step's rows ([rows->rows, ...],
  // the context made from their positions) while `state` holds every slot: the step reads the KV rows
  // through rows->index and stores the new entries of the active rows only (padding rows store nothing).
  at::Tensor Step(KvState& state, const StepContext& ctx, at::Tensor x, const StepRows* rows = nullptr) const;

  // The depformer's step on plain buffers (lm_depth_step.cc), which Step takes when it serves the operands:
  // few f32 CPU rows, a depth context (one write slot, no mask, no positional embedding), RMS norms, weights
  // whose products run raw (LinearWeight::ServesRows), no cross-attention or layer scale. Bitwise Step's
  // result, without its ~45 ATen calls a layer.
  bool ServesRawStep(const KvState& state, const StepContext& ctx, const at::Tensor& x) const;
  at::Tensor RawStep(KvState& state, const StepContext& ctx, const at::Tensor& x) const;
};

}  // namespace monologue::lm
