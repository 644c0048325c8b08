// StrictFp32Scope: TF32 off for cuBLAS (thread-local guard) and cuDNN (global flag) inside the scope only,
// the previous settings back afterwards; no effect when inactive (CPU models). Runs without a GPU: the
// flags are plain process state.
#include "core/util/strict_fp32_scope.h"

#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <thread>

namespace monologue {
namespace {

TEST(StrictFp32ScopeTest, TurnsTf32OffInsideAndRestoresIt) {
  auto& ctx = at::globalContext();
  const bool cudnn_before = ctx.allowTF32CuDNN();
  ctx.setAllowTF32CuDNN(true);
  ASSERT_FALSE(at::NoTF32Guard::should_disable_tf32());
  {
    StrictFp32Scope scope(true);
    EXPECT_FALSE(ctx.allowTF32CuDNN());
    EXPECT_TRUE(at::NoTF32Guard::should_disable_tf32());
    {
      StrictFp32Scope nested(true);  // nested scopes restore in order
      EXPECT_FALSE(ctx.allowTF32CuDNN());
    }
    EXPECT_FALSE(ctx.allowTF32CuDNN());
    EXPECT_TRUE(at::NoTF32Guard::should_disable_tf32());
    // The cuBLAS guard is per thread: another thread keeps its TF32 setting.
    bool other_thread_disabled = true;
    std::thread([&] { other_thread_disabled = at::NoTF32Guard::should_disable_tf32(); }).join();
    EXPECT_FALSE(other_thread_disabled);
  }
  EXPECT_TRUE(ctx.allowTF32CuDNN());
  EXPECT_FALSE(at::NoTF32Guard::should_disable_tf32());
  // A setting that was already off stays off.
  ctx.setAllowTF32CuDNN(false);
  { StrictFp32Scope scope(true); }
  EXPECT_FALSE(ctx.allowTF32CuDNN());
  ctx.setAllowTF32CuDNN(cudnn_before);
}

TEST(StrictFp32ScopeTest, InactiveScopeChangesNothing) {
  auto& ctx = at::globalContext();
  const bool cudnn_before = ctx.allowTF32CuDNN();
  ctx.setAllowTF32CuDNN(true);
  {
    StrictFp32Scope scope(false);
    EXPECT_TRUE(ctx.allowTF32CuDNN());
    EXPECT_FALSE(at::NoTF32Guard::should_disable_tf32());
  }
  EXPECT_TRUE(ctx.allowTF32CuDNN());
  ctx.setAllowTF32CuDNN(cudnn_before);
}

}  // namespace
}  // namespace monologue
