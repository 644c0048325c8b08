// The huggingface_hub cache layout (hub_cache.h) and the public cache lookups of hub.h.
#include "core/hub/hub_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/hub/hub.h"

namespace monologue::hub {

namespace fs = std::filesystem;

namespace internal {

std::string UniqueSuffix() {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(".tmp", ::getpid(), "-", counter.fetch_add(1));
}

bool IsCommitHash(const std::string& s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(c) != 0; });
}

bool IsSha256(const std::string& s) {
  return s.size() == 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(c) || (c >= 'a' && c <= 'f'); });
}

std::string ReadFirstLine(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return std::string(absl::StripAsciiWhitespace(line));
}

absl::Status ValidateFilename(const std::string& filename) {
  if (filename.empty() || filename.front() == '/' || absl::StrContains(filename, "\\")) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid file name '", filename, "' in a Hugging Face repo"));
  }
  for (absl::string_view part : absl::StrSplit(filename, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid file name '", filename, "' in a Hugging Face repo"));
    }
  }
  return absl::OkStatus();
}

// Writes `text` to `path` through a temporary file and a rename (readers never see a partial ref).
absl::Status WriteFileAtomically(const fs::path& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  const fs::path tmp = path.string() + UniqueSuffix();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    // Named by the file meant (the temporary name would only puzzle), with the reason.
    if (!out) {
      const int error = errno;
      fs::remove(tmp, ec);
      return absl::PermissionDeniedError(
          absl::StrCat("cannot write ", path.string(),
                       " in the Hugging Face cache: ", error != 0 ? std::strerror(error) : "write failed"));
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(tmp, ec);
    return absl::InternalError(
        absl::StrCat("cannot write ", path.string(), " in the Hugging Face cache: ", why));
  }
  return absl::OkStatus();
}

// snapshots/<commit>/<filename> -> ../../blobs/<etag> (one more ../ per folder in filename), as
// huggingface_hub links them.
absl::Status LinkIntoSnapshot(const fs::path& repo_dir, const std::string& commit,
                              const std::string& filename, const std::string& etag) {
  const fs::path pointer = repo_dir / "snapshots" / commit / filename;
  std::error_code ec;
  fs::create_directories(pointer.parent_path(), ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", pointer.parent_path().string(), ": ", ec.message()));
  }
  std::string target;
  for (size_t i = 0, n = std::count(filename.begin(), filename.end(), '/') + 2; i < n; ++i) target += "../";
  target += "blobs/" + etag;
  const fs::path tmp = pointer.string() + UniqueSuffix();
  fs::remove(tmp, ec);
  fs::create_symlink(target, tmp, ec);
  if (!ec) fs::rename(tmp, pointer, ec);
  if (ec) {
    // A file system without symlinks: huggingface_hub copies the blob then.
    fs::remove(tmp, ec);
    fs::copy_file(repo_dir / "blobs" / etag, pointer, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", pointer.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FileLock>> FileLock::Acquire(const fs::path& path, bool progress) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create the lock file ", path.string(), ": ", std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (progress)
      std::fprintf(stderr, "waiting for another process downloading the same file (%s)\n", path.c_str());
    if (::flock(fd, LOCK_EX) != 0) {
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot lock ", path.string(), ": ", std::strerror(errno)));
    }
  }
  return std::unique_ptr<FileLock>(new FileLock(fd));
}

FileLock::~FileLock() {
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

}  // namespace internal

using internal::IsCommitHash;
using internal::ReadFirstLine;
using internal::ValidateFilename;

absl::StatusOr<std::string> RepoFolderName(const std::string& repo) {
  std::vector<std::string> parts = absl::StrSplit(repo, '/');
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty() || parts[0] == ".." || parts[1] == "..") {
    return absl::InvalidArgumentError(absl::StrCat("Hugging Face repo '", repo, "': expected OWNER/NAME"));
  }
  return absl::StrCat("models--", parts[0], "--", parts[1]);
}

absl::StatusOr<fs::path> FindCachedFile(const fs::path& cache_dir, const std::string& repo,
                                        const std::string& filename, const std::string& revision) {
  auto folder = RepoFolderName(repo);
  if (!folder.ok()) return folder.status();
  if (auto s = ValidateFilename(filename); !s.ok()) return s;
  const fs::path repo_dir = cache_dir / *folder;
  std::error_code ec;
  std::string commit = ReadFirstLine(repo_dir / "refs" / revision);
  if (commit.empty() && IsCommitHash(revision)) commit = revision;
  if (!commit.empty() && fs::exists(repo_dir / "snapshots" / commit / filename, ec)) {
    return repo_dir / "snapshots" / commit / filename;
  }
  if (commit.empty() && revision == "main" && fs::is_directory(repo_dir / "snapshots", ec)) {
    fs::path best;
    fs::file_time_type newest{};
    for (const auto& entry : fs::directory_iterator(repo_dir / "snapshots", ec)) {
      if (!fs::exists(entry.path() / filename, ec)) continue;
      const auto t = entry.last_write_time(ec);
      if (best.empty() || t > newest) {
        best = entry.path() / filename;
        newest = t;
      }
    }
    if (!best.empty()) return best;
  }
  return absl::NotFoundError(absl::StrCat(repo, "/", filename, " (revision ", revision,
                                          ") is not in the local Hugging Face cache ", repo_dir.string()));
}

}  // namespace monologue::hub
