// (internal) The huggingface_hub cache layout on disk (hub.h's header describes it): file-name and hash
// checks, refs written atomically, snapshot links to blobs, and the per-blob download lock. The public
// cache lookups (RepoFolderName, FindCachedFile) are defined with these in hub_cache.cc. Torch-free.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace monologue::hub::internal {

// A name no other process or thread uses at the same time, for temporary files renamed into place.
std::string UniqueSuffix();

bool IsCommitHash(const std::string& s);
bool IsSha256(const std::string& s);

// The first line of a file without surrounding white space ("" when it cannot be read): a ref's commit,
// a token file.
std::string ReadFirstLine(const std::filesystem::path& path);

// INVALID_ARGUMENT for a repo file name that could leave the snapshot folder (absolute, "..", backslash).
absl::Status ValidateFilename(const std::string& filename);

// Writes `text` to `path` through a temporary file and a rename (readers never see a partial ref).
absl::Status WriteFileAtomically(const std::filesystem::path& path, const std::string& text);

// snapshots/<commit>/<filename> -> ../../blobs/<etag> (one more ../ per folder in filename), as
// huggingface_hub links them; a copy of the blob where the file system has no symlinks.
absl::Status LinkIntoSnapshot(const std::filesystem::path& repo_dir, const std::string& commit,
                              const std::string& filename, const std::string& etag);

// A blocking exclusive lock on .locks/models--X--Y/<etag>.lock (fcntl/flock, as huggingface_hub's
// filelock), released on destruction.
class FileLock {
 public:
  // Says on stderr (with `progress`) when it has to wait for another process.
  static absl::StatusOr<std::unique_ptr<FileLock>> Acquire(const std::filesystem::path& path, bool progress);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace monologue::hub::internal
