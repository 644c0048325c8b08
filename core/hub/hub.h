// Downloads from the Hugging Face Hub into the local cache, in the exact layout `huggingface_hub` uses, so
// Python tools and monologue share one cache:
//
//   $HF_HUB_CACHE/models--OWNER--NAME/blobs/<etag>                 the file's bytes
//   $HF_HUB_CACHE/models--OWNER--NAME/snapshots/<commit>/<file>    a relative symlink to ../../blobs/<etag>
//   $HF_HUB_CACHE/models--OWNER--NAME/refs/<revision>              the commit a branch or tag points to
//   $HF_HUB_CACHE/.locks/models--OWNER--NAME/<etag>.lock           held while one process downloads a blob
//
// Protocol (what the Hub and huggingface_hub do): HEAD ENDPOINT/REPO/resolve/REVISION/FILE without following
// absolute redirects gives X-Repo-Commit, the etag (X-Linked-Etag for LFS files, else ETag) and the size
// (X-Linked-Size, else Content-Length); a GET of the same URL (or the redirect's target) gives the bytes.
// Bytes go to blobs/<etag>.incomplete first, which a later run resumes with a Range request; an LFS file's
// sha256 must equal its etag; only then is the blob renamed into place and the snapshot link made, so a
// snapshot never holds a half-written file.
//
// Torch-free. Built with libcurl (MONOLOGUE_HAVE_CURL) it downloads; without, only the cache is read and a
// miss says so.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace monologue::hub {

struct HubOptions {
  std::string endpoint = "https://huggingface.co";  // no trailing slash
  std::filesystem::path cache_dir;                  // the hub cache (models--* folders)
  std::string token;                                // sent as "Authorization: Bearer TOKEN" when set
  bool offline = false;                             // cache only: never a request
  bool progress = false;                            // progress bars on stderr
  // Ask the Hub which commit `revision` is even when the file is cached (`monologue download`); otherwise
  // a file present in the snapshot refs/<revision> names is used with no request at all.
  bool check_remote = false;
  long connect_timeout_s = 15;
  long stall_timeout_s = 60;  // abort when less than 1 byte/s arrives for this long

  // From the environment, as huggingface_hub reads it: HF_ENDPOINT; HF_HUB_CACHE, else HF_HOME/hub, else
  // ~/.cache/huggingface/hub; HF_HUB_OFFLINE (1/ON/YES/TRUE); HF_TOKEN, else the file HF_TOKEN_PATH, else
  // HF_HOME/token (~/.cache/huggingface/token, what `huggingface-cli login` writes). Progress bars when
  // stderr is a terminal (HF_HUB_DISABLE_PROGRESS_BARS=1 turns them off).
  static HubOptions FromEnvironment();
};

// True when this build can download (libcurl).
bool DownloadsSupported();

// "models--OWNER--NAME". INVALID_ARGUMENT unless `repo` is "OWNER/NAME".
absl::StatusOr<std::string> RepoFolderName(const std::string& repo);

// The cached copy of `filename` in `repo` at `revision` (a branch, tag or commit), or NOT_FOUND. With
// revision "main" and no refs/main, the newest snapshot holding the file (caches made by hand).
absl::StatusOr<std::filesystem::path> FindCachedFile(const std::filesystem::path& cache_dir,
                                                     const std::string& repo, const std::string& filename,
                                                     const std::string& revision = "main");

// `filename` of `repo` at `revision`: the cached copy, else downloaded into the cache. Returns the path in
// snapshots/<commit>/. Errors are one sentence saying what to do: NOT_FOUND (no such repo, file or
// revision; or offline and not cached, see IsCacheOnlyMiss), PERMISSION_DENIED (gated or private repo),
// UNAVAILABLE (Hub unreachable, download interrupted: run again to resume), DATA_LOSS (sha256 mismatch),
// RESOURCE_EXHAUSTED (disk full), FAILED_PRECONDITION (built without libcurl and not cached).
absl::StatusOr<std::filesystem::path> DownloadFile(const HubOptions& options, const std::string& repo,
                                                   const std::string& filename,
                                                   const std::string& revision = "main");

// The model files of `repo` at `revision`: config.json and the files it names (moshi_name, mimi_name,
// tokenizer_name, mimi_config_name, lora_name; `hf://OWNER/NAME/PATH` names come from that repo), or
// without a config.json the legacy Moshi 7B names. `files`, when not empty, is fetched instead. Returns the
// snapshot folder (snapshots/<commit>).
absl::StatusOr<std::filesystem::path> DownloadModel(const HubOptions& options, const std::string& repo,
                                                    const std::string& revision = "main",
                                                    const std::vector<std::string>& files = {});

// The file names DownloadModel fetches for a parsed config.json (relative names first, then hf:// refs).
std::vector<std::string> ModelFileNames(const std::string& config_json_text, std::string* error);

// True for the NOT_FOUND/FAILED_PRECONDITION a cache-only run (offline, or no libcurl) returns for a file
// that is not cached: callers may fall back to their own cache diagnostics.
bool IsCacheOnlyMiss(const absl::Status& status);

}  // namespace monologue::hub
