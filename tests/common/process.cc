#include "tests/common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

namespace monologue::test_process {
namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point DeadlineIn(double seconds) {
  return Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

int MillisecondsLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Appends what `fd` has to `out`; false once it reached end of file (or failed).
bool Drain(int fd, std::string& out) {
  char buf[4096];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      return false;
    } else {
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }
  }
}

int ExitCode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

}  // namespace

std::string MonologueBinary() { return std::string(MONOLOGUE_BINARY_DIR) + "/monologue"; }

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

RunResult RunShell(const std::string& command, const RunOptions& options) {
  RunResult result;
  const std::string stdin_path = options.stdin_file.empty() ? "/dev/null" : options.stdin_file;
  const int in = open(stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    result.err = "test_process: cannot open " + stdin_path + " as stdin";
    return result;
  }
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in);
    return result;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(in);
    close(out[0]);
    close(out[1]);
    return result;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec (the test process has other threads).
    setpgid(0, 0);
    dup2(in, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(in);
  close(out[1]);
  close(err[1]);
  if (pid < 0) {
    close(out[0]);
    close(err[0]);
    result.err = "test_process: fork failed";
    return result;
  }
  setpgid(pid, pid);  // also here: whichever of parent and child runs first
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);
  const auto deadline = DeadlineIn(options.timeout_seconds);
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    pollfd fds[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
    const int left = MillisecondsLeft(deadline);
    if (left == 0) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    if (poll(fds, 2, left) < 0 && errno != EINTR) break;
    if (out_open && fds[0].revents != 0) out_open = Drain(out[0], result.out);
    if (err_open && fds[1].revents != 0) err_open = Drain(err[0], result.err);
  }
  close(out[0]);
  close(err[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = ExitCode(status);
  return result;
}

RunResult RunMonologue(const std::string& args, const RunOptions& options) {
  return RunShell(MonologueBinary() + " " + args, options);
}

ChildProcess::ChildProcess(std::vector<std::string> argv) {
  int out[2];
  if (argv.empty() || pipe2(out, O_CLOEXEC) != 0) return;
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(out[1], 1);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  if (pid < 0) {
    close(out[0]);
    return;
  }
  setpgid(pid, pid);
  pid_ = pid;
  out_fd_ = out[0];
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (out_fd_ >= 0) close(out_fd_);
}

std::string ChildProcess::ReadLine(double seconds) {
  const auto deadline = DeadlineIn(seconds);
  bool open = out_fd_ >= 0;
  while (pending_.find('\n') == std::string::npos && open) {
    const int left = MillisecondsLeft(deadline);
    if (left == 0) break;
    pollfd fd = {out_fd_, POLLIN, 0};
    if (poll(&fd, 1, left) < 0 && errno != EINTR) break;
    if (fd.revents != 0) open = Drain(out_fd_, pending_);
  }
  const size_t nl = pending_.find('\n');
  if (nl == std::string::npos) return "";
  std::string line = pending_.substr(0, nl);
  pending_.erase(0, nl + 1);
  return line;
}

void ChildProcess::Signal(int signal) {
  if (pid_ > 0 && !reaped_) kill(pid_, signal);
}

int ChildProcess::Wait(double seconds) {
  if (pid_ <= 0 || reaped_) return -1;
  const auto deadline = DeadlineIn(seconds);
  while (true) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return ExitCode(status);
    }
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace monologue::test_process
