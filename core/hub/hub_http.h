// (internal) The Hub's HTTP side, over libcurl: the HEAD that resolves a file to its commit, etag, size and
// download URL, and the resumable GET of its bytes into a part file, with the Hub's errors turned into one
// sentence each. Defined only in builds with libcurl (MONOLOGUE_HAVE_CURL). Torch-free.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/hub/hub.h"

namespace monologue::hub::internal {

// "1.5 GB": sizes in progress bars and messages.
std::string HumanBytes(double bytes);

// libcurl's process-wide initialisation, once.
void GlobalInit();

// What the Hub says about one file at one revision.
struct RemoteFile {
  std::string commit;
  std::string etag;
  int64_t size = -1;
  std::string url;  // where to GET the bytes
};

// HEAD ENDPOINT/REPO/resolve/REVISION/FILE, following relative redirects only (a renamed repo), as
// huggingface_hub does: an absolute redirect (LFS files, to the CDN) carries the metadata itself.
absl::StatusOr<RemoteFile> Metadata(const HubOptions& o, const std::string& repo, const std::string& filename,
                                    const std::string& revision);

// GETs `url` into `part` (appending from its current size with a Range request). OK when the body is
// complete; the partial file stays for a later resume otherwise. DATA_LOSS when the server refuses the
// range (416: the part file is deleted, start over).
absl::Status Fetch(const HubOptions& o, const std::string& url, const std::filesystem::path& part,
                   const RemoteFile& remote, const std::string& repo, const std::string& filename);

}  // namespace monologue::hub::internal
