// Device and dtype names from flags and RPC options: a malformed one is refused naming what is expected,
// before libtorch sees it (`cuda:abc` used to be reported as a missing CUDA device).
#include "core/util/device_dtype.h"

#include <ATen/Context.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace monologue {
namespace {

using ::testing::HasSubstr;

TEST(ParseDeviceTest, MalformedNamesAreRefusedNamingTheForm) {
  ASSERT_TRUE(ParseDevice("cpu").ok());
  EXPECT_TRUE(ParseDevice("cpu")->is_cpu());
  for (const char* bad : {"cuda:abc", "cuda:", "cuda:-1", "cuda:1x", "cuda:99999999999", "cuda: 0"}) {
    auto d = ParseDevice(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(d.status().message()), HasSubstr("expected cuda:N")) << bad;
  }
  auto unknown = ParseDevice("gpu");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("unknown device 'gpu'"));
  if (!at::hasCUDA()) {
    for (const char* name : {"cuda", "cuda:0"}) {
      auto d = ParseDevice(name);
      ASSERT_FALSE(d.ok());
      EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_THAT(std::string(d.status().message()), HasSubstr("no usable CUDA device"));
    }
  } else {
    EXPECT_TRUE(ParseDevice("cuda:0").ok());
    auto past = ParseDevice("cuda:1000");
    ASSERT_FALSE(past.ok());
    EXPECT_THAT(std::string(past.status().message()), HasSubstr("this machine has"));
  }
}

TEST(ParseDtypeTest, NamesAndQuantisedDtypesOnTheCpuOnly) {
  const c10::Device cpu(c10::kCPU);
  EXPECT_EQ(*ParseDtype("", cpu), c10::kFloat);
  EXPECT_EQ(*ParseDtype("bf16", cpu), c10::kBFloat16);
  EXPECT_EQ(*ParseDtype("int8", cpu), c10::kChar);
  auto bad = ParseDtype("fp8", cpu);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("unknown dtype 'fp8'"));
  auto int8_cuda = ParseDtype("int8", c10::Device(c10::kCUDA, 0));
  ASSERT_FALSE(int8_cuda.ok());
  EXPECT_THAT(std::string(int8_cuda.status().message()), HasSubstr("runs on the CPU only"));
}

}  // namespace
}  // namespace monologue
