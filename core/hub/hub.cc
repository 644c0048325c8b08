// hub.h: options from the environment, DownloadFile (cache first, then the lock / resume / verify / rename /
// link sequence around one blob) and DownloadModel (config.json and the files it names). The cache layout is
// hub_cache.h, the HTTP side hub_http.h.
#include "core/hub/hub.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/hub/hub_cache.h"
#include "core/hub/hub_http.h"
#include "core/hub/sha256.h"
#include "nlohmann/json.hpp"

namespace monologue::hub {

using internal::ReadFirstLine;
using internal::ValidateFilename;
#ifdef MONOLOGUE_HAVE_CURL
using internal::Fetch;
using internal::FileLock;
using internal::GlobalInit;
using internal::HumanBytes;
using internal::IsSha256;
using internal::LinkIntoSnapshot;
using internal::Metadata;
using internal::RemoteFile;
using internal::WriteFileAtomically;
#endif

namespace {

namespace fs = std::filesystem;

constexpr char kCacheOnlyPayload[] = "monologue.hub/cache-only";

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

bool EnvTrue(const char* name) {
  const std::string v = absl::AsciiStrToUpper(Env(name));
  return v == "1" || v == "ON" || v == "YES" || v == "TRUE";
}

absl::Status CacheOnlyMiss(absl::Status status) {
  status.SetPayload(kCacheOnlyPayload, absl::Cord("1"));
  return status;
}

std::string HubHint(const std::string& repo) {
  return absl::StrCat("`monologue download ", repo, "` on a connected machine");
}

#ifdef MONOLOGUE_HAVE_CURL

absl::StatusOr<fs::path> DownloadBlob(const HubOptions& o, const std::string& repo,
                                      const std::string& filename, const std::string& revision,
                                      const fs::path& repo_dir, const std::string& folder) {
  GlobalInit();
  auto remote_or = Metadata(o, repo, filename, revision);
  if (!remote_or.ok()) {
    if (absl::IsUnavailable(remote_or.status()) && o.check_remote) {
      // `monologue download` of something already cached works offline too.
      auto cached = FindCachedFile(o.cache_dir, repo, filename, revision);
      if (cached.ok()) return cached;
    }
    return remote_or.status();
  }
  const RemoteFile remote = *remote_or;
  if (revision != remote.commit) {
    if (auto s = WriteFileAtomically(repo_dir / "refs" / revision, remote.commit); !s.ok()) return s;
  }
  const fs::path pointer = repo_dir / "snapshots" / remote.commit / filename;
  const fs::path blob = repo_dir / "blobs" / remote.etag;
  std::error_code ec;
  if (fs::exists(pointer, ec) && fs::exists(blob, ec)) return pointer;
  if (!fs::exists(blob, ec)) {
    fs::create_directories(blob.parent_path(), ec);
    if (ec) {
      return absl::PermissionDeniedError(absl::StrCat("cannot create the Hugging Face cache folder ",
                                                      blob.parent_path().string(), ": ", ec.message()));
    }
    auto lock = FileLock::Acquire(o.cache_dir / ".locks" / folder / (remote.etag + ".lock"), o.progress);
    if (!lock.ok()) return lock.status();
    if (!fs::exists(blob, ec)) {  // another process may have finished it while we waited
      const fs::path part = blob.string() + ".incomplete";
      for (int attempt = 0;; ++attempt) {
        const bool resumed = fs::exists(part, ec) && fs::file_size(part, ec) > 0;
        if (resumed && o.progress) {
          std::fprintf(stderr, "resuming %s from %s\n", filename.c_str(),
                       HumanBytes(fs::file_size(part, ec)).c_str());
        }
        // A part file that is already complete (a run stopped before the rename) is only checked.
        const bool complete =
            resumed && remote.size >= 0 && static_cast<int64_t>(fs::file_size(part, ec)) == remote.size;
        absl::Status fetched =
            complete ? absl::OkStatus() : Fetch(o, remote.url, part, remote, repo, filename);
        if (absl::IsDataLoss(fetched) && attempt == 0) continue;  // 416: restart from zero
        if (!fetched.ok()) return fetched;
        const int64_t got = static_cast<int64_t>(fs::file_size(part, ec));
        std::string problem;
        if (remote.size >= 0 && got != remote.size) {
          problem = absl::StrCat("has ", got, " bytes, the Hub announced ", remote.size);
        } else if (IsSha256(remote.etag)) {
          auto sha = Sha256File(part);
          if (!sha.ok()) return sha.status();
          if (*sha != remote.etag)
            problem = absl::StrCat("has sha256 ", *sha, ", its etag says ", remote.etag);
        }
        if (problem.empty()) break;
        fs::remove(part, ec);
        if (resumed && attempt == 0) {
          if (o.progress)
            std::fprintf(stderr, "the partial download of %s was corrupt; starting over\n", filename.c_str());
          continue;
        }
        return absl::DataLossError(absl::StrCat("the download of ", repo, "/", filename, " is corrupt (it ",
                                                problem, "); it was deleted: run the command again"));
      }
      ::chmod(
          part.c_str(), 0644 & ~[] {
            const mode_t m = ::umask(0);
            ::umask(m);
            return m;
          }());
      fs::rename(part, blob, ec);
      if (ec)
        return absl::InternalError(
            absl::StrCat("cannot move ", part.string(), " into place: ", ec.message()));
    }
  }
  if (auto s = LinkIntoSnapshot(repo_dir, remote.commit, filename, remote.etag); !s.ok()) return s;
  return pointer;
}

#endif  // MONOLOGUE_HAVE_CURL

}  // namespace

HubOptions HubOptions::FromEnvironment() {
  HubOptions o;
  std::string endpoint = Env("HF_ENDPOINT");
  if (!endpoint.empty()) {
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    o.endpoint = endpoint;
  }
  const std::string home_env = Env("HOME");
  const fs::path hf_home = !Env("HF_HOME").empty()
                               ? fs::path(Env("HF_HOME"))
                               : fs::path(home_env.empty() ? "." : home_env) / ".cache" / "huggingface";
  o.cache_dir = !Env("HF_HUB_CACHE").empty() ? fs::path(Env("HF_HUB_CACHE")) : hf_home / "hub";
  o.offline = EnvTrue("HF_HUB_OFFLINE");
  o.token = std::string(absl::StripAsciiWhitespace(Env("HF_TOKEN")));
  if (o.token.empty())
    o.token = std::string(absl::StripAsciiWhitespace(Env("HUGGING_FACE_HUB_TOKEN")));  // legacy
  if (o.token.empty()) {
    const fs::path token_path =
        !Env("HF_TOKEN_PATH").empty() ? fs::path(Env("HF_TOKEN_PATH")) : hf_home / "token";
    o.token = ReadFirstLine(token_path);
  }
  o.progress = ::isatty(STDERR_FILENO) != 0 && !EnvTrue("HF_HUB_DISABLE_PROGRESS_BARS");
  return o;
}

bool DownloadsSupported() {
#ifdef MONOLOGUE_HAVE_CURL
  return true;
#else
  return false;
#endif
}

bool IsCacheOnlyMiss(const absl::Status& status) { return status.GetPayload(kCacheOnlyPayload).has_value(); }

absl::StatusOr<fs::path> DownloadFile(const HubOptions& options, const std::string& repo,
                                      const std::string& filename, const std::string& revision_in) {
  const std::string revision = revision_in.empty() ? "main" : revision_in;
  auto folder = RepoFolderName(repo);
  if (!folder.ok()) return folder.status();
  if (auto s = ValidateFilename(filename); !s.ok()) return s;
  if (revision.find('/') != std::string::npos && revision.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("invalid revision '", revision, "'"));
  }
  auto cached = FindCachedFile(options.cache_dir, repo, filename, revision);
  if (cached.ok() && (!options.check_remote || options.offline || !DownloadsSupported())) return cached;
  if (options.offline) {
    return CacheOnlyMiss(absl::NotFoundError(absl::StrCat(
        cached.status().message(),
        " and HF_HUB_OFFLINE=1 forbids downloading it: unset HF_HUB_OFFLINE, or run ", HubHint(repo))));
  }
#ifdef MONOLOGUE_HAVE_CURL
  return DownloadBlob(options, repo, filename, revision, options.cache_dir / *folder, *folder);
#else
  return CacheOnlyMiss(absl::FailedPreconditionError(
      absl::StrCat(cached.status().message(),
                   ", and this monologue was built without libcurl (MONOLOGUE_WITH_CURL=OFF) so "
                   "it cannot download: fetch it with `huggingface-cli download ",
                   repo, "`")));
#endif
}

