#include "core/config/hf_cache.h"

#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/hub/hub.h"

namespace monologue {

namespace fs = std::filesystem;

fs::path HfHubCacheDir() {
  if (const char* hub = std::getenv("HF_HUB_CACHE"); hub != nullptr && *hub != '\0') return hub;
  if (const char* home = std::getenv("HF_HOME"); home != nullptr && *home != '\0') return fs::path(home) / "hub";
  const char* user_home = std::getenv("HOME");
  return fs::path(user_home ? user_home : ".") / ".cache" / "huggingface" / "hub";
}

absl::StatusOr<fs::path> FindHfSnapshot(const std::string& repo) {
  std::vector<std::string> parts = absl::StrSplit(repo, '/');
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
    return absl::InvalidArgumentError(absl::StrCat("Hugging Face repo '", repo, "': expected OWNER/NAME"));
  }
  const fs::path repo_dir = HfHubCacheDir() / absl::StrCat("models--", parts[0], "--", parts[1]);
  const std::string hint = absl::StrCat(" (fetch it with `monologue download ", repo, "`)");
  std::error_code ec;
  if (!fs::is_directory(repo_dir / "snapshots", ec)) {
    return absl::NotFoundError(absl::StrCat(repo, " is not in the local Hugging Face cache: no ",
                                            (repo_dir / "snapshots").string(), hint));
  }
  std::ifstream ref(repo_dir / "refs" / "main");
  std::string revision;
  if (ref && std::getline(ref, revision) && !revision.empty() &&
      fs::is_directory(repo_dir / "snapshots" / revision, ec)) {
    return repo_dir / "snapshots" / revision;
  }
  fs::path snapshot;
  fs::file_time_type newest{};
  for (const auto& entry : fs::directory_iterator(repo_dir / "snapshots", ec)) {
    if (!entry.is_directory()) continue;
    auto t = entry.last_write_time(ec);
    if (snapshot.empty() || t > newest) {
      snapshot = entry.path();
      newest = t;
    }
  }
  if (snapshot.empty()) {
    return absl::NotFoundError(absl::StrCat(repo, ": no snapshot under ", (repo_dir / "snapshots").string(), hint));
  }
  return snapshot;
}

absl::StatusOr<fs::path> FetchHfModel(const std::string& repo, const std::string& revision) {
  return hub::DownloadModel(hub::HubOptions::FromEnvironment(), repo, revision);
}

absl::StatusOr<fs::path> FetchHfFile(const std::string& repo, const std::string& filename,
                                     const std::string& revision) {
  return hub::DownloadFile(hub::HubOptions::FromEnvironment(), repo, filename, revision);
}

}  // namespace monologue
