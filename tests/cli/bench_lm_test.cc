// `monologue bench lm` times each dtype of a comma-separated --dtype list in turn, in one process, and
// rejects an unknown dtype with a message naming the flag.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/common/process.h"

namespace monologue {
namespace {

using ::testing::HasSubstr;

TEST(BenchLmCliTest, ADtypeListGivesOneTableEach) {
  const test_process::RunResult r = test_process::RunMonologue(
      "bench lm --preset tiny-moshi --dtype int8,f32 --batch 1 --steps 1 --warmup 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t int8_table = r.out.find("device cpu, int8,");
  const size_t f32_table = r.out.find("device cpu, f32,");
  ASSERT_NE(int8_table, std::string::npos) << r.out;
  ASSERT_NE(f32_table, std::string::npos) << r.out;
  EXPECT_LT(int8_table, f32_table) << "the dtypes are timed in the order given";
  EXPECT_THAT(r.out, HasSubstr("int8 weights:"));
  // One row for batch 1 under each header.
  EXPECT_NE(r.out.find("\n     1 ", int8_table), std::string::npos);
  EXPECT_NE(r.out.find("\n     1 ", f32_table), std::string::npos);
}

TEST(BenchLmCliTest, AnUnknownDtypeInTheListIsAnError) {
  const test_process::RunResult r =
      test_process::RunMonologue("bench lm --preset tiny-moshi --dtype int8,f99 --batch 1 --steps 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--dtype must be f32, bf16, f16, int8 or int4"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("batch")));  // nothing timed before the flag was checked
}

}  // namespace
}  // namespace monologue
