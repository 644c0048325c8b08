#include "core/config/hf_cache.h"

#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/config/model_config.h"
#include "core/hub/hub.h"
#include "core/util/status_macros.h"

namespace monologue {

namespace fs = std::filesystem;

fs::path HfHubCacheDir() {
  if (const char* hub = std::getenv("HF_HUB_CACHE"); hub != nullptr && *hub != '\0') return hub;
  if (const char* home = std::getenv("HF_HOME"); home != nullptr && *home != '\0') return fs::path(home) / "hub";
  const char* user_home = std::getenv("HOME");
  return fs::path(user_home ? user_home : ".") / ".cache" / "huggingface" / "hub";
}

absl::StatusOr<fs::path> FindHfSnapshot(const std::string& repo, const std::string& revision) {
  std::vector<std::string> parts = absl::StrSplit(repo, '/');
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
    return absl::InvalidArgumentError(absl::StrCat("Hugging Face repo '", repo, "': expected OWNER/NAME"));
  }
  const fs::path repo_dir = HfHubCacheDir() / absl::StrCat("models--", parts[0], "--", parts[1]);
  const std::string hint =
      absl::StrCat(" (fetch it with `monologue download ", repo,
                   revision == "main" ? "" : absl::StrCat(" --revision ", revision), "`)");
  std::error_code ec;
  if (!fs::is_directory(repo_dir / "snapshots", ec)) {
    return absl::NotFoundError(absl::StrCat(repo, " is not in the local Hugging Face cache: no ",
                                            (repo_dir / "snapshots").string(), hint));
  }
  // A revision of ".." or "a/../../b" must not leave the repo's folders.
  if (revision.empty() || revision.find("..") != std::string::npos || revision.front() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(repo, ": revision '", revision, "' is not a branch, tag or commit"));
  }
  std::ifstream ref(repo_dir / "refs" / revision);
  std::string commit;
  if (ref && std::getline(ref, commit) && !commit.empty()) {
    if (fs::is_directory(repo_dir / "snapshots" / commit, ec)) return repo_dir / "snapshots" / commit;
    return absl::NotFoundError(absl::StrCat(repo, ": refs/", revision, " in the cache names commit ", commit,
                                            ", whose snapshot ", (repo_dir / "snapshots" / commit).string(),
                                            " is missing (an interrupted download or a cleaned cache)",
                                            hint));
  }
  if (fs::is_directory(repo_dir / "snapshots" / revision, ec)) return repo_dir / "snapshots" / revision;
  if (revision != "main") {
    return absl::NotFoundError(
        absl::StrCat(repo, ": revision '", revision, "' is not in the local Hugging Face cache ", "(no refs/",
                     revision, " or snapshot of that name under ", repo_dir.string(), ")", hint));
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

absl::StatusOr<std::string> ResolveHfRepoSnapshot(const std::string& repo, const std::string& revision) {
  const std::string fetch_hint =
      absl::StrCat(" (fetch it with `monologue download ", repo, "`, or pass --model DIR)");
  // From the cache, else from the Hub; a cache-only miss (HF_HUB_OFFLINE=1, no libcurl) falls through to
  // the cache diagnostics below, which name every missing file.
  auto fetched = FetchHfModel(repo, revision);
  if (!fetched.ok() && !hub::IsCacheOnlyMiss(fetched.status())) return fetched.status();
  auto found = fetched.ok() ? absl::StatusOr<fs::path>(*fetched) : FindHfSnapshot(repo, revision);
  if (!found.ok()) {
    if (absl::IsNotFound(found.status())) {
      return absl::NotFoundError(absl::StrCat(found.status().message(), "; or pass --model DIR"));
    }
    return found.status();
  }
  const fs::path snapshot = *found;
  std::error_code ec;
  if (!fs::exists(snapshot / "config.json", ec)) {
    return absl::NotFoundError(
        absl::StrCat(repo, ": the cached snapshot ", snapshot.string(), " has no config.json", fetch_hint));
  }
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(snapshot));
  std::vector<std::string> missing;
  for (const std::string* name : {&config.moshi_name, &config.mimi_name, &config.tokenizer_name}) {
    if (auto p = ResolveModelFile(snapshot, *name); !p.ok()) missing.push_back(*name);
  }
  if (!missing.empty()) {
    return absl::NotFoundError(absl::StrCat(repo, ": the cached snapshot ", snapshot.string(), " lacks ",
                                            absl::StrJoin(missing, ", "), fetch_hint));
  }
  return snapshot.string();
}

}  // namespace monologue
