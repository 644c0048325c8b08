// The shared child-process helper of the end-to-end suites (tests/common/process.h): output captured apart,
// exit codes, stdin from a file, and no wait without a bound (a stuck child is killed with its group).
#include <signal.h>

#include <chrono>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/common/process.h"

namespace monologue::test_process {
namespace {

TEST(TestProcess, RunShellCapturesStdoutStderrAndTheExitCode) {
  const RunResult r = RunShell("printf out; printf err >&2; exit 3");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.out, "out");
  EXPECT_EQ(r.err, "err");
}

TEST(TestProcess, StdinComesFromTheGivenFileElseIsEmpty) {
  const char* tmp = std::getenv("MONOLOGUE_TEST_TMP");
  const std::string path = std::string(tmp != nullptr ? tmp : ".") + "/stdin.txt";
  std::ofstream(path) << "line one\nline two\n";
  EXPECT_EQ(RunShell("wc -l", {.stdin_file = path}).out, "2\n");
  EXPECT_EQ(RunShell("wc -c").out, "0\n");
  const RunResult missing = RunShell("cat", {.stdin_file = path + ".absent"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("stdin.txt.absent"), std::string::npos) << missing.err;
}

TEST(TestProcess, AChildPastItsTimeLimitIsKilledWithItsGroup) {
  const auto start = std::chrono::steady_clock::now();
  // The grandchild (sleep) holds the output pipes too: killing only the shell would still hang the read.
  RunOptions quick;
  quick.timeout_seconds = 0.5;
  const RunResult r = RunShell("echo started; sleep 30 & wait", quick);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.out, "started\n");
  EXPECT_LT(seconds, 10.0);
}

TEST(TestProcess, ChildProcessLinesSignalAndBoundedWait) {
  ChildProcess child({"/bin/sh", "-c", "echo first; echo second; trap 'exit 7' TERM; while true; do sleep 0.05; done"});
  ASSERT_TRUE(child.started());
  EXPECT_EQ(child.ReadLine(10), "first");
  EXPECT_EQ(child.ReadLine(10), "second");
  EXPECT_EQ(child.ReadLine(0.2), "");  // nothing more: returns at the bound
  EXPECT_EQ(child.Wait(0.2), -1);      // still running
  child.Signal(SIGTERM);
  EXPECT_EQ(child.Wait(10), 7);
}

TEST(TestProcess, AProgramThatCannotStartEndsAtOnce) {
  ChildProcess child({"/nonexistent/program"});
  ASSERT_TRUE(child.started());  // the fork worked; exec failed in the child
  EXPECT_EQ(child.ReadLine(10), "");
  EXPECT_EQ(child.Wait(10), 127);
}

}  // namespace
}  // namespace monologue::test_process
