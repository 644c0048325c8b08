#include "core/io/output_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace monologue {

namespace fs = std::filesystem;

namespace {

// Temporary files not yet committed, for the signal handler: it may only unlink() paths it can read without
// locks, so they sit in fixed slots as heap copies (written before a slot is published, freed after it is
// emptied).
constexpr int kSlots = 256;
std::atomic<char*> g_temporaries[kSlots];
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

void RemoveTemporariesAndDie(int signal_number) {
  for (auto& slot : g_temporaries) {
    if (char* p = slot.load()) ::unlink(p);
  }
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

void InstallHandlerOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int s : kSignals) {
      struct sigaction current {};
      // Only where nobody has chosen otherwise (a program's own handler, or nohup's SIG_IGN, stays).
      if (::sigaction(s, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) continue;
      struct sigaction action {};
      action.sa_handler = RemoveTemporariesAndDie;
      sigemptyset(&action.sa_mask);
      ::sigaction(s, &action, nullptr);
    }
  });
}

void Register(const std::string& path) {
  InstallHandlerOnce();
  char* copy = ::strdup(path.c_str());
  if (copy == nullptr) return;
  for (auto& slot : g_temporaries) {
    char* expected = nullptr;
    if (slot.compare_exchange_strong(expected, copy)) return;
  }
  std::free(copy);  // more than kSlots at once: this one is removed by the destructor only
}

void Unregister(const std::string& path) {
  for (auto& slot : g_temporaries) {
    char* p = slot.load();
    if (p != nullptr && path == p && slot.compare_exchange_strong(p, nullptr)) {
      std::free(p);
      return;
    }
  }
}

// `path` with symbolic links followed: the kernel's answer for an existing file (which also knows the
// /proc/self/fd links behind /dev/stdout), else the dangling link's target, read link by link.
std::string FollowLinks(std::string path) {
  if (char* real = ::realpath(path.c_str(), nullptr)) {
    std::string resolved = real;
    std::free(real);
    return resolved;
  }
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) break;
    std::error_code ec;
    fs::path target = fs::read_symlink(path, ec);
    if (ec) break;
    path = target.is_absolute() ? target.string() : (fs::path(path).parent_path() / target).string();
  }
  return path;
}

absl::Status WriteError(const std::string& path, int error) {
  return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(error)));
}

}  // namespace

absl::StatusOr<OutputFile> OutputFile::Prepare(const std::string& path, NewFile new_file) {
  OutputFile out;
  out.path_ = path;
  std::error_code ec;
  if (fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path(), ec);
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write ", path, ": it is a directory"));
  }
  if (exists && (!S_ISREG(st.st_mode) || st.st_nlink > 1)) {
    out.final_path_ = out.write_path_ = path;  // opened through the path, as the kernel resolves it
    return out;
  }
  out.final_path_ = FollowLinks(path);
  if (!exists && new_file == NewFile::kInPlace) {
    const int fd = ::open(out.final_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return WriteError(path, errno);
    ::close(fd);
    out.write_path_ = out.final_path_;
    out.created_ = true;
    return out;
  }
  if (exists) {
    out.keep_mode_ = true;
    out.mode_ = st.st_mode & 07777;
  }
  static std::atomic<int> counter{0};
  out.write_path_ = absl::StrCat(out.final_path_, ".tmp.", ::getpid(), ".", counter++);
  const int fd = ::open(out.write_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int error = errno;
    // A folder that takes no new files, holding a file that may be written: write that file itself.
    if (exists && ::access(out.final_path_.c_str(), W_OK) == 0) {
      out.write_path_ = out.final_path_;
      return out;
    }
    return WriteError(path, error);
  }
  ::close(fd);
  out.replaces_ = true;
  Register(out.write_path_);
  return out;
}

OutputFile::OutputFile(OutputFile&& other) noexcept { *this = std::move(other); }

OutputFile& OutputFile::operator=(OutputFile&& other) noexcept {
  if (this != &other) {
    Abandon();
    path_ = std::move(other.path_);
    final_path_ = std::move(other.final_path_);
    write_path_ = std::move(other.write_path_);
    replaces_ = other.replaces_;
    created_ = other.created_;
    keep_mode_ = other.keep_mode_;
    mode_ = other.mode_;
    done_ = other.done_;
    other.done_ = true;  // the moved-from object owns no temporary
  }
  return *this;
}

OutputFile::~OutputFile() { Abandon(); }

absl::Status OutputFile::Commit() {
  if (done_) return absl::FailedPreconditionError(absl::StrCat("writing ", path_, ": already finished"));
  done_ = true;
  if (!replaces_) return absl::OkStatus();
  if (keep_mode_) ::chmod(write_path_.c_str(), mode_);
  if (::rename(write_path_.c_str(), final_path_.c_str()) != 0) {
    const int error = errno;
    ::unlink(write_path_.c_str());
    Unregister(write_path_);
    return WriteError(path_, error);
  }
  Unregister(write_path_);
  return absl::OkStatus();
}

void OutputFile::Abandon() {
  if (done_) return;
  done_ = true;
  if (created_) ::unlink(write_path_.c_str());
  if (!replaces_) return;
  ::unlink(write_path_.c_str());
  Unregister(write_path_);
}

absl::Status CheckWritable(const std::string& path) {
  absl::StatusOr<OutputFile> file = OutputFile::Prepare(path);
  if (!file.ok()) return file.status();
  if (file->in_place() && ::access(file->write_path().c_str(), W_OK) != 0) return WriteError(path, errno);
  file->Abandon();
  return absl::OkStatus();
}

absl::Status WriteFileReplacing(const std::string& path, const std::string& bytes) {
  absl::StatusOr<OutputFile> file = OutputFile::Prepare(path);
  if (!file.ok()) return file.status();
  const int fd = ::open(file->write_path().c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return WriteError(path, errno);
  size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + at, bytes.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : EIO;
      ::close(fd);
      return WriteError(path, error);
    }
    at += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return WriteError(path, errno);
  return file->Commit();
}

}  // namespace monologue
