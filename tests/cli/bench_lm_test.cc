// `monologue bench lm` times each dtype of a comma-separated --dtype list in turn, in one process, and
// rejects an unknown dtype with a message naming the flag; it reports the memory on 2 MB pages, which
// MONOLOGUE_HUGE_PAGES=0 switches off (any other value than 0/1 and their spellings is refused), and names
// the int8 kernel, which MONOLOGUE_INT8_KERNEL caps. Each table comes with the weight bytes a step reads and
// the memory's read speed measured before and after it.
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
  // The memory-speed floor under each header, and the speed again after each table.
  for (const size_t table : {int8_table, f32_table}) {
    const size_t bytes = r.out.find("LM weights read per step: ", table);
    const size_t floor = r.out.find("memory read speed now: ", table);
    const size_t after = r.out.find("memory read speed after the timing: ", table);
    ASSERT_NE(after, std::string::npos) << r.out;
    EXPECT_LT(bytes, floor);
    EXPECT_LT(floor, r.out.find("\n     1 ", table));
    EXPECT_GT(after, r.out.find("\n     1 ", table));
  }
  EXPECT_THAT(r.out, ::testing::ContainsRegex("reading them all from memory takes [0-9]+\\.[0-9]+ ms"));
}

TEST(BenchLmCliTest, AnUnknownDtypeInTheListIsAnError) {
  const test_process::RunResult r =
      test_process::RunMonologue("bench lm --preset tiny-moshi --dtype int8,f99 --batch 1 --steps 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--dtype must be f32, bf16, f16, int8 or int4"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("batch")));  // nothing timed before the flag was checked
}

TEST(BenchLmCliTest, HugePagesAreReportedAndCanBeSwitchedOff) {
  const std::string bench = " bench lm --preset tiny-moshi --dtype int8 --batch 1 --steps 1 --warmup 0";
  const test_process::RunResult on = test_process::RunMonologue(bench);
  ASSERT_EQ(on.exit_code, 0) << on.err;
  EXPECT_THAT(on.out, HasSubstr("memory on 2 MB pages: "));
  const test_process::RunResult off =
      test_process::RunShell("MONOLOGUE_HUGE_PAGES=0 " + test_process::MonologueBinary() + bench);
  ASSERT_EQ(off.exit_code, 0) << off.err;
  EXPECT_THAT(off.out, HasSubstr("weights on 4 KB pages (MONOLOGUE_HUGE_PAGES=0)"));
  EXPECT_THAT(off.out, HasSubstr("\n     1 "));  // and still timed
  const test_process::RunResult bad =
      test_process::RunShell("MONOLOGUE_HUGE_PAGES=maybe " + test_process::MonologueBinary() + bench);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("MONOLOGUE_HUGE_PAGES='maybe': expected 0 or 1"));
  EXPECT_THAT(bad.out, ::testing::Not(HasSubstr("batch")));
}

TEST(BenchLmCliTest, TheInt8KernelCanBeCappedToAvx2OrScalar) {
  const std::string bench = " bench lm --preset tiny-moshi --dtype int8 --batch 1 --steps 1 --warmup 0";
  const test_process::RunResult scalar =
      test_process::RunShell("MONOLOGUE_INT8_KERNEL=scalar " + test_process::MonologueBinary() + bench);
  ASSERT_EQ(scalar.exit_code, 0) << scalar.err;
  EXPECT_THAT(scalar.out, HasSubstr("(scalar kernel)"));
  EXPECT_THAT(scalar.out, HasSubstr("\n     1 "));
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    const test_process::RunResult avx2 =
        test_process::RunShell("MONOLOGUE_INT8_KERNEL=avx2 " + test_process::MonologueBinary() + bench);
    ASSERT_EQ(avx2.exit_code, 0) << avx2.err;
    EXPECT_THAT(avx2.out, HasSubstr("(avx2 kernel)"));
  }
  const test_process::RunResult bad =
      test_process::RunShell("MONOLOGUE_INT8_KERNEL=sse9 " + test_process::MonologueBinary() + bench);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err,
              HasSubstr("MONOLOGUE_INT8_KERNEL='sse9': expected scalar, avx2, avx512 or avx512-vnni"));
  EXPECT_THAT(bad.out, ::testing::Not(HasSubstr("batch")));
}

// MONOLOGUE_CPU_ISA caps every kernel at once (the int8 path included) and the report names the level.
TEST(BenchLmCliTest, TheCpuInstructionSetCanBeCapped) {
  const std::string bench = " bench lm --preset tiny-moshi --dtype int8 --batch 1 --steps 1 --warmup 0";
  const test_process::RunResult plain = test_process::RunMonologue(bench);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_THAT(plain.out, HasSubstr("cpu kernels: "));
  EXPECT_THAT(plain.out, ::testing::Not(HasSubstr("capped")));
  const test_process::RunResult scalar =
      test_process::RunShell("MONOLOGUE_CPU_ISA=scalar " + test_process::MonologueBinary() + bench);
  ASSERT_EQ(scalar.exit_code, 0) << scalar.err;
  EXPECT_THAT(scalar.out, HasSubstr("(scalar kernel)"));
  EXPECT_THAT(scalar.out, HasSubstr("\n     1 "));
  if (__builtin_cpu_supports("avx512f")) {
    EXPECT_THAT(scalar.out,
                HasSubstr("cpu kernels: scalar (capped by MONOLOGUE_CPU_ISA; this CPU has avx512)"));
    const test_process::RunResult avx2 =
        test_process::RunShell("MONOLOGUE_CPU_ISA=avx2 " + test_process::MonologueBinary() + bench);
    ASSERT_EQ(avx2.exit_code, 0) << avx2.err;
    EXPECT_THAT(avx2.out, HasSubstr("(avx2 kernel)"));
    EXPECT_THAT(avx2.out, HasSubstr("cpu kernels: avx2 (capped by MONOLOGUE_CPU_ISA; this CPU has avx512)"));
  }
  const test_process::RunResult bad =
      test_process::RunShell("MONOLOGUE_CPU_ISA=avx512-vnni " + test_process::MonologueBinary() + bench);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("MONOLOGUE_CPU_ISA='avx512-vnni': expected scalar, avx2 or avx512"));
  EXPECT_THAT(bad.out, ::testing::Not(HasSubstr("batch")));
}

}  // namespace
}  // namespace monologue
