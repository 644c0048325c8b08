// The attention window of a temporal step (lm::Transformer::TemporalContext): in f32 on the CPU, while no row
// has wrapped around the KV ring, a step reads only the ring entries up to the newest row's position. This is
// exact only if every entry left out is masked for every row; these tests check that invariant against the
// full-capacity mask for mixed positions (rows just reset, rows far ahead, paused rows), and that the window
// is the whole ring once a row wraps, in bf16, and for the depformer's steps.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "core/lm/lm_transformer.h"

namespace monologue {
namespace {

lm::Transformer Ring(int64_t capacity, int64_t context) {
  lm::Transformer t;
  t.spec.dim = 8;
  t.spec.num_heads = 2;
  t.spec.capacity = capacity;
  t.spec.context = context;
  t.spec.positional = lm::PositionalEmbedding::kNone;
  return t;
}

at::Tensor Positions(const std::vector<int64_t>& p) { return at::tensor(p, at::kLong); }

// The mask over the whole ring, as a bf16 step (never narrowed) builds it.
at::Tensor FullMask(const lm::Transformer& t, const at::Tensor& positions) {
  lm::StepContext full = t.TemporalContext(positions, at::kBFloat16);
  EXPECT_EQ(full.kv_len, t.spec.capacity);
  return full.attn_mask;
}

TEST(LmAttentionWindowTest, LeavesOutOnlyEntriesNoRowMaySee) {
  const lm::Transformer t = Ring(/*capacity=*/16, /*context=*/16);
  for (const std::vector<int64_t>& p :
       std::vector<std::vector<int64_t>>{{0}, {5}, {0, 3, 9}, {15, 2}, {7, 7, 7}, {0, 0}}) {
    const at::Tensor positions = Positions(p);
    const lm::StepContext ctx = t.TemporalContext(positions, at::kFloat);
    const int64_t newest = positions.max().item<int64_t>();
    ASSERT_EQ(ctx.kv_len, newest + 1) << positions;
    ASSERT_EQ(ctx.attn_mask.size(-1), ctx.kv_len);
    const at::Tensor full = FullMask(t, positions);
    // The window is the full mask's prefix, and nothing past it is visible to any row.
    EXPECT_TRUE(ctx.attn_mask.equal(full.narrow(-1, 0, ctx.kv_len))) << positions;
    EXPECT_FALSE(full.narrow(-1, ctx.kv_len, t.spec.capacity - ctx.kv_len).any().item<bool>()) << positions;
    // Every row still sees its own newest entry.
    for (int64_t b = 0; b < positions.size(0); ++b) {
      EXPECT_TRUE(ctx.attn_mask[b][0][0][p[static_cast<size_t>(b)]].item<bool>());
    }
  }
}

TEST(LmAttentionWindowTest, WholeRingOnceARowWraps) {
  const lm::Transformer t = Ring(/*capacity=*/16, /*context=*/16);
  for (const std::vector<int64_t>& p : std::vector<std::vector<int64_t>>{{16}, {3, 40}, {100, 100}}) {
    const at::Tensor positions = Positions(p);
    const lm::StepContext ctx = t.TemporalContext(positions, at::kFloat);
    EXPECT_EQ(ctx.kv_len, 16) << positions;
    EXPECT_TRUE(ctx.attn_mask.equal(FullMask(t, positions))) << positions;
  }
}

TEST(LmAttentionWindowTest, ShorterContextThanRingKeepsItsLimit) {
  // A context shorter than the ring: the window may hold entries the context excludes; the mask still does.
  const lm::Transformer t = Ring(/*capacity=*/16, /*context=*/4);
  const at::Tensor positions = Positions({9, 2});
  const lm::StepContext ctx = t.TemporalContext(positions, at::kFloat);
  EXPECT_EQ(ctx.kv_len, 10);
  EXPECT_TRUE(ctx.attn_mask.equal(FullMask(t, positions).narrow(-1, 0, 10)));
  EXPECT_EQ(ctx.attn_mask[0].sum().item<int64_t>(), 4);  // positions 6..9
}

TEST(LmAttentionWindowTest, DepformerStepReadsItsWrittenEntriesInF32Only) {
  lm::Transformer t = Ring(/*capacity=*/8, /*context=*/8);
  for (int64_t k = 0; k < 8; ++k) {
    const lm::StepContext f32 = t.DepthContext(k, /*batch=*/3, 0, at::kFloat, at::kCPU);
    EXPECT_EQ(f32.kv_len, k + 1);
    EXPECT_FALSE(f32.attn_mask.defined());  // every one of the k + 1 entries counts
    const lm::StepContext bf16 = t.DepthContext(k, /*batch=*/3, 0, at::kBFloat16, at::kCPU);
    EXPECT_EQ(bf16.kv_len, 0);  // the whole ring, masked, as the reference computes it
    ASSERT_TRUE(bf16.attn_mask.defined());
    EXPECT_EQ(bf16.attn_mask.size(-1), 8);
    EXPECT_EQ(bf16.attn_mask[0].sum().item<int64_t>(), k + 1);
  }
}

}  // namespace
}  // namespace monologue
