#include "core/lm/lm_transformer.h"

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <optional>
#include <utility>

#include "core/kernels/small_attention.h"
#include "core/util/huge_pages.h"

namespace monologue::lm {
namespace {

bool HasRope(PositionalEmbedding p) {
  return p == PositionalEmbedding::kRope || p == PositionalEmbedding::kRopeConcat ||
         p == PositionalEmbedding::kSinRope;
}
bool HasSin(PositionalEmbedding p) {
  return p == PositionalEmbedding::kSin || p == PositionalEmbedding::kSinRope;
}

// Reference `apply_rope` on the Q and K parts of one step's projection at once: qk [B, 1, 2, H, Dh].
// Same elementwise operations (fp32 rotation of (re, im) pairs, cast back) as the reference.
at::Tensor ApplyRope(const at::Tensor& qk, const StepContext& ctx, bool interleave) {
  const int64_t dh = qk.size(-1);
  const auto dtype = qk.scalar_type();
  at::Tensor re, im;
  if (interleave) {
    at::Tensor pairs = qk.unflatten(-1, {dh / 2, 2});
    re = pairs.select(-1, 0).to(at::kFloat);
    im = pairs.select(-1, 1).to(at::kFloat);
  } else {
    re = qk.narrow(-1, 0, dh / 2).to(at::kFloat);
    im = qk.narrow(-1, dh / 2, dh / 2).to(at::kFloat);
  }
  at::Tensor out_re = re * ctx.rope_cos - im * ctx.rope_sin;
  at::Tensor out_im = re * ctx.rope_sin + im * ctx.rope_cos;
  if (interleave) return at::stack({out_re.to(dtype), out_im.to(dtype)}, -1).flatten(-2);
  return at::cat({out_re.to(dtype), out_im.to(dtype)}, -1);
}

void RopeTables(const at::Tensor& freqs, const at::Tensor& positions_f32, StepContext& ctx) {
  // ts [B] -> angle [B, 1, 1, 1, Dh/2] = freqs * ts (reference: freqs * ts.view(B, 1, T, 1)).
  at::Tensor angle = freqs * positions_f32.view({-1, 1, 1, 1, 1});
  ctx.rope_cos = at::cos(angle);
  ctx.rope_sin = at::sin(angle);
}

}  // namespace

KvState Transformer::NewState(int64_t batch, at::ScalarType dtype, at::Device device) const {
  KvState state;
  const auto opts = at::TensorOptions().dtype(spec.kv_memory_dtype.value_or(dtype)).device(device);
  // Every layer's keys and values in one buffer, on 2 MB pages of its own on the CPU: a step reads the
  // filled part of each (stt-1b at batch 1 with a full context: ~200 MB of f32).
  const int64_t n_layers = static_cast<int64_t>(layers.size());
  const at::Tensor cache =
      EmptyOnHugePages({n_layers, 2, batch, spec.num_heads, spec.capacity, spec.head_dim()}, opts,
                       /*own_mapping=*/true)
          .zero_();
  for (int64_t l = 0; l < n_layers; ++l) {
    state.keys.push_back(cache[l][0]);
    state.values.push_back(cache[l][1]);
  }
  state.cross_keys.resize(layers.size());
  state.cross_values.resize(layers.size());
  return state;
}

StepContext Transformer::TemporalContext(const at::Tensor& positions, at::ScalarType dtype) const {
  StepContext ctx;
  const int64_t batch = positions.size(0);
  const int64_t cap = spec.capacity;
  at::Tensor slot = at::remainder(positions, cap);
  ctx.ring_slot = slot;
  ctx.write_index = slot.view({batch, 1, 1, 1}).expand({batch, spec.num_heads, 1, spec.head_dim()});
  // Positions held by the ring entries once this step's entry is written (reference RingKVCache.complete
  // with T = 1): entry s holds last + (s - end) or that minus capacity; entries never written hold -1.
  at::Tensor s = ring_slots.defined() ? ring_slots : at::arange(cap, positions.options()).view({1, cap});
  at::Tensor last = positions.view({batch, 1});
  at::Tensor delta = s - slot.view({batch, 1});
  at::Tensor pos = at::where(delta.le(0), last + delta, last + delta - cap);
  // Counted as written for every row, executing or not: a paused row then attends to its own (discarded)
  // entry instead of to nothing, which keeps its outputs finite. Executing rows see exactly the
  // reference's mask.
  pos = pos.masked_fill(s.ge(last + 1), -1);
  at::Tensor diff = last - pos;
  at::Tensor mask = pos.ge(0) & diff.ge(0);
  if (spec.context > 0) mask = mask & diff.lt(spec.context);
  ctx.attn_mask = mask.view({batch, 1, 1, cap});
  ctx.kv_len = cap;
  if (positions.is_cpu() && dtype == at::kFloat && batch > 0) {
    // While no row has wrapped around the ring (every position < capacity), a row at position p attends to
    // entries 0..p only, so entries past the largest position are masked for all rows: leave them out.
    // The masked entries add exact zeros, so only the summation order can move the last f32 bit. Not in
    // bf16/f16, where the attention kernel's intermediate roundings follow the length and greedy tokens
    // would drift from the reference's; not on a GPU, where reading the largest position costs a sync.
    const int64_t newest = positions.max().item<int64_t>();
    if (newest < cap) {
      ctx.kv_len = newest + 1;
      ctx.attn_mask = ctx.attn_mask.narrow(-1, 0, ctx.kv_len);
    }
  }
  if (HasRope(spec.positional)) RopeTables(rope_freqs, positions.to(at::kFloat), ctx);
  if (HasSin(spec.positional))
    ctx.sin_pos = SinEmbedding(positions.view({batch, 1, 1}), spec.dim, spec.max_period, dtype);
  return ctx;
}

StepContext Transformer::DepthContext(int64_t k, int64_t batch, int64_t weight_set, at::ScalarType dtype,
                                      at::Device device) const {
  StepContext ctx;
  ctx.write_slot = k;
  ctx.weight_set = weight_set;
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(device);
  // Step k attends to entries 0..k, all written at this frame. In f32 (see TemporalContext) the step reads
  // just those k + 1 entries with no mask; otherwise the whole cache, masked, as the reference does.
  if (dtype == at::kFloat) {
    ctx.kv_len = k + 1;
  } else {
    at::Tensor s = at::arange(spec.capacity, long_opts);
    ctx.attn_mask = s.le(k).view({1, 1, 1, spec.capacity}).expand({batch, 1, 1, spec.capacity}).contiguous();
  }
  at::Tensor positions = at::full({batch}, k, long_opts);
  if (HasRope(spec.positional)) RopeTables(rope_freqs, positions.to(at::kFloat), ctx);
  if (HasSin(spec.positional))
    ctx.sin_pos = SinEmbedding(positions.view({batch, 1, 1}), spec.dim, spec.max_period, dtype);
  return ctx;
}

void Transformer::SetCrossSource(KvState& state, const at::Tensor& src, const at::Tensor& rows) const {
  const int64_t batch = src.size(0), len = src.size(1);
  const int64_t heads = spec.num_heads, dh = spec.head_dim();
  // A state made otherwise than by NewState (no per-layer entries yet) gets them here.
  if (state.cross_keys.size() < layers.size()) state.cross_keys.resize(layers.size());
  if (state.cross_values.size() < layers.size()) state.cross_values.resize(layers.size());
  // The state rows this call sets.
  std::vector<int64_t> targets;
  if (rows.defined()) {
    const at::Tensor r = rows.to(at::kCPU, at::kLong).contiguous();
    targets.assign(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
  } else {
    for (int64_t b = 0; b < batch; ++b) targets.push_back(b);
  }
  // Each row's source matched (bitwise) to a known one or registered as new; every distinct source is
  // projected alone ([1, S, D]), so rows with equal sources get bitwise-equal keys and values.
  std::vector<int64_t> ids;
  std::map<int64_t, int64_t> first_row;  // id -> first row of src holding it
  for (int64_t b = 0; b < batch; ++b) {
    const at::Tensor row = src[b];
    int64_t id = -1;
    for (const auto& [known, tensor] : state.cross_sources) {
      if (tensor.sizes() == row.sizes() && tensor.scalar_type() == row.scalar_type() && tensor.equal(row)) {
        id = known;
        break;
      }
    }
    if (id < 0) {
      id = state.next_cross_source++;
      state.cross_sources[id] = row.clone();
    }
    ids.push_back(id);
    first_row.emplace(id, b);
  }
  // A state row whose keys and values already hold a source's projection (from an earlier call: a stream that
  // left, or another one speaking with the same voice) is copied instead of projected again; the projection
  // is a function of the source alone, so the bits are the same. For a voice that comes back this saves the
  // whole prefill (tts-1.6b: 16 layers x [625 x 2048] x [2048 x 4096], ~1.1 s on 2 cores).
  std::map<int64_t, int64_t> data_row;  // id -> a state row holding its keys and values
  for (size_t r = 0; r < state.cross_row_source.size(); ++r) {
    const int64_t id = state.cross_row_source[r];
    if (id >= 0) data_row.emplace(id, static_cast<int64_t>(r));
  }
  // A source no row holds yet is projected in blocks of spec.cross_block_rows entries, and a block whose
  // entries are bitwise a held (or earlier new) source's same block is copied from there instead: a block's
  // projection is a function of its entries alone (the same product, same shape), so the bits are those a
  // projection gives. TTS voices share most of their memory: each fills one of the speaker slots, the empty
  // ones hold the same learnt padding (plus the same positional embedding), so a tts-1.6b voice new to the
  // state projects 1 block of its 5 when another single-voice source is held.
  const int64_t block = std::max<int64_t>(1, spec.cross_block_rows);
  const int64_t n_blocks = (len + block - 1) / block;
  std::map<int64_t, std::vector<int64_t>> block_from;  // new id -> per block, the id to copy it from, or -1
  for (const auto& [id, b] : first_row) {
    if (data_row.count(id) != 0) continue;
    std::vector<int64_t>& from = block_from[id];
    from.assign(static_cast<size_t>(n_blocks), -1);
    const at::Tensor& mine = state.cross_sources.at(id);
    auto same_block = [&](int64_t other, int64_t s0, int64_t n) {
      const auto it = state.cross_sources.find(other);
      return it != state.cross_sources.end() && it->second.sizes() == mine.sizes() &&
             it->second.scalar_type() == mine.scalar_type() &&
             it->second.narrow(0, s0, n).equal(mine.narrow(0, s0, n));
    };
    for (int64_t k = 0; k < n_blocks; ++k) {
      const int64_t s0 = k * block, n = std::min(block, len - s0);
      for (const auto& [other, row] : data_row) {
        if (same_block(other, s0, n)) {
          from[static_cast<size_t>(k)] = other;
          break;
        }
      }
      for (const auto& [other, unused] : block_from) {
        if (from[static_cast<size_t>(k)] >= 0 || other >= id) break;
        if (same_block(other, s0, n)) from[static_cast<size_t>(k)] = other;
      }
    }
  }
  const int64_t state_rows = rows.defined() ? static_cast<int64_t>(state.cross_row_source.size()) : batch;
  state.cross_row_source.resize(static_cast<size_t>(std::max<int64_t>(state_rows, 0)), -1);
  for (size_t i = 0; i < targets.size(); ++i) {
    if (targets[i] >= 0 && targets[i] < static_cast<int64_t>(state.cross_row_source.size())) {
      state.cross_row_source[static_cast<size_t>(targets[i])] = ids[i];
    }
  }
  // Forget sources no row holds any more.
  for (auto it = state.cross_sources.begin(); it != state.cross_sources.end();) {
    const bool held = std::find(state.cross_row_source.begin(), state.cross_row_source.end(), it->first) !=
                      state.cross_row_source.end();
    it = held ? std::next(it) : state.cross_sources.erase(it);
  }
  bool counted = false;
  for (size_t l = 0; l < layers.size(); ++l) {
    const TransformerLayer& layer = layers[l];
    if (!layer.cross) continue;
    if (!counted) {
      for (const auto& [id, b] : first_row)
        state.cross_projections += data_row.count(id) == 0 || !state.cross_keys[l].defined();
      counted = true;
    }
    std::map<int64_t, std::pair<at::Tensor, at::Tensor>> projected;  // id -> (k, v) [1, H, S, Dh]
    for (const auto& [id, b] : first_row) {
      const auto held = data_row.find(id);
      if (held != data_row.end() && state.cross_keys[l].defined()) {
        projected[id] = {state.cross_keys[l].narrow(0, held->second, 1),
                         state.cross_values[l].narrow(0, held->second, 1)};
        continue;
      }
      std::vector<at::Tensor> kb, vb;  // per block [1, H, n, Dh]
      const std::vector<int64_t>& from = block_from.at(id);
      for (int64_t k = 0; k < n_blocks; ++k) {
        const int64_t s0 = k * block, n = std::min(block, len - s0);
        const int64_t other = from[static_cast<size_t>(k)];
        const auto other_row = data_row.find(other);
        if (other >= 0 && other_row != data_row.end() && state.cross_keys[l].defined()) {
          kb.push_back(state.cross_keys[l].narrow(0, other_row->second, 1).narrow(2, s0, n));
          vb.push_back(state.cross_values[l].narrow(0, other_row->second, 1).narrow(2, s0, n));
          ++state.cross_blocks_copied;
          continue;
        }
        if (other >= 0 && projected.count(other) != 0) {
          kb.push_back(projected[other].first.narrow(2, s0, n));
          vb.push_back(projected[other].second.narrow(2, s0, n));
          ++state.cross_blocks_copied;
          continue;
        }
        at::Tensor kv = layer.cross_kv.Forward(src.narrow(0, b, 1).narrow(1, s0, n))
                            .view({1, n, 2, heads, dh})
                            .permute({2, 0, 3, 1, 4});
        if (spec.cross_memory_dtype.has_value()) kv = kv.to(*spec.cross_memory_dtype);
        kb.push_back(kv.select(0, 0));
        vb.push_back(kv.select(0, 1));
        ++state.cross_blocks_projected;
      }
      // cat copies: blocks read from the state's rows are read before any row is written below.
      projected[id] = {at::cat(kb, 2), at::cat(vb, 2)};
    }
    if (!rows.defined() || !state.cross_keys[l].defined()) {
      std::vector<at::Tensor> ks, vs;
      for (int64_t id : ids) {
        ks.push_back(projected[id].first);
        vs.push_back(projected[id].second);
      }
      // cat copies, so rows taken from the old tensors are read before it is replaced.
      state.cross_keys[l] = PlaceOnHugePages(at::cat(ks, 0), /*own_mapping=*/true);
      state.cross_values[l] = PlaceOnHugePages(at::cat(vs, 0), /*own_mapping=*/true);
      continue;
    }
    // Only the target rows that do not already hold their source's keys and values are written.
    std::vector<int64_t> write_rows;
    std::vector<at::Tensor> ks, vs;
    for (size_t i = 0; i < ids.size(); ++i) {
      const auto held = data_row.find(ids[i]);
      if (held != data_row.end() && held->second == targets[i]) continue;
      write_rows.push_back(targets[i]);
      ks.push_back(projected[ids[i]].first);
      vs.push_back(projected[ids[i]].second);
    }
    if (write_rows.empty()) continue;
    const at::Tensor dst = at::tensor(write_rows, at::TensorOptions().dtype(at::kLong)).to(rows.device());
    const at::Tensor k = at::cat(ks, 0).contiguous(), v = at::cat(vs, 0).contiguous();
    state.cross_keys[l].index_copy_(0, dst, k);
    state.cross_values[l].index_copy_(0, dst, v);
  }
}

namespace {
// Stores one step's new key or value (`entry` [R, H, 1, Dh], R = the step's rows) of the active rows into the
// full cache ([B, H, capacity, Dh]) at their ring slots: only the new positions are written.
void StoreActive(const at::Tensor& cache, const at::Tensor& entry, const at::Tensor& ring_slot,
                 const StepRows& rows) {
  c10::List<std::optional<at::Tensor>> at_rows;
  at_rows.push_back(rows.active_slots);            // [A]
  at_rows.push_back(rows.SelectActive(ring_slot));  // [A]
  // On the [B, capacity, H, Dh] view the two indices pick (slot, ring entry) pairs: values [A, H, Dh].
  cache.transpose(1, 2).index_put_(at_rows, rows.SelectActive(entry).squeeze(2));
}

// Whether StoreOnCpu serves this cache and step entry: both on the CPU, an f32 entry [R, H, 1, Dh] (R <= B),
// an f32 or bf16 cache [B, H, capacity, Dh] with unit stride over Dh, int64 ring slots [R].
bool StoresOnCpu(const at::Tensor& cache, const at::Tensor& entry, const at::Tensor& ring_slot) {
  return cache.is_cpu() && entry.is_cpu() && ring_slot.defined() && ring_slot.is_cpu() && entry.dim() == 4 &&
         cache.dim() == 4 && entry.size(0) <= cache.size(0) && ring_slot.scalar_type() == at::kLong &&
         ring_slot.dim() == 1 && entry.scalar_type() == at::kFloat &&
         (cache.scalar_type() == at::kFloat || cache.scalar_type() == at::kBFloat16) && entry.size(2) == 1 &&
         entry.size(0) == ring_slot.size(0) && entry.size(1) == cache.size(1) &&
         entry.size(3) == cache.size(3) && cache.stride(3) == 1;
}

// scatter_ / StoreActive's writes as plain loops: entry row r (of the step's rows, or of every slot when
// `rows` is null) to the cache's slot at ring entry ring_slot[r], rounded to the cache's dtype as Tensor::to
// rounds (bf16: to nearest even). The same bits; converting an entry and scatter_-ing it into a bf16 cache
// took 90-150 us a call against 4-5 us into f32 (two per layer and step: what had kept an earlier bf16 cache
// slower than f32).
void StoreOnCpu(const at::Tensor& cache, const at::Tensor& entry, const at::Tensor& ring_slot,
                const StepRows* rows) {
  const at::Tensor slots = ring_slot.contiguous();
  const int64_t* ring = slots.data_ptr<int64_t>();
  const float* src = entry.data_ptr<float>();
  const int64_t heads = entry.size(1), dh = entry.size(3);
  const bool narrow = cache.scalar_type() == at::kBFloat16;
  char* base = static_cast<char*>(cache.data_ptr());
  const int64_t elem = static_cast<int64_t>(cache.element_size());
  for (int64_t r = 0; r < entry.size(0); ++r) {
    const auto row = static_cast<size_t>(r);
    if (rows != nullptr && !rows->is_active[row]) continue;
    const int64_t slot = rows != nullptr ? rows->slots[row] : r;
    for (int64_t h = 0; h < heads; ++h) {
      const float* from = src + r * entry.stride(0) + h * entry.stride(1);
      char* to = base + (slot * cache.stride(0) + h * cache.stride(1) + ring[r] * cache.stride(2)) * elem;
      if (narrow) {
        auto* out = reinterpret_cast<c10::BFloat16*>(to);
        for (int64_t i = 0; i < dh; ++i) out[i] = c10::BFloat16(from[i * entry.stride(3)]);
      } else {
        auto* out = reinterpret_cast<float*>(to);
        for (int64_t i = 0; i < dh; ++i) out[i] = from[i * entry.stride(3)];
      }
    }
  }
}
}  // namespace

namespace {
// The state row whose cross-attention keys and values every row of this step may read, or -1. All of the
// step's rows must hold that row's source; when compacted, all its active rows (a padding row's output is
// discarded, so it may read any source).
int64_t SharedCrossRow(const KvState& state, int64_t batch, const StepRows* rows) {
  const std::vector<int64_t>& source = state.cross_row_source;
  int64_t shared = -1, id = -1;
  auto same = [&](int64_t row) {
    if (row < 0 || row >= static_cast<int64_t>(source.size())) return false;
    const int64_t s = source[static_cast<size_t>(row)];
    if (s < 0) return false;
    if (shared < 0) {
      shared = row;
      id = s;
    }
    return s == id;
  };
  if (rows == nullptr) {
    if (static_cast<int64_t>(source.size()) != batch) return -1;
    for (int64_t b = 0; b < batch; ++b) {
      if (!same(b)) return -1;
    }
    return shared;
  }
  for (size_t i = 0; i < rows->slots.size(); ++i) {
    if (rows->is_active[i] && !same(rows->slots[i])) return -1;
  }
  return shared;
}
}  // namespace

at::Tensor Transformer::Step(KvState& state, const StepContext& ctx, at::Tensor x, const StepRows* rows) const {
  if (rows == nullptr && use_raw_step && ServesRawStep(state, ctx, x)) return RawStep(state, ctx, x);
  const int64_t batch = x.size(0);
  const int64_t shared_cross = SharedCrossRow(state, batch, rows);
  const int64_t heads = spec.num_heads, dh = spec.head_dim(), dim = spec.dim;
  const bool rope = HasRope(spec.positional);
  const bool interleave = spec.positional != PositionalEmbedding::kRopeConcat;
  const auto input_dtype = x.scalar_type();
  if (HasSin(spec.positional)) x = x + spec.positional_scale * ctx.sin_pos;
  for (size_t l = 0; l < layers.size(); ++l) {
    const TransformerLayer& layer = layers[l];
    const size_t w = layer.in_proj.size() == 1 ? 0 : static_cast<size_t>(ctx.weight_set);
    // Self-attention block.
    at::Tensor h = layer.norm1.Forward(x);
    at::Tensor qkv = layer.in_proj[w].Forward(h).view({batch, 1, 3, heads, dh});
    at::Tensor q, k;
    if (rope) {
      at::Tensor qk = ApplyRope(qkv.narrow(2, 0, 2), ctx, interleave);
      q = qk.select(2, 0).transpose(1, 2);
      k = qk.select(2, 1).transpose(1, 2);
    } else {
      q = qkv.select(2, 0).transpose(1, 2);
      k = qkv.select(2, 1).transpose(1, 2);
    }
    at::Tensor v = qkv.select(2, 2).transpose(1, 2);
    at::Tensor keys = state.keys[l], values = state.values[l];
    const int64_t kv_len = ctx.kv_len > 0 ? ctx.kv_len : keys.size(2);
    const bool store_on_cpu = ctx.write_slot < 0 && StoresOnCpu(keys, k, ctx.ring_slot);
    // A cache stored narrower (kv_memory_dtype) takes entries of its dtype, except through StoreOnCpu.
    if (!store_on_cpu && keys.scalar_type() != k.scalar_type()) {
      k = k.to(keys.scalar_type());
      v = v.to(values.scalar_type());
    }
    if (ctx.write_slot >= 0) {
      keys.narrow(2, ctx.write_slot, 1).copy_(k);
      values.narrow(2, ctx.write_slot, 1).copy_(v);
      keys = keys.narrow(2, 0, kv_len);
      values = values.narrow(2, 0, kv_len);
    } else if (rows == nullptr) {
      if (store_on_cpu) {
        StoreOnCpu(keys, k, ctx.ring_slot, nullptr);
        StoreOnCpu(values, v, ctx.ring_slot, nullptr);
      } else {
        keys.scatter_(2, ctx.write_index, k);
        values.scatter_(2, ctx.write_index, v);
      }
      keys = keys.narrow(2, 0, kv_len);
      values = values.narrow(2, 0, kv_len);
    } else {
      // Active rows store their new entries, then the step reads its rows (a padding row does not see its
      // own new entry: its output is discarded).
      if (store_on_cpu) {
        StoreOnCpu(keys, k, ctx.ring_slot, rows);
        StoreOnCpu(values, v, ctx.ring_slot, rows);
      } else {
        StoreActive(keys, k, ctx.ring_slot, *rows);
        StoreActive(values, v, ctx.ring_slot, *rows);
      }
      keys = rows->Gather(keys.narrow(2, 0, kv_len));
      values = rows->Gather(values.narrow(2, 0, kv_len));
    }
    std::optional<at::Tensor> mask;
    if (ctx.attn_mask.defined()) mask = ctx.attn_mask;
    at::Tensor attn = kernels::Attention(q, keys, values, mask);
    attn = attn.transpose(1, 2).reshape({batch, 1, dim});
    at::Tensor update = layer.out_proj[w].Forward(attn);
    if (layer.layer_scale_1.defined()) update = layer.layer_scale_1 * update;
    x = x.to(update.scalar_type()) + update;
    // Cross-attention block (no positions, no mask: every source entry is attended to).
    if (layer.cross) {
      at::Tensor hc = layer.norm_cross.Forward(x);
      at::Tensor qc = layer.cross_q.Forward(hc).view({batch, 1, heads, dh}).transpose(1, 2);
      at::Tensor ck, cv;
      if (shared_cross >= 0) {  // one row's keys and values, read for every row (bitwise the same values)
        ck = state.cross_keys[l].narrow(0, shared_cross, 1).expand({batch, -1, -1, -1});
        cv = state.cross_values[l].narrow(0, shared_cross, 1).expand({batch, -1, -1, -1});
      } else {
        ck = rows ? rows->Gather(state.cross_keys[l]) : state.cross_keys[l];
        cv = rows ? rows->Gather(state.cross_values[l]) : state.cross_values[l];
      }
      at::Tensor ac = kernels::Attention(qc, ck, cv, std::nullopt);
      ac = ac.transpose(1, 2).reshape({batch, 1, dim});
      at::Tensor uc = layer.cross_out.Forward(ac);
      if (layer.layer_scale_cross.defined()) uc = layer.layer_scale_cross * uc;
      x = x + uc;
    }
    // Feed-forward block.
    h = layer.norm2.Forward(x);
    update = layer.ffn[layer.ffn.size() == 1 ? 0 : static_cast<size_t>(ctx.weight_set)].Forward(h);
    if (layer.layer_scale_2.defined()) update = layer.layer_scale_2 * update;
    x = x.to(update.scalar_type()) + update;
  }
  return x.to(input_dtype);
}

}  // namespace monologue::lm
