// The local Hugging Face cache (the `huggingface_hub` layout): where a repo's snapshot lives.
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace monologue {

// $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
std::filesystem::path HfHubCacheDir();

// The snapshot folder of `repo` ("owner/name") at `revision` in the cache: the commit refs/<revision> names
// (or the revision itself, a commit hash); for "main" without a refs/main, the newest snapshot. A ref whose
// snapshot is missing (an interrupted download, a cleaned cache) is NOT_FOUND, never another snapshot.
// INVALID_ARGUMENT for a malformed name; NOT_FOUND (saying where it looked and how to fetch it) otherwise.
absl::StatusOr<std::filesystem::path> FindHfSnapshot(const std::string& repo,
                                                     const std::string& revision = "main");

// The snapshot of `repo` at `revision` holding config.json and every file it names, downloaded into the
// cache when missing (core/hub/hub.h, settings from the environment: HF_ENDPOINT, HF_TOKEN,
// HF_HUB_OFFLINE, ...). Errors are one sentence saying what to do.
absl::StatusOr<std::filesystem::path> FetchHfModel(const std::string& repo, const std::string& revision = "main");

// One file of `repo`, from the cache or downloaded.
absl::StatusOr<std::filesystem::path> FetchHfFile(const std::string& repo, const std::string& filename,
                                                  const std::string& revision = "main");

// Resolves a model repo (`--hf-repo owner/name`) to its snapshot in the local Hugging Face cache ($HF_HUB_CACHE, else
// $HF_HOME/hub, else ~/.cache/huggingface/hub; revision from refs/<revision>, else the newest snapshot),
// downloading config.json and the files it names from the Hub when missing (core/hub/hub.h; not with
// HF_HUB_OFFLINE=1), and checks that they are all there. NOT_FOUND listing what is missing (and where it
// looked); Hub errors (gated, missing repo, network) as one sentence.
absl::StatusOr<std::string> ResolveHfRepoSnapshot(const std::string& repo, const std::string& revision = "main");

}  // namespace monologue
