// Rows that hold the same cross-attention source (streams speaking with one voice) read one row's keys and
// values for all of them (lm::Transformer::Step). That must give bit for bit what reading each row's own copy
// gives: the tiny TTS fixture model runs three rows with one voice (the shared read) and again with the third
// row on another voice (per-row reads), and the first two rows' logits and tokens must be equal at every
// step, in full-batch steps and in compacted ones. Also: a row given a new source stops sharing, sources no
// row holds are forgotten, and a source some row already holds is copied from it rather than projected again
// (a voice coming back), with the bits a projection gives; and a new source copies the blocks of entries it
// shares with another source (the padded speaker slots of TTS voices) instead of projecting them.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/lm/lm_gen.h"
#include "core/lm/lm_transformer.h"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {
using testing_lm::Golden;
using testing_lm::LoadFixtureModel;
using testing_lm::OpenGolden;

using testing_lm::Greedy;

// The fixture's conditions for its first row (sum) and its two speakers' cross sources.
struct Sources {
  at::Tensor sum;     // [1, 1, D]
  at::Tensor cross0;  // [1, S, D]
  at::Tensor cross1;
};

Sources FixtureSources(const LmModel& model) {
  auto golden = OpenGolden("tts", "greedy");
  EXPECT_NE(golden, nullptr);
  const at::Tensor speaker = Golden(*golden, "speaker");
  const at::Tensor mask = Golden(*golden, "speaker_mask").to(at::kBool);
  std::map<std::string, LmCondition> conds;
  conds["cfg"] = *model.ConditionFromText("cfg", {"2.0", "2.0"});
  conds["control"] = *model.ConditionFromText("control", {"ok", "ok"});
  auto speakers = model.ConditionFromTensor("speaker_wavs", speaker, mask);
  EXPECT_TRUE(speakers.ok()) << speakers.status();
  conds["speaker_wavs"] = *speakers;
  auto fused = model.Fuse(conds);
  EXPECT_TRUE(fused.ok()) << fused.status();
  Sources s;
  s.sum = fused->sum.narrow(0, 0, 1);
  s.cross0 = fused->cross.narrow(0, 0, 1);
  s.cross1 = fused->cross.narrow(0, 1, 1);
  EXPECT_FALSE(s.cross0.equal(s.cross1)) << "the fixture's two speakers should differ";
  return s;
}

struct Generated {
  std::vector<at::Tensor> tokens, text_logits, audio_logits;  // per step, rows 0 and 1
};

Generated Generate(std::shared_ptr<const LmModel> model, const Sources& s, bool third_row_other_voice,
                   bool compact) {
  LmFusedConditions conds;
  conds.sum = s.sum.expand({3, -1, -1}).contiguous();
  conds.cross = at::cat({s.cross0, s.cross0, third_row_other_voice ? s.cross1 : s.cross0}, 0);
  LmGenOptions options = Greedy();
  options.keep_audio_logits = true;
  auto gen = LmGen::Create(model, 3, options, conds);
  EXPECT_TRUE(gen.ok()) << gen.status();
  Generated run;
  if (!gen.ok()) return run;
  at::manual_seed(7);
  const int64_t streams = (*gen)->num_input_streams();
  const std::vector<int64_t> slots = {0, 1, 2};
  for (int step = 0; step < 12; ++step) {
    const at::Tensor in = at::randint(0, 8, {3, streams}, at::kLong);
    auto r = compact ? (*gen)->StepSlots(slots, in) : (*gen)->Step(in);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return run;
    run.tokens.push_back(r->tokens.narrow(0, 0, 2).clone());
    run.text_logits.push_back(r->text_logits.narrow(0, 0, 2).clone());
    run.audio_logits.push_back(r->audio_logits.narrow(0, 0, 2).clone());
  }
  return run;
}

TEST(LmCrossShareTest, SharedReadEqualsPerRowReadBitForBit) {
  at::set_num_threads(1);
  auto model = LoadFixtureModel("tts");
  ASSERT_NE(model, nullptr);
  const Sources s = FixtureSources(*model);
  for (bool compact : {false, true}) {
    const Generated shared = Generate(model, s, /*third_row_other_voice=*/false, compact);
    const Generated per_row = Generate(model, s, /*third_row_other_voice=*/true, compact);
    ASSERT_EQ(shared.tokens.size(), 12u);
    ASSERT_EQ(per_row.tokens.size(), 12u);
    for (size_t t = 0; t < shared.tokens.size(); ++t) {
      EXPECT_TRUE(shared.text_logits[t].equal(per_row.text_logits[t]))
          << "step " << t << " compact " << compact;
      EXPECT_TRUE(shared.audio_logits[t].equal(per_row.audio_logits[t]))
          << "step " << t << " compact " << compact;
      EXPECT_TRUE(shared.tokens[t].equal(per_row.tokens[t])) << "step " << t << " compact " << compact;
    }
  }
}

