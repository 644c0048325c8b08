// Compacted Mimi steps (EncodeStepSlots / DecodeStepSlots): stepping only some slots of a batch-B state,
// gathered into the smallest bucket that holds them, gives what the full-batch step with an exec mask gives
// (codes equal, audio bit for bit), and leaves the other slots' state as it was, padding rows included.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "tests/mimi/mimi_test_util.h"

namespace monologue {
namespace {

constexpr int64_t kBatch = 4;
constexpr int64_t kSteps = 12;

// Active slots per step, 2 or more at a time (buckets 2 and 4): the full batch, gathered rows with padding
// ({1, 3}: slot 0 pads), a contiguous window ({2, 3}), 3 of 4 (slot 1 pads, then resumes without a reset).
// (A lone slot takes 1-row kernels, which round differently from the full batch's: LoneSlotEqualsBatchOne.)
std::vector<std::vector<int64_t>> Schedule() {
  return {{0, 1, 2, 3}, {0, 1, 2, 3}, {1, 3}, {1, 3}, {1, 3}, {2, 3},
          {2, 3},       {0, 2, 3},    {0, 2, 3}, {0, 2, 3}, {0, 1}, {1, 2}};
}
constexpr int64_t kResetStep = 8;  // slot 2 restarts here
constexpr int64_t kResetSlot = 2;

at::Tensor Mask(const std::vector<int64_t>& active) {
  at::Tensor m = at::zeros({kBatch}, at::kBool);
  for (int64_t s : active) m[s] = true;
  return m;
}

class MimiCompactTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = mimi_test::LoadTiny();
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::make_unique<MimiModel>(std::move(*model));
  }
  std::unique_ptr<MimiModel> model_;
};

TEST_F(MimiCompactTest, EncodeSlotsEqualsFullBatchStep) {
  at::manual_seed(21);
  const at::Tensor pcm = at::randn({kSteps, kBatch, 1, model_->frame_size()}) * 0.3;
  MimiStreamState full = model_->NewState(kBatch), compact = model_->NewState(kBatch);
  const auto schedule = Schedule();
  int64_t compared = 0;
  for (int64_t t = 0; t < kSteps; ++t) {
    if (t == kResetStep) {
      ASSERT_TRUE(model_->Reset(full, Mask({kResetSlot})).ok());
      ASSERT_TRUE(model_->Reset(compact, Mask({kResetSlot})).ok());
    }
    const auto& active = schedule[static_cast<size_t>(t)];
    auto a = model_->EncodeStep(full, pcm[t], Mask(active));
    ASSERT_TRUE(a.ok()) << a.status();
    const at::Tensor idx = at::tensor(active, at::kLong);
    auto b = model_->EncodeStepSlots(compact, active, pcm[t].index_select(0, idx));
    ASSERT_TRUE(b.ok()) << b.status();
    ASSERT_EQ(b->size(0), static_cast<int64_t>(active.size()));
    EXPECT_TRUE(at::equal(a->index_select(0, idx), *b)) << "step " << t;
    ++compared;
  }
  EXPECT_EQ(compared, kSteps);
  // Every slot's state ends where the full-batch run left it. (Not the rings: a paused slot of the full
  // batch writes its discarded entry at its next position, which it overwrites before reading it.)
  EXPECT_TRUE(at::equal(full.encoder.transformer.offset, compact.encoder.transformer.offset));
  for (size_t c = 0; c < full.encoder.seanet.convs.size(); ++c) {
    EXPECT_TRUE(at::equal(full.encoder.seanet.convs[c].previous, compact.encoder.seanet.convs[c].previous)) << c;
  }
}

TEST_F(MimiCompactTest, DecodeSlotsEqualsFullBatchStep) {
  at::manual_seed(22);
  const int64_t k = model_->num_codebooks();
  const at::Tensor codes = at::randint(0, model_->cardinality(), {kSteps, kBatch, k, 1}, at::kLong);
  MimiStreamState full = model_->NewState(kBatch), compact = model_->NewState(kBatch);
  const auto schedule = Schedule();
  for (int64_t t = 0; t < kSteps; ++t) {
    if (t == kResetStep) {
      ASSERT_TRUE(model_->Reset(full, Mask({kResetSlot})).ok());
      ASSERT_TRUE(model_->Reset(compact, Mask({kResetSlot})).ok());
    }
    const auto& active = schedule[static_cast<size_t>(t)];
    auto a = model_->DecodeStep(full, codes[t], Mask(active));
    ASSERT_TRUE(a.ok()) << a.status();
    const at::Tensor idx = at::tensor(active, at::kLong);
    auto b = model_->DecodeStepSlots(compact, active, codes[t].index_select(0, idx));
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_TRUE(at::equal(a->index_select(0, idx), *b))
        << "step " << t << ": max diff " << (a->index_select(0, idx) - *b).abs().max().item<float>();
  }
}

TEST_F(MimiCompactTest, LoneSlotEqualsBatchOne) {
  // One slot at a time (bucket 1): each stream goes through exactly the kernels of a batch-1 state, so its
  // codes and audio equal a batch-1 run's bit for bit. Slots 1 and 3 alternate; slot 3 restarts at step 6.
  at::manual_seed(23);
  const int64_t k = model_->num_codebooks();
  const at::Tensor pcm = at::randn({kSteps, kBatch, 1, model_->frame_size()}) * 0.3;
  const at::Tensor codes = at::randint(0, model_->cardinality(), {kSteps, kBatch, k, 1}, at::kLong);
  MimiStreamState batch = model_->NewState(kBatch);
  MimiStreamState alone[2] = {model_->NewState(1), model_->NewState(1)};
  for (int64_t t = 0; t < kSteps; ++t) {
    const int64_t slot = t % 2 == 0 ? 1 : 3;
    MimiStreamState& one = alone[t % 2];
    if (t == 6 || t == 7) {  // slot 1 at 6, slot 3 at 7
      ASSERT_TRUE(model_->Reset(batch, Mask({slot})).ok());
      ASSERT_TRUE(model_->Reset(one).ok());
    }
    const std::vector<int64_t> slots = {slot};
    auto a = model_->EncodeStepSlots(batch, slots, pcm[t].narrow(0, slot, 1));
    auto b = model_->EncodeStep(one, pcm[t].narrow(0, slot, 1));
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_TRUE(at::equal(*a, *b)) << "step " << t;
    auto c = model_->DecodeStepSlots(batch, slots, codes[t].narrow(0, slot, 1));
    auto d = model_->DecodeStep(one, codes[t].narrow(0, slot, 1));
    ASSERT_TRUE(c.ok() && d.ok());
    EXPECT_TRUE(at::equal(*c, *d)) << "step " << t;
  }
}

TEST_F(MimiCompactTest, BadSlotListsAreErrors) {
  MimiStreamState state = model_->NewState(kBatch);
  const at::Tensor two = at::zeros({2, 1, model_->frame_size()});
  EXPECT_FALSE(model_->EncodeStepSlots(state, std::vector<int64_t>{2, 1}, two).ok());
  EXPECT_FALSE(model_->EncodeStepSlots(state, std::vector<int64_t>{1, 4}, two).ok());
  EXPECT_FALSE(model_->EncodeStepSlots(state, std::vector<int64_t>{1}, two).ok());
  EXPECT_FALSE(
      model_->DecodeStepSlots(state, std::vector<int64_t>{0}, at::zeros({1, 2, 2}, at::kLong)).ok());
}

}  // namespace
}  // namespace monologue
