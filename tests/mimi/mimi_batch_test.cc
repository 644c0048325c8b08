// Batch slots are independent streams: B streams of different lengths (slots idle through the exec mask
// while they have no data) and a mid-stream reset of one slot give the same codes and audio as running
// each stream alone.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "tests/mimi/mimi_test_util.h"

namespace monologue {
namespace {

using mimi_test::Agreement;
using mimi_test::Fixture;

at::Tensor Mask(std::vector<int64_t> on) { return at::tensor(on).to(at::kBool); }

struct Slot {
  at::Tensor pcm;  // [1, 1, frames * 1920]
  int64_t start;   // first step with data
};

class MimiBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = mimi_test::LoadTiny();
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::make_unique<MimiModel>(std::move(*model));
    auto file = SafeTensorsFile::Open(mimi_test::DataPath("tiny_cases.safetensors"));
    ASSERT_TRUE(file.ok()) << file.status();
    cases_ = *file;
  }
  at::Tensor Alone(const at::Tensor& pcm) {
    MimiStreamState s = model_->NewState(1);
    return mimi_test::StreamEncode(*model_, s, pcm);
  }

  std::unique_ptr<MimiModel> model_;
  std::shared_ptr<const SafeTensorsFile> cases_;
};

TEST_F(MimiBatchTest, StreamsOfDifferentLengthsMatchEachAlone) {
  const int64_t frame = model_->frame_size();
  const std::vector<Slot> slots = {
      {Fixture(*cases_, "input_long").narrow(2, 0, 20 * frame), 0},  // all 20 steps
      {Fixture(*cases_, "input_a"), 0},                              // 12 frames, then idle
      {Fixture(*cases_, "input_b"), 5},                              // idle, 9 frames, idle
  };
  const int64_t steps = 20, b = static_cast<int64_t>(slots.size());
  MimiStreamState state = model_->NewState(b);
  std::vector<std::vector<at::Tensor>> got(b);
  at::manual_seed(1);
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<at::Tensor> frames;
    std::vector<bool> active;
    for (const Slot& s : slots) {
      const int64_t t = step - s.start;
      const bool on = t >= 0 && t < s.pcm.size(2) / frame;
      active.push_back(on);
      // Idle slots get noise: it must not leak into their state.
      frames.push_back(on ? s.pcm.narrow(2, t * frame, frame) : at::randn({1, 1, frame}) * 0.3);
    }
    at::Tensor mask = at::zeros({b}, at::kBool);
    for (int64_t i = 0; i < b; ++i) mask[i] = static_cast<bool>(active[i]);
    auto codes = model_->EncodeStep(state, at::cat(frames, 0), mask);
    ASSERT_TRUE(codes.ok()) << codes.status();
    for (int64_t i = 0; i < b; ++i) {
      if (active[i]) got[i].push_back(codes->narrow(0, i, 1));
    }
  }
  for (int64_t i = 0; i < b; ++i) {
    const at::Tensor alone = Alone(slots[i].pcm);
    const at::Tensor batched = at::cat(got[i], 2);
    ASSERT_EQ(batched.sizes(), alone.sizes()) << "slot " << i;
    EXPECT_GE(Agreement(batched, alone), 0.999) << "slot " << i;
  }
}

TEST_F(MimiBatchTest, MidStreamResetOfOneSlotLeavesTheOtherAlone) {
  const int64_t frame = model_->frame_size();
  const at::Tensor long_pcm = Fixture(*cases_, "input_long").narrow(2, 0, 18 * frame);
  const at::Tensor b_pcm = Fixture(*cases_, "input_b").narrow(2, 0, 6 * frame);
  const at::Tensor a_pcm = Fixture(*cases_, "input_a");
  MimiStreamState state = model_->NewState(2);
  std::vector<at::Tensor> slot0, slot1_after;
  for (int64_t step = 0; step < 18; ++step) {
    if (step == 6) {
      ASSERT_TRUE(model_->Reset(state, Mask({0, 1})).ok());
    }
    const at::Tensor second =
        step < 6 ? b_pcm.narrow(2, step * frame, frame) : a_pcm.narrow(2, (step - 6) * frame, frame);
    auto codes = model_->EncodeStep(state, at::cat({long_pcm.narrow(2, step * frame, frame), second}, 0));
    ASSERT_TRUE(codes.ok()) << codes.status();
    slot0.push_back(codes->narrow(0, 0, 1));
    if (step >= 6) slot1_after.push_back(codes->narrow(0, 1, 1));
  }
  EXPECT_GE(Agreement(at::cat(slot0, 2), Alone(long_pcm)), 0.999);
  EXPECT_GE(Agreement(at::cat(slot1_after, 2), Alone(a_pcm)), 0.999);
}

TEST_F(MimiBatchTest, DecodeSlotsWithIdleStepsAndResetMatchEachAlone) {
  const at::Tensor codes = Fixture(*cases_, "decode_codes");  // [1, 32, 24]
  const at::Tensor other = Fixture(*cases_, "stream_codes32_long").narrow(2, 10, 24).contiguous();
  auto alone = [&](const at::Tensor& c) {
    MimiStreamState s = model_->NewState(1);
    return mimi_test::StreamDecode(*model_, s, c);
  };
  // Slot 0 decodes `codes` straight; slot 1 idles 3 steps, decodes `other` for 8 steps, is reset, then
  // decodes `codes` from the start.
  MimiStreamState state = model_->NewState(2);
  std::vector<at::Tensor> out0, out1a, out1b;
  for (int64_t step = 0; step < 24; ++step) {
    if (step == 11) {
      ASSERT_TRUE(model_->Reset(state, Mask({0, 1})).ok());
    }
    const bool idle1 = step < 3;
    const at::Tensor c1 = idle1 ? at::zeros({1, 32, 1}, at::kLong)
                                : (step < 11 ? other.narrow(2, step - 3, 1) : codes.narrow(2, step - 11, 1));
    auto pcm =
        model_->DecodeStep(state, at::cat({codes.narrow(2, step, 1), c1}, 0), Mask({1, idle1 ? 0 : 1}));
    ASSERT_TRUE(pcm.ok()) << pcm.status();
    out0.push_back(pcm->narrow(0, 0, 1));
    if (!idle1) (step < 11 ? out1a : out1b).push_back(pcm->narrow(0, 1, 1));
  }
  EXPECT_LT(mimi_test::RelativeL2(at::cat(out0, 2), alone(codes)), 1e-6);
  EXPECT_LT(mimi_test::RelativeL2(at::cat(out1a, 2), alone(other.narrow(2, 0, 8))), 1e-6);
  EXPECT_LT(mimi_test::RelativeL2(at::cat(out1b, 2), alone(codes.narrow(2, 0, 13))), 1e-6);
}

}  // namespace
}  // namespace monologue
