// Weights and KV caches on 2 MB pages (core/util/huge_pages.h): placed tensors hold the same values, are
// aligned and contiguous, share an arena mapping or own one as asked, give their memory back when the last
// tensor goes, are backed by huge pages where the kernel offers them, and placement switched off changes
// nothing but the pages.
#include "core/util/huge_pages.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <string>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace monologue {
namespace {

bool IsMapped(const void* p) {
#ifdef __linux__
  // msync fails with ENOMEM on an address no mapping covers.
  void* page = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t{4095});
  return ::msync(page, 4096, MS_ASYNC) == 0 || errno != ENOMEM;
#else
  (void)p;
  return true;
#endif
}

// "always" or "madvise" selected in the kernel's THP switch: an madvised mapping can get huge pages.
bool KernelOffersHugePages() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(f, line)) return false;
  return line.find("[always]") != std::string::npos || line.find("[madvise]") != std::string::npos;
}

class HugePagesTest : public ::testing::Test {
 protected:
  void TearDown() override { SetHugePagesEnabled(true); }
};

TEST_F(HugePagesTest, APlacedTensorHoldsTheSameValuesContiguousAndAligned) {
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kChar}) {
    const at::Tensor source = (at::randn({300, 77}) * 50).to(dtype);
    const at::Tensor transposed = source.t();  // not contiguous: placement makes it so
    for (const at::Tensor& t : {source, transposed}) {
      const at::Tensor placed = PlaceOnHugePages(t);
      EXPECT_NE(placed.data_ptr(), t.data_ptr());
      EXPECT_TRUE(placed.is_contiguous());
      EXPECT_EQ(placed.scalar_type(), dtype);
      EXPECT_EQ(placed.sizes(), t.sizes());
      EXPECT_EQ(reinterpret_cast<uintptr_t>(placed.data_ptr()) % 64, 0u);
      EXPECT_TRUE(at::equal(placed, t)) << "dtype " << dtype;
    }
  }
}

TEST_F(HugePagesTest, WeightsShareAMappingThatGoesWithTheirLastTensor) {
  // Two tensors placed one after the other lie next to each other (64-byte steps) in one mapping.
  at::Tensor a = EmptyOnHugePages({1000}, at::kFloat);  // 4000 bytes -> 4032
  at::Tensor b = EmptyOnHugePages({10}, at::kFloat);
  const auto* pa = static_cast<const uint8_t*>(a.data_ptr());
  const auto* pb = static_cast<const uint8_t*>(b.data_ptr());
  if (pb != pa + 4032) {
    // Only when `a` was the last to fit in its mapping does `b` open a new one.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(pb) % (2 << 20), 0u);
  }
  a.fill_(1);
  b.fill_(2);
  EXPECT_EQ(a.sum().item<float>(), 1000);
  EXPECT_EQ(b.sum().item<float>(), 20);
  // A fresh arena mapping once both are gone: what they used is given back, not kept by the arena.
  a.reset();
  EXPECT_TRUE(IsMapped(pb)) << "b still lives in that mapping";
  b.reset();
  EXPECT_FALSE(IsMapped(pb)) << "the mapping outlived its last tensor";
}

TEST_F(HugePagesTest, AnOwnMappingStartsOnA2MbBoundaryAndGoesWithItsTensor) {
  at::Tensor cache = EmptyOnHugePages({3, 1 << 20}, at::kFloat, /*own_mapping=*/true);  // 12 MB
  const void* p = cache.data_ptr();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (2 << 20), 0u);
  cache.zero_();
  EXPECT_EQ(cache.abs().sum().item<float>(), 0);
  // A view keeps the mapping alive.
  at::Tensor row = cache[2];
  cache.reset();
  row.fill_(3);
  EXPECT_TRUE(IsMapped(p));
  row.reset();
  EXPECT_FALSE(IsMapped(p));
}

TEST_F(HugePagesTest, SmallOwnBuffersAndOtherDevicesAreLeftToATen) {
  // Under 2 MB a mapping of its own would get no huge page: a plain allocation.
  const at::Tensor small = EmptyOnHugePages({100}, at::kFloat, /*own_mapping=*/true);
  EXPECT_EQ(small.numel(), 100);
  EXPECT_TRUE(small.storage().resizable()) << "not from_blob: ATen's own allocation";
  const at::Tensor empty = PlaceOnHugePages(at::empty({0, 5}));
  EXPECT_EQ(empty.numel(), 0);
}

TEST_F(HugePagesTest, SwitchedOffPlacementIsAPlainContiguousTensor) {
  SetHugePagesEnabled(false);
  EXPECT_FALSE(HugePagesEnabled());
  const at::Tensor t = at::randn({64, 64});
  EXPECT_EQ(PlaceOnHugePages(t).data_ptr(), t.data_ptr()) << "contiguous already: no copy";
  const at::Tensor placed = PlaceOnHugePages(t.t());
  EXPECT_TRUE(placed.is_contiguous());
  EXPECT_TRUE(at::equal(placed, t.t()));
  EXPECT_TRUE(EmptyOnHugePages({1 << 22}, at::kFloat).storage().resizable());
}

TEST_F(HugePagesTest, APlacedWeightIsBackedByHugePagesWhereTheKernelOffersThem) {
  if (!KernelOffersHugePages() || AnonHugePageBytes() < 0) {
    GTEST_SKIP() << "transparent huge pages are off or not reported on this machine";
  }
  const int64_t before = AnonHugePageBytes();
  at::Tensor w = EmptyOnHugePages({64 << 20}, at::kChar, /*own_mapping=*/true);  // 64 MB
  w.fill_(1);                                                                    // touch every page
  const int64_t after = AnonHugePageBytes();
  // Compaction may fail for a few ranges on a fragmented machine; most of 64 MB must be on 2 MB pages.
  EXPECT_GE(after - before, int64_t{32} << 20) << "before " << before << ", after " << after;
  w.reset();
  EXPECT_LT(AnonHugePageBytes(), after) << "the huge pages went back with the tensor";
}

}  // namespace
}  // namespace monologue