std::vector<std::string> ModelFileNames(const std::string& config_json_text, std::string* error) {
  nlohmann::json j = nlohmann::json::parse(config_json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    if (error != nullptr) *error = "config.json is not a JSON object";
    return {};
  }
  std::vector<std::string> names;
  auto add = [&](const char* key, const char* fallback) {
    auto it = j.find(key);
    if (it != j.end() && it->is_string()) {
      names.push_back(it->get<std::string>());
    } else if (fallback != nullptr) {
      names.push_back(fallback);
    }
  };
  // Defaults as the reference's CheckpointInfo.
  add("moshi_name", "model.safetensors");
  add("mimi_name", "tokenizer-e351c8d8-checkpoint125.safetensors");
  add("tokenizer_name", "tokenizer_spm_32k_3.model");
  add("mimi_config_name", nullptr);
  add("lora_name", nullptr);
  std::vector<std::string> out;
  for (const std::string& n : names) {
    if (n.empty() || absl::StartsWith(n, "file://") || n.front() == '/') continue;
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  return out;
}

absl::StatusOr<fs::path> DownloadModel(const HubOptions& options, const std::string& repo,
                                       const std::string& revision_in,
                                       const std::vector<std::string>& files) {
  const std::string revision = revision_in.empty() ? "main" : revision_in;
  std::vector<std::string> names = files;
  fs::path snapshot;
  if (names.empty()) {
    auto config = DownloadFile(options, repo, "config.json", revision);
    if (config.ok()) {
      snapshot = config->parent_path();
      std::ifstream in(*config, std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      std::string error;
      names = ModelFileNames(text.str(), &error);
      if (!error.empty()) return absl::InvalidArgumentError(absl::StrCat(config->string(), ": ", error));
    } else if (absl::IsNotFound(config.status()) && !IsCacheOnlyMiss(config.status()) &&
               absl::StrContains(config.status().message(), "has no file")) {
      names = ModelFileNames("{}", nullptr);  // the legacy Moshi 7B layout: no config.json
    } else {
      return config.status();
    }
  }
  for (const std::string& name : names) {
    if (absl::StartsWith(name, "hf://")) {
      std::vector<std::string> parts = absl::StrSplit(name.substr(5), absl::MaxSplits('/', 2));
      if (parts.size() != 3) {
        return absl::InvalidArgumentError(
            absl::StrCat("file reference '", name, "' must look like hf://owner/repo/path"));
      }
      auto other = DownloadFile(options, parts[0] + "/" + parts[1], parts[2], "main");
      if (!other.ok()) return other.status();
      continue;
    }
    auto path = DownloadFile(options, repo, name, revision);
    if (!path.ok()) return path.status();
    if (snapshot.empty()) {
      snapshot = *path;
      for (size_t i = 0, n = std::count(name.begin(), name.end(), '/') + 1; i < n; ++i)
        snapshot = snapshot.parent_path();
    }
  }
  if (snapshot.empty()) return absl::InvalidArgumentError(absl::StrCat(repo, ": no files to fetch"));
  return snapshot;
}

}  // namespace monologue::hub
