// StepBucket and MakeStepRows (core/util/step_rows.h): the bucket a step computes, the padding slots it picks,
// and the gather/scatter that must leave every row that is not active as it was.
#include "core/util/step_rows.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

namespace monologue {
namespace {

TEST(StepBucketTest, NextPowerOfTwoCappedAtTheBatch) {
  // (active, batch) -> bucket
  const std::vector<std::array<int64_t, 3>> cases = {
      {1, 1, 1}, {1, 8, 1}, {2, 8, 2}, {3, 8, 4}, {4, 8, 4}, {5, 8, 8}, {8, 8, 8},
      {3, 3, 3}, {5, 6, 6}, {6, 6, 6}, {9, 64, 16}, {17, 64, 32}, {33, 48, 48}, {64, 64, 64}};
  for (const auto& [active, batch, bucket] : cases) {
    EXPECT_EQ(StepBucket(active, batch), bucket) << active << " of " << batch;
  }
  // Every bucket is a power of two or the batch itself, holds the active slots, and is the smallest such.
  for (int64_t batch = 1; batch <= 40; ++batch) {
    for (int64_t active = 1; active <= batch; ++active) {
      const int64_t b = StepBucket(active, batch);
      EXPECT_GE(b, active);
      EXPECT_LE(b, batch);
      EXPECT_TRUE(b == batch || (b & (b - 1)) == 0) << b;
      if (b > 1 && b != batch) {
        EXPECT_LT(b / 2, active);
      }
    }
  }
}

std::vector<int64_t> ToVector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

TEST(StepRowsTest, ContiguousWindowWhenTheActiveSlotsFitOne) {
  const std::vector<int64_t> active = {5, 6, 7};
  auto r = MakeStepRows(active, 8, at::kCPU);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rows, 4);
  EXPECT_EQ(r->active, 3);
  EXPECT_EQ(r->start, 4);  // [4, 8): the window is moved left to stay inside the batch
  EXPECT_EQ(r->slots, (std::vector<int64_t>{4, 5, 6, 7}));
  EXPECT_EQ(ToVector(r->active_local), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(ToVector(r->active_slots), active);
  at::Tensor full = at::arange(16).view({8, 2});
  EXPECT_TRUE(r->Gather(full).is_alias_of(full));  // a view, no copy
}

TEST(StepRowsTest, ScatteredSlotsArePaddedWithTheLowestFreeSlots) {
  const std::vector<int64_t> active = {1, 4, 6};
  auto r = MakeStepRows(active, 8, at::kCPU);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rows, 4);
  EXPECT_EQ(r->start, -1);
  EXPECT_EQ(r->slots, (std::vector<int64_t>{0, 1, 4, 6}));
  EXPECT_EQ(r->is_active, (std::vector<uint8_t>{0, 1, 1, 1}));
  EXPECT_EQ(ToVector(r->index), r->slots);
  EXPECT_EQ(ToVector(r->active_local), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(at::equal(r->active_mask, at::tensor({0, 1, 1, 1}).to(at::kBool)));
}

TEST(StepRowsTest, ScatterWritesOnlyTheActiveRows) {
  for (const std::vector<int64_t>& active :
       {std::vector<int64_t>{1, 4, 6}, std::vector<int64_t>{2, 3}, std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7},
        std::vector<int64_t>{7}}) {
    auto r = MakeStepRows(active, 8, at::kCPU);
    ASSERT_TRUE(r.ok()) << r.status();
    at::Tensor full = at::arange(24, at::kFloat).view({8, 3});
    const at::Tensor before = full.clone();
    at::Tensor local = r->Gather(full);
    ASSERT_EQ(local.size(0), r->rows);
    EXPECT_TRUE(at::equal(local, before.index_select(0, r->index)));
    // A step's new values on every computed row, padding included: only active rows may land.
    at::Tensor updated = local + 1000;
    r->ScatterActive(full, updated);
    for (int64_t s = 0; s < 8; ++s) {
      const bool is_active = std::find(active.begin(), active.end(), s) != active.end();
      EXPECT_TRUE(at::equal(full[s], is_active ? before[s] + 1000 : before[s])) << "slot " << s;
    }
    // Expand / SelectActive round trip in slot order, padding filled.
    at::Tensor mine = at::arange(static_cast<int64_t>(active.size()), at::kFloat).view({-1, 1}) + 1;
    at::Tensor expanded = r->Expand(mine, -7);
    ASSERT_EQ(expanded.size(0), r->rows);
    for (int64_t i = 0; i < r->rows; ++i) {
      if (!r->is_active[static_cast<size_t>(i)]) {
        EXPECT_EQ(expanded[i][0].item<float>(), -7);
      }
    }
    EXPECT_TRUE(at::equal(r->SelectActive(expanded), mine));
  }
}

TEST(StepRowsTest, ScatterThroughAViewIsNotRepeated) {
  auto r = MakeStepRows(std::vector<int64_t>{2, 3}, 8, at::kCPU);
  ASSERT_TRUE(r.ok());
  at::Tensor full = at::zeros({8});
  at::Tensor view = r->Gather(full);
  view.add_(1);  // written through the view
  r->ScatterActive(full, view);
  EXPECT_TRUE(at::equal(full, at::tensor({0, 0, 1, 1, 0, 0, 0, 0}, at::kFloat)));
}

TEST(StepRowsTest, DoubledRowsCoverBothHalves) {
  auto r = MakeStepRows(std::vector<int64_t>{1, 4, 6}, 8, at::kCPU);
  ASSERT_TRUE(r.ok());
  const StepRows d = r->Doubled();
  EXPECT_EQ(d.batch, 16);
  EXPECT_EQ(d.rows, 8);
  EXPECT_EQ(d.active, 6);
  EXPECT_EQ(ToVector(d.index), (std::vector<int64_t>{0, 1, 4, 6, 8, 9, 12, 14}));
  EXPECT_EQ(ToVector(d.active_slots), (std::vector<int64_t>{1, 4, 6, 9, 12, 14}));
  EXPECT_EQ(ToVector(d.active_local), (std::vector<int64_t>{1, 2, 3, 5, 6, 7}));
  at::Tensor full = at::zeros({16});
  d.ScatterActive(full, at::ones({8}));
  EXPECT_EQ(full.sum().item<float>(), 6);
}

TEST(StepRowsTest, BadSlotListsAreErrors) {
  EXPECT_FALSE(MakeStepRows(std::vector<int64_t>{}, 8, at::kCPU).ok());
  EXPECT_FALSE(MakeStepRows(std::vector<int64_t>{8}, 8, at::kCPU).ok());
  EXPECT_FALSE(MakeStepRows(std::vector<int64_t>{-1}, 8, at::kCPU).ok());
  EXPECT_FALSE(MakeStepRows(std::vector<int64_t>{3, 3}, 8, at::kCPU).ok());
  auto unsorted = MakeStepRows(std::vector<int64_t>{4, 1}, 8, at::kCPU);
  ASSERT_FALSE(unsorted.ok());
  EXPECT_NE(unsorted.status().message().find("ascending"), std::string::npos) << unsorted.status();
  EXPECT_FALSE(MakeStepRows(std::vector<int64_t>{0, 1, 2}, 2, at::kCPU).ok());
}

}  // namespace
}  // namespace monologue
