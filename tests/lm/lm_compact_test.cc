// Compacted steps (LmGen::StepSlots): a batch-B generator that computes only its active slots (gathered into
// the smallest bucket that holds them) gives what the full-batch step with an exec mask gives, bit for bit,
// and a lone active slot of B gives exactly what a batch-1 generator gives. Slots join, pause, leave and
// reset at different frames; per-slot seeded sampling draws the same tokens; CFG rows follow their slots.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "core/lm/lm_gen.h"
#include "core/util/step_rows.h"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {

class SingleThread : public ::testing::Environment {
 public:
  void SetUp() override { at::set_num_threads(1); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new SingleThread);

using testing_lm::Greedy;

// exec[t][slot] / reset[t][slot] over `steps` steps of a batch.
struct Schedule {
  std::vector<std::vector<uint8_t>> exec, reset;
  int64_t batch() const { return static_cast<int64_t>(exec[0].size()); }
  int64_t steps() const { return static_cast<int64_t>(exec.size()); }
  std::vector<int64_t> Active(int64_t t) const {
    std::vector<int64_t> out;
    for (int64_t b = 0; b < batch(); ++b) {
      if (exec[static_cast<size_t>(t)][static_cast<size_t>(b)]) out.push_back(b);
    }
    return out;
  }
};

Schedule Empty(int64_t steps, int64_t batch) {
  Schedule s;
  s.exec.assign(static_cast<size_t>(steps), std::vector<uint8_t>(static_cast<size_t>(batch), 0));
  s.reset = s.exec;
  return s;
}

// What one slot produced at one step.
struct Out {
  at::Tensor tokens, text_logits, transformer_out;
};
using Outputs = std::vector<std::map<int64_t, Out>>;  // per step: slot -> outputs

at::Tensor BoolMask(const std::vector<uint8_t>& v) {
  return at::tensor(std::vector<int64_t>(v.begin(), v.end()), at::kLong).to(at::kBool);
}

// Runs the schedule with one B-slot generator, either with the exec mask over the full batch or with
// compacted steps. `seeds`: per-slot generator seeds (per_slot_generators) or empty.
Outputs RunSchedule(std::shared_ptr<const LmModel> model, const LmGenOptions& options, const Schedule& sch,
            const at::Tensor& inputs, bool compact, const std::vector<uint64_t>& seeds = {}) {
  Outputs outputs(static_cast<size_t>(sch.steps()));
  auto gen_or = LmGen::Create(model, sch.batch(), options);
  EXPECT_TRUE(gen_or.ok()) << gen_or.status();
  if (!gen_or.ok()) return outputs;
  LmGen& gen = **gen_or;
  for (size_t i = 0; i < seeds.size(); ++i) EXPECT_TRUE(gen.SetSlotSeed(static_cast<int64_t>(i), seeds[i]).ok());
  const bool cfg = options.cfg_coef != 1.0;
  for (int64_t t = 0; t < sch.steps(); ++t) {
    const auto& reset = sch.reset[static_cast<size_t>(t)];
    if (std::any_of(reset.begin(), reset.end(), [](uint8_t r) { return r != 0; })) {
      EXPECT_TRUE(gen.Reset(BoolMask(reset)).ok());
      for (size_t i = 0; i < seeds.size(); ++i) {
        if (reset[i]) {
          EXPECT_TRUE(gen.SetSlotSeed(static_cast<int64_t>(i), seeds[i] + 1000).ok());
        }
      }
    }
    const std::vector<int64_t> active = sch.Active(t);
    if (active.empty()) continue;
    const at::Tensor in = inputs[t];  // [B, n_in]
    LmStepResult r;
    std::vector<int64_t> row_of(static_cast<size_t>(sch.batch()), -1);
    int64_t rows = 0;
    if (compact) {
      auto res = gen.StepSlots(active, in.index_select(0, at::tensor(active, at::kLong)));
      EXPECT_TRUE(res.ok()) << res.status();
      if (!res.ok()) return outputs;
      r = *res;
      for (size_t i = 0; i < active.size(); ++i) row_of[static_cast<size_t>(active[i])] = static_cast<int64_t>(i);
      rows = static_cast<int64_t>(active.size());
    } else {
      EXPECT_TRUE(gen.SetExecMask(BoolMask(sch.exec[static_cast<size_t>(t)])).ok());
      auto res = gen.Step(in);
      EXPECT_TRUE(res.ok()) << res.status();
      if (!res.ok()) return outputs;
      r = *res;
      for (int64_t b = 0; b < sch.batch(); ++b) row_of[static_cast<size_t>(b)] = b;
      rows = sch.batch();
    }
    for (int64_t slot : active) {
      const int64_t i = row_of[static_cast<size_t>(slot)];
      Out o;
      o.tokens = r.tokens[i].clone();
      o.text_logits = r.text_logits[i].clone();
      o.transformer_out = cfg ? at::stack({r.transformer_out[i], r.transformer_out[rows + i]}).clone()
                              : r.transformer_out[i].clone();
      outputs[static_cast<size_t>(t)][slot] = o;
    }
  }
  return outputs;
}

// Whether this machine's GEMM computes a row the same way in a 4-row and an 8-row product (true for MKL on
// the project's CPUs; 1- and 2-row products take other kernels). Bit-for-bit comparisons across bucket sizes
// need it; a machine where it fails still checks the tokens and the logits to 1e-5.
bool GemmRowsAgreeAcrossBuckets(int64_t dim) {
  at::manual_seed(5);
  const at::Tensor w = at::randn({3 * dim, dim});
  const at::Tensor x = at::randn({8, 1, dim});
  return at::equal(at::linear(x, w).narrow(0, 0, 4), at::linear(x.narrow(0, 0, 4), w));
}

void ExpectSame(const Outputs& a, const Outputs& b, bool exact, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  int64_t compared = 0;
  for (size_t t = 0; t < a.size(); ++t) {
    ASSERT_EQ(a[t].size(), b[t].size()) << what << " step " << t;
    for (const auto& [slot, x] : a[t]) {
      const Out& y = b[t].at(slot);
      EXPECT_TRUE(at::equal(x.tokens, y.tokens))
          << what << " step " << t << " slot " << slot << ": " << x.tokens << " vs " << y.tokens;
      if (exact) {
        EXPECT_TRUE(at::equal(x.text_logits, y.text_logits)) << what << " step " << t << " slot " << slot;
        EXPECT_TRUE(at::equal(x.transformer_out, y.transformer_out)) << what << " step " << t << " slot " << slot;
      } else {
        EXPECT_LT(testing_lm::RelError(x.text_logits, y.text_logits), 1e-5) << what << " step " << t;
      }
      ++compared;
    }
  }
  EXPECT_GT(compared, 0);
}

// B = 8; at least 3 slots run at every step (buckets 4 and 8), with slots 1, 4 and 6 of the example
// among them. Padding rows come from gathered slots (0) and from a contiguous window (4, a view); both
// padding slots later resume without a reset, so anything a padding row stored would show. The fixtures'
// context is 16 steps: the rings wrap.
Schedule AtLeastThreeActive() {
  struct Segment {
    int64_t begin, end;
    std::vector<int64_t> active;
  };
  const std::vector<Segment> segments = {
      {0, 2, {0, 1, 2, 6}},     {2, 5, {1, 4, 6}},   // slot 0 pauses as padding (gathered rows)
      {5, 9, {0, 1, 4, 6}},     {9, 13, {0, 1, 3, 4}}, {13, 14, {0, 1, 4, 6}},
      {14, 18, {0, 1, 2, 3, 4, 5, 6, 7}}, {18, 20, {1, 2, 3, 4, 5, 6, 7}},
      {20, 25, {5, 6, 7}},                             // rows [4, 8): slot 4 pads a view
      {25, 30, {1, 4, 6}},      {30, 35, {1, 4, 5}},   {35, 40, {1, 4, 5, 7}}};
  Schedule s = Empty(40, 8);
  for (const Segment& seg : segments) {
    for (int64_t t = seg.begin; t < seg.end; ++t) {
      for (int64_t b : seg.active) s.exec[static_cast<size_t>(t)][static_cast<size_t>(b)] = 1;
    }
  }
  s.reset[27][4] = 1;  // a running slot restarts
  s.reset[35][7] = 1;  // a slot that left rejoins as a new stream
  return s;
}

at::Tensor RandomInputs(const LmModel& model, int64_t steps, int64_t batch, uint64_t seed) {
  at::manual_seed(seed);
  const int64_t n_in = model.config().n_q - model.dep_q();
  return at::randint(0, model.card(), {steps, batch, std::max<int64_t>(n_in, 1)},
                     at::TensorOptions().dtype(at::kLong));
}

// `model` null: the family's f32 fixture model.
void CheckCompactedEqualsFullBatch(const std::string& family, LmGenOptions options,
                                   const std::vector<uint64_t>& seeds = {},
                                   std::shared_ptr<const LmModel> model = nullptr) {
  if (model == nullptr) model = testing_lm::LoadFixtureModel(family);
  ASSERT_NE(model, nullptr);
  const Schedule sch = AtLeastThreeActive();
  for (int64_t t = 0; t < sch.steps(); ++t) ASSERT_GE(sch.Active(t).size(), 3u) << t;
  const at::Tensor inputs = RandomInputs(*model, sch.steps(), sch.batch(), 11);
  const Outputs full = RunSchedule(model, options, sch, inputs, /*compact=*/false, seeds);
  const Outputs compact = RunSchedule(model, options, sch, inputs, /*compact=*/true, seeds);
  const bool exact = GemmRowsAgreeAcrossBuckets(model->config().dim) &&
                     GemmRowsAgreeAcrossBuckets(model->config().depformer_dim);
  if (!exact) std::cerr << "note: this machine's GEMM rounds 4- and 8-row products differently\n";
  ExpectSame(full, compact, exact, family);
}

TEST(LmCompactTest, MoshiLikeCompactedEqualsFullBatch) { CheckCompactedEqualsFullBatch("moshi", Greedy()); }
TEST(LmCompactTest, SttLikeCompactedEqualsFullBatch) { CheckCompactedEqualsFullBatch("stt", Greedy()); }

// An int8 model keeps its KV cache in bf16 on the CPU (LmLoadOptions::attention_memory_dtype): compacted
// steps write the active rows' new entries into it at their slots and ring entries, and read them back, as
// the full-batch step does.
TEST(LmCompactTest, Int8ModelWithBf16CacheCompactedEqualsFullBatch) {
  ModelConfig config;
  ASSERT_NE(testing_lm::LoadFixtureModel("moshi", &config), nullptr);
  LmLoadOptions load;
  load.dtype = at::kChar;
  auto model = LmModel::LoadFile(config.lm, testing_lm::LmDataDir("moshi") + "/model.safetensors", load);
  ASSERT_TRUE(model.ok()) << model.status();
  const bool bf16_cache = (*model)->NewTemporalState(1).kv.keys[0].scalar_type() == at::kBFloat16;
  if (!bf16_cache) GTEST_SKIP() << "no AVX2 attention kernel here: the cache stays f32";
  CheckCompactedEqualsFullBatch("moshi", Greedy(), {}, *model);
}

TEST(LmCompactTest, PerSlotSeededSamplingDrawsTheSameTokens) {
  LmGenOptions o;  // sampling at the reference temperatures and top-k
  o.per_slot_generators = true;
  o.seed = 3;
  CheckCompactedEqualsFullBatch("moshi", o, {101, 202, 303, 404, 505, 606, 707, 808});
}

TEST(LmCompactTest, CfgRowsFollowTheirSlots) {
  LmGenOptions o = Greedy();
  o.cfg_coef = 2.5;
  o.cfg_is_masked_until = {0, 3, 0, 2, 5, 0, 1, 0};
  CheckCompactedEqualsFullBatch("moshi", o);
}

// Runs one stream alone in a batch-1 generator over the steps where `exec` is set (reset where `reset`).
Outputs RunAlone(std::shared_ptr<const LmModel> model, const Schedule& sch, int64_t slot, const at::Tensor& inputs) {
  Schedule alone = Empty(sch.steps(), 1);
  for (int64_t t = 0; t < sch.steps(); ++t) {
    alone.exec[static_cast<size_t>(t)][0] = sch.exec[static_cast<size_t>(t)][static_cast<size_t>(slot)];
    alone.reset[static_cast<size_t>(t)][0] = sch.reset[static_cast<size_t>(t)][static_cast<size_t>(slot)];
  }
  Outputs out = RunSchedule(model, Greedy(), alone, inputs.narrow(1, slot, 1), /*compact=*/false);
  for (auto& step : out) {
    if (step.count(0)) {
      Out o = step[0];
      step.clear();
      step[slot] = o;
    }
  }
  return out;
}

// Only the slots of `slot` in each step's outputs.
Outputs Only(const Outputs& all, int64_t slot) {
  Outputs out(all.size());
  for (size_t t = 0; t < all.size(); ++t) {
    auto it = all[t].find(slot);
    if (it != all[t].end()) out[t][slot] = it->second;
  }
  return out;
}

TEST(LmCompactTest, LoneSlotOfEightEqualsBatchOneBitForBit) {
  // One slot runs at a time (bucket 1), so each stream's rows go through exactly the kernels of a batch-1
  // generator: equal bit for bit on any machine. Slot 4 runs the even steps, slot 6 the odd ones before step
  // 20; slot 1 takes over at 20, slot 4 rejoins after a reset at 30.
  for (const std::string family : {"moshi", "stt"}) {
    auto model = testing_lm::LoadFixtureModel(family);
    ASSERT_NE(model, nullptr);
    Schedule sch = Empty(40, 8);
    for (int64_t t = 0; t < 40; ++t) {
      auto& e = sch.exec[static_cast<size_t>(t)];
      if (t < 20) {
        e[t % 2 == 0 ? 4 : 6] = 1;
      } else if (t < 30) {
        e[1] = 1;
      } else {
        e[4] = 1;
      }
    }
    sch.reset[30][4] = 1;
    const at::Tensor inputs = RandomInputs(*model, 40, 8, 12);
    const Outputs compact = RunSchedule(model, Greedy(), sch, inputs, /*compact=*/true);
    for (int64_t slot : {1, 4, 6}) {
      ExpectSame(RunAlone(model, sch, slot, inputs), Only(compact, slot), /*exact=*/true,
                 family + " slot " + std::to_string(slot));
    }
  }
}

TEST(LmCompactTest, SlotsJoiningLeavingAndResettingMatchRunningAlone) {
  // Slots 1, 4 and 6 of 8 at varying frames (1, 2 or 3 active: buckets 1, 2 and 4): each stream equals its
  // batch-1 run (tokens equal, logits to float rounding: 1- and 2-row GEMMs round differently from 4-row).
  auto model = testing_lm::LoadFixtureModel("moshi");
  ASSERT_NE(model, nullptr);
  Schedule sch = Empty(50, 8);
  for (int64_t t = 0; t < 50; ++t) {
    auto& e = sch.exec[static_cast<size_t>(t)];
    e[1] = t >= 3 && t < 40;
    e[4] = !(t >= 10 && t < 15);
    e[6] = t >= 20;
  }
  sch.reset[25][4] = 1;
  sch.reset[44][6] = 1;
  const at::Tensor inputs = RandomInputs(*model, 50, 8, 13);
  const Outputs compact = RunSchedule(model, Greedy(), sch, inputs, /*compact=*/true);
  for (int64_t slot : {1, 4, 6}) {
    ExpectSame(RunAlone(model, sch, slot, inputs), Only(compact, slot), /*exact=*/false,
               "slot " + std::to_string(slot));
  }
}

TEST(LmCompactTest, PausedSlotsKeepTheirState) {
  auto model = testing_lm::LoadFixtureModel("moshi");
  ASSERT_NE(model, nullptr);
  auto gen_or = LmGen::Create(model, 4, Greedy());
  ASSERT_TRUE(gen_or.ok());
  LmGen& gen = **gen_or;
  at::Tensor in = at::ones({4, 8}, at::kLong);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(gen.Step(in).ok());
  const at::Tensor positions = gen.positions().clone();
  const std::vector<int64_t> slots = {2};  // bucket 1 ...
  ASSERT_TRUE(gen.StepSlots(slots, in.narrow(0, 0, 1)).ok());
  const std::vector<int64_t> three = {0, 1, 3};  // ... and bucket 4 with slot 2 as padding
  ASSERT_TRUE(gen.StepSlots(three, in.narrow(0, 0, 3)).ok());
  EXPECT_TRUE(at::equal(gen.positions(), positions + at::tensor({1, 1, 1, 1}))) << gen.positions();
}

TEST(LmCompactTest, BadSlotListsAreErrors) {
  auto model = testing_lm::LoadFixtureModel("moshi");
  ASSERT_NE(model, nullptr);
  auto gen_or = LmGen::Create(model, 4, Greedy());
  ASSERT_TRUE(gen_or.ok());
  LmGen& gen = **gen_or;
  const at::Tensor two = at::ones({2, 8}, at::kLong);
  EXPECT_FALSE(gen.StepSlots(std::vector<int64_t>{3, 1}, two).ok());
  EXPECT_FALSE(gen.StepSlots(std::vector<int64_t>{1, 4}, two).ok());
  EXPECT_FALSE(gen.StepSlots(std::vector<int64_t>{1, 2, 3}, two).ok());
  auto st = gen.StepSlots(std::vector<int64_t>{0, 1}, at::ones({3, 8}, at::kLong));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("[2, >=8]"), std::string::npos) << st.status();
}

}  // namespace
}  // namespace monologue
