// How a command's output file replaces what is at its path, so that a run that fails (or is interrupted)
// leaves that path as it was, and a path that is not a plain file is written, not replaced:
//   - nothing there, or a regular file: the bytes go to a temporary file next to it, renamed over it by
//     Commit (the replaced file's permission bits are kept); a symbolic link is followed, so its target is
//     the file replaced and the link stays;
//   - a device, FIFO or socket (/dev/null, /dev/stdout, a named pipe), or a regular file with other hard
//     links: the path itself is written (renaming would put a plain file in place of the device or break
//     the link);
//   - a directory: refused.
// Temporary files not committed are removed by the destructor, and on SIGINT, SIGTERM or SIGHUP before the
// process ends (the handler is installed with the first temporary and re-raises the signal).
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace monologue {

class OutputFile {
 public:
  enum class NewFile {
    kTemporary,  // nothing at the path yet: still a temporary, so the name appears only when complete
    kInPlace,    // nothing at the path yet: write it there (a listener can follow it as it grows); Abandon
                 // removes it, an interrupted run leaves what was written
  };
  // Creates the missing parent folders of `path`.
  static absl::StatusOr<OutputFile> Prepare(const std::string& path, NewFile new_file = NewFile::kTemporary);

  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&& other) noexcept;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile();

  // Where to write the bytes (a temporary file, or the path itself).
  const std::string& write_path() const { return write_path_; }
  // The path as the user gave it, for messages.
  const std::string& path() const { return path_; }
  bool in_place() const { return !replaces_; }

  // Puts the written file in place (nothing to do when written in place). Errors name path().
  absl::Status Commit();
  // Removes the temporary file (nothing when written in place): the path keeps what it had.
  void Abandon();

 private:
  OutputFile() = default;

  std::string path_;        // as given
  std::string final_path_;  // symbolic links followed
  std::string write_path_;
  bool replaces_ = false;  // write_path_ is a temporary renamed over final_path_
  bool created_ = false;   // write_path_ is final_path_, created by this run (kInPlace)
  bool keep_mode_ = false;
  mode_t mode_ = 0;
  bool done_ = false;
};

// Whether `path` can be written as an OutputFile would write it (its folder created, a temporary made there
// and removed): checked before a long run, so that an unwritable output fails in a moment, not after the
// work.
absl::Status CheckWritable(const std::string& path);

// `bytes` into `path` through an OutputFile. Errors name `path` and why.
absl::Status WriteFileReplacing(const std::string& path, const std::string& bytes);

}  // namespace monologue
