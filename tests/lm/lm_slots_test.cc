// Slot independence: B slots that start at different frames, pause, and restart mid-stream produce, for
// each slot, exactly what running that slot alone produces (greedy tokens identical, logits equal to
// float rounding).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <vector>

#include "core/lm/lm_gen.h"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {

// The tiny models gain nothing from intra-op threads, and on a loaded 2-core machine OpenMP spinning makes
// them much slower: the LM suite runs single-threaded.
class SingleThread : public ::testing::Environment {
 public:
  void SetUp() override { at::set_num_threads(1); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new SingleThread);

using testing_lm::Greedy;

struct SlotEvent {
  bool exec = true;
  bool reset = false;
};

// Runs one slot alone over the steps where it executes; returns its per-step token frames and text logits
// (undefined where it did not execute).
void RunAlone(std::shared_ptr<const LmModel> model, const at::Tensor& inputs,
              const std::vector<SlotEvent>& events, std::vector<at::Tensor>& tokens,
              std::vector<at::Tensor>& logits) {
  auto gen_or = LmGen::Create(model, 1, Greedy());
  ASSERT_TRUE(gen_or.ok()) << gen_or.status();
  LmGen& gen = **gen_or;
  tokens.assign(events.size(), at::Tensor());
  logits.assign(events.size(), at::Tensor());
  for (size_t s = 0; s < events.size(); ++s) {
    if (events[s].reset) {
      ASSERT_TRUE(gen.Reset().ok());
    }
    if (!events[s].exec) continue;
    auto r = gen.Step(inputs[s].unsqueeze(0));
    ASSERT_TRUE(r.ok()) << r.status();
    tokens[s] = r->tokens[0].clone();
    logits[s] = r->text_logits.reshape({-1}).clone();
  }
}

void CheckSlotsMatchAlone(const std::string& family, int64_t steps) {
  auto model = testing_lm::LoadFixtureModel(family);
  ASSERT_NE(model, nullptr);
  const int64_t slots = 4;
  const int64_t n_in = model->config().n_q - model->dep_q();
  at::Tensor inputs =
      at::randint(0, model->card(), {steps, slots, n_in}, at::TensorOptions().dtype(at::kLong));
  // Slot 0: always. Slot 1: joins at step 7. Slot 2: restarts at step 23, pauses 30..34. Slot 3: joins at
  // step 3, restarts at 40 (beyond the ring size of the fixtures' context, so the ring has wrapped).
  std::vector<std::vector<SlotEvent>> events(slots, std::vector<SlotEvent>(steps));
  for (int64_t s = 0; s < steps; ++s) {
    events[1][s].exec = s >= 7;
    events[2][s].reset = s == 23;
    events[2][s].exec = !(s >= 30 && s <= 34);
    events[3][s].exec = s >= 3;
    events[3][s].reset = s == 40;
  }
  auto gen_or = LmGen::Create(model, slots, Greedy());
  ASSERT_TRUE(gen_or.ok()) << gen_or.status();
  LmGen& gen = **gen_or;
  std::vector<at::Tensor> batch_tokens, batch_logits;
  for (int64_t s = 0; s < steps; ++s) {
    at::Tensor reset = at::zeros({slots}, at::kBool), exec = at::zeros({slots}, at::kBool);
    for (int64_t b = 0; b < slots; ++b) {
      reset[b] = events[b][s].reset;
      exec[b] = events[b][s].exec;
    }
    if (reset.any().item<bool>()) {
      ASSERT_TRUE(gen.Reset(reset).ok());
    }
    ASSERT_TRUE(gen.SetExecMask(exec).ok());
    auto r = gen.Step(inputs[s]);
    ASSERT_TRUE(r.ok()) << r.status();
    batch_tokens.push_back(r->tokens.clone());
    batch_logits.push_back(r->text_logits.reshape({slots, -1}).clone());
  }
  for (int64_t b = 0; b < slots; ++b) {
    std::vector<at::Tensor> tokens, logits;
    RunAlone(model, inputs.select(1, b), events[b], tokens, logits);
    int64_t compared = 0;
    for (int64_t s = 0; s < steps; ++s) {
      if (!events[b][s].exec) {
        EXPECT_TRUE(batch_tokens[s][b].eq(-2).all().item<bool>()) << "paused slot " << b << " step " << s;
        continue;
      }
      EXPECT_TRUE(at::equal(batch_tokens[s][b], tokens[s]))
          << family << " slot " << b << " step " << s << ": " << batch_tokens[s][b] << " vs alone "
          << tokens[s];
      EXPECT_LT(testing_lm::RelError(batch_logits[s][b], logits[s]), 1e-5) << "slot " << b << " step " << s;
      ++compared;
    }
    EXPECT_GT(compared, steps / 2);
  }
}

TEST(LmSlotsTest, MoshiLikeSlotsMatchRunningAlone) { CheckSlotsMatchAlone("moshi", 60); }
TEST(LmSlotsTest, SttLikeSlotsMatchRunningAlone) { CheckSlotsMatchAlone("stt", 60); }

TEST(LmSlotsTest, PausedSlotKeepsItsStateAndResetRestartsIt) {
  auto model = testing_lm::LoadFixtureModel("moshi");
  ASSERT_NE(model, nullptr);
  auto gen_or = LmGen::Create(model, 2, Greedy());
  ASSERT_TRUE(gen_or.ok());
  LmGen& gen = **gen_or;
  at::Tensor in = at::ones({2, 8}, at::kLong);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(gen.Step(in).ok());
  ASSERT_TRUE(gen.SetExecMask(at::tensor({1, 0}).to(at::kBool)).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(gen.Step(in).ok());
  EXPECT_EQ(gen.positions()[0].item<int64_t>(), 8);
  EXPECT_EQ(gen.positions()[1].item<int64_t>(), 5);
  ASSERT_TRUE(gen.Reset(at::tensor({0, 1}).to(at::kBool)).ok());
  EXPECT_TRUE(gen.exec_mask()[1].item<bool>());  // a reset slot executes again
  auto r = gen.Step(in);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(gen.positions()[1].item<int64_t>(), 1);
  // Right after its restart the slot's frame is not ready (Moshi-like max delay 1).
  EXPECT_TRUE(r->tokens[1].eq(-2).all().item<bool>());
  EXPECT_TRUE(r->tokens[0].ge(0).all().item<bool>());
}

}  // namespace
}  // namespace monologue
