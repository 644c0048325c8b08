// The Mimi transformer's few-row streaming path (mimi_transformer_few_rows.cc) gives the same bits as the
// general path: codes and decoded audio are compared exactly, with the path on and off, on the tiny model
// over a stream that wraps the KV ring, with an idle slot and a mid-stream reset, with steps over some slots
// of the state (what the engines run), and on the released architecture; and the same bits from the kernels'
// AVX2 code as from their AVX-512 code.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "core/kernels/cpu_isa.h"
#include "core/mimi/mimi_transformer.h"
#include "tests/mimi/mimi_test_util.h"

namespace monologue {
namespace {

using mimi::MimiTransformer;
using mimi_test::Fixture;

struct StreamOutput {
  at::Tensor codes;  // [B, K, steps]
  at::Tensor pcm;    // [B, 1, steps * frame]
};

at::Tensor Mask(bool first, bool second) {
  return at::tensor(std::vector<int64_t>{first, second}).to(at::kBool);
}

// Two slots: slot 0 streams `a` throughout; slot 1 streams `b`, idles (noise under the exec mask) from step
// `idle_from`, is reset at `reset_at` and then streams `c`.
StreamOutput TwoSlots(const MimiModel& model, const at::Tensor& a, const at::Tensor& b, const at::Tensor& c,
                      int64_t idle_from, int64_t reset_at, bool few_row_path) {
  MimiTransformer::SetFewRowPathEnabled(few_row_path);
  const int64_t frame = model.frame_size(), steps = a.size(2) / frame;
  MimiStreamState state = model.NewState(2);
  std::vector<at::Tensor> codes, pcm;
  at::manual_seed(7);
  for (int64_t step = 0; step < steps; ++step) {
    if (step == reset_at) {
      EXPECT_TRUE(model.Reset(state, Mask(false, true)).ok());
    }
    const bool second_on = step < idle_from || step >= reset_at;
    const at::Tensor second = step < idle_from   ? b.narrow(2, step * frame, frame)
                              : step >= reset_at ? c.narrow(2, (step - reset_at) * frame, frame)
                                                 : at::randn({1, 1, frame}) * 0.3;
    const at::Tensor mask = Mask(true, second_on);
    auto step_codes = model.EncodeStep(state, at::cat({a.narrow(2, step * frame, frame), second}, 0), mask);
    EXPECT_TRUE(step_codes.ok()) << step_codes.status();
    if (!step_codes.ok()) break;
    auto step_pcm = model.DecodeStep(state, *step_codes, mask);
    EXPECT_TRUE(step_pcm.ok()) << step_pcm.status();
    if (!step_pcm.ok()) break;
    codes.push_back(*step_codes);
    pcm.push_back(*step_pcm);
  }
  MimiTransformer::SetFewRowPathEnabled(true);
  return {at::cat(codes, 2), at::cat(pcm, 2)};
}

// Three slots stepped through EncodeStepSlots / DecodeStepSlots (what the engines call) with a schedule of
// active sets: contiguous runs that start at slot 0 or later (the few-row path steps them in place) and a
// set with a gap ({0, 2}: the general path), so that both paths write and read the same rings in turn.
StreamOutput SlotSchedule(const MimiModel& model, const at::Tensor& pcm, bool few_row_path) {
  MimiTransformer::SetFewRowPathEnabled(few_row_path);
  const int64_t frame = model.frame_size(), steps = pcm.size(2) / frame;
  const std::vector<std::vector<int64_t>> schedule = {{0, 1, 2}, {1, 2}, {0}, {2}, {0, 2}, {1}, {0, 1}};
  MimiStreamState state = model.NewState(3);
  std::vector<at::Tensor> codes, audio;
  for (int64_t step = 0; step < steps; ++step) {
    const std::vector<int64_t>& slots = schedule[step % schedule.size()];
    const int64_t n = static_cast<int64_t>(slots.size());
    // Each slot gets its own signal: the input scaled per slot.
    std::vector<at::Tensor> in;
    for (int64_t slot : slots) in.push_back(pcm.narrow(2, step * frame, frame) * (0.5 + 0.25 * slot));
    auto step_codes = model.EncodeStepSlots(state, slots, at::cat(in, 0));
    EXPECT_TRUE(step_codes.ok()) << step_codes.status();
    if (!step_codes.ok()) break;
    auto step_pcm = model.DecodeStepSlots(state, slots, *step_codes);
    EXPECT_TRUE(step_pcm.ok()) << step_pcm.status();
    if (!step_pcm.ok()) break;
    EXPECT_EQ(step_codes->size(0), n);
    codes.push_back(step_codes->flatten());
    audio.push_back(step_pcm->flatten());
  }
  MimiTransformer::SetFewRowPathEnabled(true);
  return {at::cat(codes), at::cat(audio)};
}

TEST(MimiFewRowsTest, SlotStepsOfContiguousActiveSlotsAreBitwiseTheGeneralPath) {
  auto tiny = mimi_test::LoadTiny();
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  auto file = SafeTensorsFile::Open(mimi_test::DataPath("tiny_cases.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  const at::Tensor pcm = Fixture(**file, "input_long");  // 40 frames: the 10-step context wraps
  const StreamOutput fast = SlotSchedule(*tiny, pcm, true), general = SlotSchedule(*tiny, pcm, false);
  EXPECT_TRUE(at::equal(fast.codes, general.codes));
  EXPECT_TRUE(at::equal(fast.pcm, general.pcm))
      << "max diff " << (fast.pcm - general.pcm).abs().max().item<float>();

  auto real = mimi_test::LoadReal();
  ASSERT_TRUE(real.ok()) << real.status();
  at::manual_seed(5);
  const at::Tensor speech = at::randn({1, 1, 7 * real->frame_size()}) * 0.2;
  const StreamOutput real_fast = SlotSchedule(*real, speech, true);
  const StreamOutput real_general = SlotSchedule(*real, speech, false);
  EXPECT_TRUE(at::equal(real_fast.codes, real_general.codes));
  EXPECT_TRUE(at::equal(real_fast.pcm, real_general.pcm))
      << "max diff " << (real_fast.pcm - real_general.pcm).abs().max().item<float>();
}

TEST(MimiFewRowsTest, TinyStreamsWithWrapIdleAndResetAreBitwiseTheGeneralPath) {
  auto model = mimi_test::LoadTiny();
  ASSERT_TRUE(model.ok()) << model.status();
  auto file = SafeTensorsFile::Open(mimi_test::DataPath("tiny_cases.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  // 40 frames: the tiny transformer's 10-step context wraps several times.
  // Slot 1: input_b's 9 frames, idle, reset at step 28, input_a's 12 frames.
  const at::Tensor a = Fixture(**file, "input_long"), b = Fixture(**file, "input_b"),
                   c = Fixture(**file, "input_a");
  const StreamOutput fast = TwoSlots(*model, a, b, c, /*idle_from=*/9, /*reset_at=*/28, true);
  const StreamOutput general = TwoSlots(*model, a, b, c, 9, 28, false);
  ASSERT_EQ(fast.codes.sizes(), general.codes.sizes());
  EXPECT_TRUE(at::equal(fast.codes, general.codes));
  ASSERT_EQ(fast.pcm.sizes(), general.pcm.sizes());
  EXPECT_TRUE(at::equal(fast.pcm, general.pcm))
      << "max diff " << (fast.pcm - general.pcm).abs().max().item<float>();
}

TEST(MimiFewRowsTest, ReleasedArchitectureIsBitwiseTheGeneralPath) {
  auto model = mimi_test::LoadReal();
  ASSERT_TRUE(model.ok()) << model.status();
  const int64_t frame = model->frame_size();
  at::manual_seed(3);
  const at::Tensor a = at::randn({1, 1, 4 * frame}) * 0.2, b = at::randn({1, 1, 4 * frame}) * 0.2;
  const StreamOutput fast = TwoSlots(*model, a, b, b, /*idle_from=*/2, /*reset_at=*/3, true);
  const StreamOutput general = TwoSlots(*model, a, b, b, 2, 3, false);
  EXPECT_TRUE(at::equal(fast.codes, general.codes));
  EXPECT_TRUE(at::equal(fast.pcm, general.pcm))
      << "max diff " << (fast.pcm - general.pcm).abs().max().item<float>();
}

// A CPU without AVX-512 runs the kernels' AVX2 code (core/kernels/cpu_isa.h): the released architecture's
// codes and audio are the same bits as with AVX-512, so what the parity fixtures check here holds there.
TEST(MimiFewRowsTest, ReleasedArchitectureGivesTheSameBitsCappedAtAvx2) {
  if (kernels::DetectedCpuIsa() < kernels::CpuIsa::kAvx512) GTEST_SKIP() << "no AVX-512 to compare with";
  auto model = mimi_test::LoadReal();
  ASSERT_TRUE(model.ok()) << model.status();
  const int64_t frame = model->frame_size();
  at::manual_seed(4);
  const at::Tensor a = at::randn({1, 1, 4 * frame}) * 0.2, b = at::randn({1, 1, 4 * frame}) * 0.2;
  const StreamOutput wide = TwoSlots(*model, a, b, b, /*idle_from=*/2, /*reset_at=*/3, true);
  kernels::SetCpuIsaLimit(kernels::CpuIsa::kAvx2);
  const StreamOutput narrow = TwoSlots(*model, a, b, b, 2, 3, true);
  kernels::SetCpuIsaLimit(kernels::CpuIsa::kAvx512);
  EXPECT_TRUE(at::equal(wide.codes, narrow.codes));
  EXPECT_TRUE(at::equal(wide.pcm, narrow.pcm))
      << "max diff " << (wide.pcm - narrow.pcm).abs().max().item<float>();
}

}  // namespace
}  // namespace monologue
