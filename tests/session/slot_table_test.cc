// The batch-slot bookkeeping the three modes share (core/session): slots taken and freed, generations that
// keep a departed session from touching its successor, the work and events signals, the input bound.
#include "core/session/slot_table.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "core/session/audio_inbox.h"

namespace monologue {
namespace {

struct TestSlot : SlotBase<int> {
  int started = 0;
  bool released = false;
};

TEST(SlotTableTest, AcquireTakesFreeSlotsUntilFullThenNamesTheLimit) {
  SlotTable<TestSlot> table(2, "widget");
  auto a = table.Acquire([](TestSlot& s) { s.started++; });
  auto b = table.Acquire([](TestSlot& s) { s.started++; });
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->index, b->index);
  EXPECT_EQ(table.free_slots(), 0);
  auto c = table.Acquire([](TestSlot&) {});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(c.status().message(), "all 2 widget slots are in use");
  table.Release(*a, [](TestSlot& s) { s.released = true; });
  EXPECT_EQ(table.free_slots(), 1);
  auto d = table.Acquire([](TestSlot&) {});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->index, a->index);                 // the freed slot is reused
  EXPECT_GT(d->generation, a->generation);       // under a new generation
}

TEST(SlotTableTest, AcquiredAndRestartedSlotsStartCleanAndNeedAReset) {
  SlotTable<TestSlot> table(1, "widget");
  auto t = table.Acquire([](TestSlot&) {});
  ASSERT_TRUE(t.ok());
  table.With(t->index, [](TestSlot& s) {
    EXPECT_TRUE(s.in_use);
    EXPECT_TRUE(s.needs_reset);
    s.needs_reset = false;
    s.closed = true;
    s.ended = true;
    s.in_step = true;
    s.events = {1, 2};
  });
  SlotTicket again = table.Restart(*t, [](TestSlot& s) { s.started++; });
  EXPECT_GT(again.generation, t->generation);
  table.With(again.index, [](const TestSlot& s) {
    EXPECT_TRUE(s.needs_reset);
    EXPECT_FALSE(s.closed || s.ended || s.in_step);
    EXPECT_TRUE(s.events.empty());
    EXPECT_EQ(s.started, 1);
  });
}

TEST(SlotTableTest, AStaleTicketReleasesNothing) {
  SlotTable<TestSlot> table(1, "widget");
  auto first = table.Acquire([](TestSlot&) {});
  ASSERT_TRUE(first.ok());
  SlotTicket current = table.Restart(*first, [](TestSlot&) {});
  table.Release(*first, [](TestSlot& s) { s.released = true; });  // the old generation: ignored
  EXPECT_EQ(table.free_slots(), 0);
  EXPECT_FALSE(table.With(0, [](const TestSlot& s) { return s.released; }));
  table.Release(current, [](TestSlot& s) { s.released = true; });
  EXPECT_EQ(table.free_slots(), 1);
  EXPECT_TRUE(table.With(0, [](const TestSlot& s) { return s.released; }));
}

TEST(SlotTableTest, WorkAndEventSignalsWakeWaiters) {
  SlotTable<TestSlot> table(1, "widget");
  EXPECT_FALSE(table.WaitForWork(std::chrono::milliseconds(1)));
  auto t = table.Acquire([](TestSlot&) {});  // a new session is work
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(table.WaitForWork(std::chrono::milliseconds(1)));
  {
    std::lock_guard<std::mutex> lock(table.mu());
    table.ClearWorkLocked();
  }
  EXPECT_FALSE(table.WaitForWork(std::chrono::milliseconds(1)));

  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::lock_guard<std::mutex> lock(table.mu());
    table.at(t->index).events.push_back(7);
    table.NotifyEvents();
  });
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int> got = table.WaitEvents(t->index, std::chrono::seconds(10));
  producer.join();
  EXPECT_EQ(got, std::vector<int>{7});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));  // woken, not timed out
  EXPECT_TRUE(table.TakeEvents(t->index).empty());
}

TEST(SlotTableTest, StepCounters) {
  SlotTable<TestSlot> table(1, "widget");
  {
    std::lock_guard<std::mutex> lock(table.mu());
    table.RecordStepLocked(0.25);
    table.RecordStepLocked(0.5);
  }
  EXPECT_EQ(table.steps_run(), 2);
  EXPECT_DOUBLE_EQ(table.step_seconds(), 0.75);
}

