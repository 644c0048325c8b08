// Child processes for the end-to-end tests (tests/cli, tests/service): one-shot commands with their output
// captured and a time limit, and long-running children (`monologue serve`, nginx) read line by line and
// always reaped. No test hangs on a stuck child: every wait is bounded, and a child still running at the
// limit (or when its owner goes out of scope) is killed with its process group.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace monologue::test_process {

// The built `monologue` binary (MONOLOGUE_BINARY_DIR/monologue).
std::string MonologueBinary();

// `s` in single quotes for /bin/sh (embedded quotes escaped).
std::string ShellQuote(const std::string& s);

struct RunOptions {
  std::string stdin_file;        // the child's stdin; empty: /dev/null
  double timeout_seconds = 600;  // then the child's process group is killed (SIGKILL)
};

struct RunResult {
  int exit_code = -1;  // -1: killed by a signal (timed_out tells whether we killed it)
  bool timed_out = false;
  std::string out;  // everything it wrote on stdout
  std::string err;  // and on stderr
};

// Runs `command` with /bin/sh -c (redirections, "NAME=VALUE cmd" prefixes and pipes work) in a process
// group of its own, capturing stdout and stderr.
RunResult RunShell(const std::string& command, const RunOptions& options = {});

// RunShell("<monologue binary> " + args): `args` is already a shell word list (quote with ShellQuote).
RunResult RunMonologue(const std::string& args, const RunOptions& options = {});

// A long-running child started with execv (no shell), stdout on a pipe, stderr inherited.
class ChildProcess {
 public:
  // argv[0] is the program's path. started() is false when it could not be started.
  explicit ChildProcess(std::vector<std::string> argv);
  ~ChildProcess();  // SIGKILL to the group and reap, unless Wait() already reaped it
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // The next line on its stdout without the newline; "" at end of output or after `seconds`.
  std::string ReadLine(double seconds);
  // Sends `signal` to the child (not its group).
  void Signal(int signal);
  // Its exit status once it exits within `seconds`; -1 after a signal or on timeout (still running then).
  int Wait(double seconds);

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  bool reaped_ = false;
  std::string pending_;  // read from stdout, not yet returned as a line
};

}  // namespace monologue::test_process