TEST(LmCrossShareTest, RowsTrackTheirSourcesAndUnheldSourcesAreForgotten) {
  // A bare transformer with no layers: only the bookkeeping runs.
  lm::Transformer t;
  t.spec.dim = 4;
  t.spec.num_heads = 1;
  lm::KvState state;
  const at::Tensor a = at::randn({1, 3, 4}), b = at::randn({1, 3, 4});
  t.SetCrossSource(state, at::cat({a, a, a}, 0));
  ASSERT_EQ(state.cross_row_source.size(), 3u);
  EXPECT_EQ(state.cross_row_source[0], state.cross_row_source[2]);
  EXPECT_EQ(state.cross_sources.size(), 1u);
  // Row 1 switches to another voice: rows 0 and 2 still share, row 1 does not.
  t.SetCrossSource(state, b, at::tensor({1}, at::kLong));
  EXPECT_EQ(state.cross_row_source[0], state.cross_row_source[2]);
  EXPECT_NE(state.cross_row_source[0], state.cross_row_source[1]);
  EXPECT_EQ(state.cross_sources.size(), 2u);
  // Rows 0 and 2 take b too (an equal tensor, not the same object): all three share again, a is forgotten.
  t.SetCrossSource(state, at::cat({b.clone(), b.clone()}, 0), at::tensor({0, 2}, at::kLong));
  EXPECT_EQ(state.cross_row_source[0], state.cross_row_source[1]);
  EXPECT_EQ(state.cross_row_source[1], state.cross_row_source[2]);
  EXPECT_EQ(state.cross_sources.size(), 1u);
}

// Sessions come and go in slots; a voice that a slot's keys and values still hold is not projected again.
// Whatever the history, every row's keys and values must be bitwise those of a fresh state given the same
// sources at once.
TEST(LmCrossShareTest, AHeldSourceIsCopiedNotProjectedAgainWithTheSameBits) {
  auto model = LoadFixtureModel("tts");
  ASSERT_NE(model, nullptr);
  const Sources s = FixtureSources(*model);
  const at::Tensor a = s.cross0, b = s.cross1;
  const at::Tensor c = a + 0.5;  // a third voice
  LmTemporalState state = model->NewTemporalState(3);
  model->SetCrossSource(state, at::cat({a, b, a}, 0));
  EXPECT_EQ(state.kv.cross_projections, 2) << "a and b, each once";
  auto expect_as_fresh = [&](const at::Tensor& sources, const char* what) {
    LmTemporalState fresh = model->NewTemporalState(3);
    model->SetCrossSource(fresh, sources);
    for (size_t l = 0; l < state.kv.cross_keys.size(); ++l) {
      if (!state.kv.cross_keys[l].defined()) continue;
      EXPECT_TRUE(state.kv.cross_keys[l].equal(fresh.kv.cross_keys[l])) << what << ", layer " << l;
      EXPECT_TRUE(state.kv.cross_values[l].equal(fresh.kv.cross_values[l])) << what << ", layer " << l;
    }
  };
  // Row 1 leaves and a stream with voice a joins it: copied from row 0.
  model->SetCrossSource(state, a, at::tensor({1}, at::kLong));
  EXPECT_EQ(state.kv.cross_projections, 2);
  expect_as_fresh(at::cat({a, a, a}, 0), "row 1 given a");
  // Row 2 gets a new voice: projected.
  model->SetCrossSource(state, c, at::tensor({2}, at::kLong));
  EXPECT_EQ(state.kv.cross_projections, 3);
  expect_as_fresh(at::cat({a, a, c}, 0), "row 2 given c");
  // Row 0 rejoins with a, which it still holds: nothing to do. Then rows 1 and 2 swap voices a and c in one
  // call: each copies from the other, both read before either is overwritten.
  model->SetCrossSource(state, a, at::tensor({0}, at::kLong));
  model->SetCrossSource(state, at::cat({c, a}, 0), at::tensor({1, 2}, at::kLong));
  EXPECT_EQ(state.kv.cross_projections, 3);
  expect_as_fresh(at::cat({a, c, a}, 0), "rows 1 and 2 swapped");
  // b was forgotten when no row held it any more: it is projected again.
  model->SetCrossSource(state, b, at::tensor({0}, at::kLong));
  EXPECT_EQ(state.kv.cross_projections, 4);
  expect_as_fresh(at::cat({b, c, a}, 0), "row 0 given b again");
  // A whole-batch call reuses what the rows hold too.
  model->SetCrossSource(state, at::cat({a, b, c}, 0));
  EXPECT_EQ(state.kv.cross_projections, 4);
  expect_as_fresh(at::cat({a, b, c}, 0), "whole batch");
}