TEST(SlotTableTest, AbandonedStepEndsOnlyTheSlotsThatWereInItAtTheirGeneration) {
  SlotTable<TestSlot> table(4, "widget");
  std::vector<SlotTicket> t;
  for (int i = 0; i < 4; ++i) {
    auto ticket = table.Acquire([](TestSlot&) {});
    ASSERT_TRUE(ticket.ok());
    t.push_back(*ticket);
  }
  // The step collected slots 0, 1 and 2 (in_step, their generations); slot 3 did not run.
  std::vector<uint64_t> generation(4, 0);
  for (int b = 0; b < 4; ++b) {
    generation[static_cast<size_t>(b)] = t[static_cast<size_t>(b)].generation;
    table.With(b, [&](TestSlot& s) { s.in_step = b < 3; });
  }
  // Meanwhile slot 1's session reset (a new generation) and slot 2's left.
  SlotTicket restarted = table.Restart(t[1], [](TestSlot&) {});
  table.Release(t[2], [](TestSlot&) {});
  std::vector<int> ended;
  table.AbandonStep(generation, [](int b) { return b < 3; }, [&](TestSlot& s) {
    s.ended = true;
    ended.push_back(static_cast<int>(&s - &table.at(0)));
  });
  EXPECT_EQ(ended, std::vector<int>({0}));
  table.With(0, [](const TestSlot& s) { EXPECT_TRUE(s.ended && !s.in_step); });
  table.With(restarted.index, [](const TestSlot& s) { EXPECT_FALSE(s.ended); });
  table.With(3, [](const TestSlot& s) { EXPECT_FALSE(s.ended); });
}

TEST(AudioInboxTest, FramesComeOutInOrderAcrossCompaction) {
  AudioInbox inbox;
  inbox.Restart(/*leading_zeros=*/3);
  std::vector<float> in(3 * (1 << 20));
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i % 1000);
  ASSERT_TRUE(inbox.Push(in).ok());
  EXPECT_EQ(inbox.pushed(), static_cast<int64_t>(in.size()));
  std::vector<float> out(3);
  inbox.Take(3, out.data());
  EXPECT_EQ(out, std::vector<float>(3, 0.0f));
  // Consume past the compaction threshold, then push more: order survives the buffer's compaction.
  std::vector<float> frame(1920);
  size_t at = 0;
  while (inbox.available() >= frame.size() && at < (size_t{2} << 20)) {
    inbox.Take(frame.size(), frame.data());
    ASSERT_EQ(frame[0], in[at]);
    at += frame.size();
  }
  std::vector<float> more(10, -1.0f);
  ASSERT_TRUE(inbox.Push(more).ok());
  EXPECT_EQ(inbox.available(), in.size() - at + more.size());
  std::vector<float> rest(inbox.available());
  inbox.Take(rest.size(), rest.data());
  EXPECT_EQ(rest.front(), in[at]);
  EXPECT_EQ(rest.back(), -1.0f);
  inbox.AppendZeros(5);  // padding is not input
  EXPECT_EQ(inbox.available(), 5u);
  EXPECT_EQ(inbox.pushed(), static_cast<int64_t>(in.size() + more.size()));
}

TEST(AudioInboxTest, PushingTooFarAheadIsRefusedWithoutLosingWhatWasQueued) {
  AudioInbox inbox(/*max_pending=*/100);
  inbox.Restart();
  ASSERT_TRUE(inbox.Push(std::vector<float>(80, 1.0f)).ok());
  absl::Status st = inbox.Push(std::vector<float>(30, 2.0f));
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("bound of 100"), std::string::npos) << st;
  EXPECT_EQ(inbox.available(), 80u);  // nothing of the refused push went in
  std::vector<float> out(50);
  inbox.Take(50, out.data());
  EXPECT_TRUE(inbox.Push(std::vector<float>(30, 2.0f)).ok());  // room again once the model consumed
  EXPECT_EQ(inbox.available(), 60u);
}

}  // namespace
}  // namespace monologue