// A source new to the state is projected in blocks (spec.cross_block_rows entries), and a block whose entries
// equal a held source's same block (or that of a source new in the same call) is copied from it: TTS voices
// share the padded speaker slots that fill most of their memory. A bare transformer with two cross-attention
// layers, blocks of 4 entries over 14 (4, 4, 4, 2), f32 and bf16 memory.
TEST(LmCrossShareTest, ANewSourceCopiesTheBlocksItSharesWithAnotherSource) {
  for (bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16 memory" : "f32 memory");
    at::manual_seed(5);
    const int64_t dim = 8, len = 14;
    lm::Transformer t;
    t.spec.dim = dim;
    t.spec.num_heads = 2;
    t.spec.cross_block_rows = 4;
    if (bf16) t.spec.cross_memory_dtype = at::kBFloat16;
    for (int l = 0; l < 2; ++l) {
      lm::TransformerLayer layer;
      layer.cross = true;
      layer.cross_kv.weight = at::randn({2 * dim, dim});
      t.layers.push_back(layer);
    }
    const at::Tensor a = at::randn({1, len, dim});
    at::Tensor c = a.clone();  // a's entries but for its first block
    c.narrow(1, 1, 2).normal_();
    at::Tensor d = a.clone();  // a's entries but for its last (short) block
    d.narrow(1, 13, 1).normal_();
    // Keys and values as one projection of the whole source gives them (the same up to float rounding: a
    // block is its own product) for row `row` of `state`.
    auto expect_projection_of = [&](const lm::KvState& state, int64_t row, const at::Tensor& src,
                                    const std::string& what) {
      for (size_t l = 0; l < t.layers.size(); ++l) {
        at::Tensor kv = t.layers[l].cross_kv.Forward(src).view({1, len, 2, 2, dim / 2}).permute({2, 0, 3, 1, 4});
        if (bf16) kv = kv.to(at::kBFloat16);
        const double tol = bf16 ? 1e-2 : 1e-5;
        EXPECT_TRUE(at::allclose(state.cross_keys[l].narrow(0, row, 1).to(at::kFloat), kv[0].to(at::kFloat), tol,
                                 tol))
            << what << ", layer " << l;
        EXPECT_TRUE(at::allclose(state.cross_values[l].narrow(0, row, 1).to(at::kFloat), kv[1].to(at::kFloat),
                                 tol, tol))
            << what << ", layer " << l;
      }
    };
    auto expect_same_bits = [&](const lm::KvState& x, const lm::KvState& y, const std::string& what) {
      for (size_t l = 0; l < t.layers.size(); ++l) {
        EXPECT_TRUE(x.cross_keys[l].equal(y.cross_keys[l])) << what << ", layer " << l;
        EXPECT_TRUE(x.cross_values[l].equal(y.cross_values[l])) << what << ", layer " << l;
      }
    };
    lm::KvState state;
    t.SetCrossSource(state, at::cat({a, a}, 0));
    EXPECT_EQ(state.cross_blocks_projected, 4 * 2) << "a's 4 blocks in 2 layers";
    EXPECT_EQ(state.cross_blocks_copied, 0);
    // Row 1 takes c: only its first block is projected, the other three are row 0's.
    t.SetCrossSource(state, c, at::tensor({1}, at::kLong));
    EXPECT_EQ(state.cross_blocks_projected, 4 * 2 + 1 * 2);
    EXPECT_EQ(state.cross_blocks_copied, 3 * 2);
    expect_projection_of(state, 0, a, "row 0 (a)");
    expect_projection_of(state, 1, c, "row 1 (c)");
    lm::KvState fresh;  // both at once: c (new) copies from a (new, projected first in the same call)
    t.SetCrossSource(fresh, at::cat({a, c}, 0));
    EXPECT_EQ(fresh.cross_blocks_projected, (4 + 1) * 2);
    EXPECT_EQ(fresh.cross_blocks_copied, 3 * 2);
    expect_same_bits(state, fresh, "a then c against a and c at once");
    // Row 0 trades a for d: d's first three blocks are a's, read from row 0 before d overwrites it; its short
    // last block is new.
    t.SetCrossSource(state, d, at::tensor({0}, at::kLong));
    EXPECT_EQ(state.cross_blocks_projected, (4 + 1) * 2 + 1 * 2) << "d's block 3";
    EXPECT_EQ(state.cross_blocks_copied, (3 + 3) * 2) << "d's blocks 0, 1 and 2, from row 0's a";
    expect_projection_of(state, 0, d, "row 0 (d)");
    lm::KvState fresh_dc;
    t.SetCrossSource(fresh_dc, at::cat({d, c}, 0));
    expect_same_bits(state, fresh_dc, "d and c");
  }
}

}  // namespace
}  // namespace monologue
