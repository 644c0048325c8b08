// The Hub client against tests/hub/fake_hub.py: cache layout, cache hits with no request, resume, corrupt
// partial files, offline mode, gated/missing repos, locks, redirects, and a cache shared with the Python
// huggingface_hub (both directions).
#include "core/hub/hub.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "core/hub/sha256.h"
#include "tests/hub/fake_hub.h"

namespace monologue::hub {
namespace {

namespace fs = std::filesystem;
using testing_hub::FakeHub;
using testing_hub::ReadAll;

fs::path Scratch(const std::string& name) {
  const char* base = std::getenv("MONOLOGUE_TEST_TMP");
  fs::path dir = fs::path(base != nullptr ? base : ".") / name;
  fs::create_directories(dir);
  return dir;
}

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

void Write(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

std::string Sha(const std::string& data) {
  Sha256 s;
  s.Update(data.data(), data.size());
  return s.HexDigest();
}

int Count(const std::vector<std::string>& requests, const std::string& needle) {
  return static_cast<int>(std::count_if(requests.begin(), requests.end(), [&](const std::string& r) {
    return r.find(needle) != std::string::npos;
  }));
}

// A tiny model repo: config.json naming three files, plus a file the config does not name.
struct Repo {
  std::string model = RandomBytes(300000, 1), mimi = RandomBytes(120000, 2), tok = RandomBytes(5000, 3);
  std::string config =
      R"({"model_type": "stt", "moshi_name": "model.safetensors", "mimi_name": "mimi.safetensors",)"
      R"( "tokenizer_name": "tokenizer.model", "dim": 16})";
  void WriteTo(const fs::path& dir) const {
    Write(dir / "config.json", config);
    Write(dir / "model.safetensors", model);
    Write(dir / "mimi.safetensors", mimi);
    Write(dir / "tokenizer.model", tok);
    Write(dir / "README.md", "not needed");
  }
};

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing_hub::HavePython()) GTEST_SKIP() << "python3 is not available: the fake Hub cannot run";
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    base_ = Scratch(name);
    root_ = base_ / "hub-root";
    repo_.WriteTo(root_ / "kyutai" / "tiny");
    hub_ = std::make_unique<FakeHub>(root_, base_ / "server");
    ASSERT_TRUE(hub_->ok()) << "the fake Hub did not start";
    options_.endpoint = hub_->endpoint();
    options_.cache_dir = base_ / "cache";
    options_.stall_timeout_s = 10;
  }
  void TearDown() override { hub_.reset(); }

  fs::path base_, root_;
  Repo repo_;
  std::unique_ptr<FakeHub> hub_;
  HubOptions options_;
};

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_F(HubTest, DownloadsIntoTheHuggingFaceLayoutThenHitsTheCacheWithNoRequest) {
  auto snapshot = DownloadModel(options_, "kyutai/tiny");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  const fs::path repo_dir = options_.cache_dir / "models--kyutai--tiny";
  const std::string commit = ReadAll(repo_dir / "refs" / "main");
  ASSERT_EQ(commit.size(), 40u);
  EXPECT_EQ(*snapshot, repo_dir / "snapshots" / commit);
  // LFS files: blobs/<sha256>, linked relatively from the snapshot.
  for (const auto& [name, data] : {std::pair{"model.safetensors", repo_.model},
                                   {"mimi.safetensors", repo_.mimi},
                                   {"tokenizer.model", repo_.tok}}) {
    const fs::path link = *snapshot / name;
    ASSERT_TRUE(fs::is_symlink(link)) << link;
    EXPECT_EQ(fs::read_symlink(link), fs::path("../../blobs") / Sha(data));
    EXPECT_EQ(ReadAll(link), data) << name;
  }
  EXPECT_EQ(ReadAll(*snapshot / "config.json"), repo_.config);
  EXPECT_FALSE(fs::exists(*snapshot / "README.md")) << "only the files config.json names are fetched";
  for (const auto& e : fs::directory_iterator(repo_dir / "blobs")) {
    EXPECT_EQ(e.path().extension(), "") << "leftover " << e.path();
  }
  const auto first = hub_->Requests();
  EXPECT_EQ(Count(first, "GET /cdn/"), 3);
  // Second time: everything from the cache, not a single request.
  auto again = DownloadModel(options_, "kyutai/tiny");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *snapshot);
  EXPECT_EQ(hub_->Requests().size(), first.size());
  // `monologue download` asks the Hub again (HEAD only: the blobs are there).
  HubOptions check = options_;
  check.check_remote = true;
  ASSERT_TRUE(DownloadModel(check, "kyutai/tiny").ok());
  const auto third = hub_->Requests();
  EXPECT_GT(third.size(), first.size());
  EXPECT_EQ(Count(third, "GET /cdn/"), 3);
  // A tag resolves to the same commit and gets its own ref.
  ASSERT_TRUE(DownloadFile(options_, "kyutai/tiny", "config.json", "v1").ok());
  EXPECT_EQ(ReadAll(repo_dir / "refs" / "v1"), commit);
  auto by_commit = DownloadFile(options_, "kyutai/tiny", "config.json", commit);
  ASSERT_TRUE(by_commit.ok()) << by_commit.status();
  auto bad_rev = DownloadFile(options_, "kyutai/tiny", "config.json", "nope");
  EXPECT_EQ(bad_rev.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(bad_rev.status().message().find("no revision 'nope'"), std::string::npos) << bad_rev.status();
}

TEST_F(HubTest, ExplicitFileListAndTheLegacyLayout) {
  auto only = DownloadModel(options_, "kyutai/tiny", "main", {"tokenizer.model"});
  ASSERT_TRUE(only.ok()) << only.status();
  EXPECT_TRUE(fs::exists(*only / "tokenizer.model"));
  EXPECT_FALSE(fs::exists(*only / "model.safetensors"));
  // No config.json: the legacy Moshi names.
  Write(root_ / "kyutai" / "legacy" / "model.safetensors", "m");
  Write(root_ / "kyutai" / "legacy" / "tokenizer-e351c8d8-checkpoint125.safetensors", "mimi");
  Write(root_ / "kyutai" / "legacy" / "tokenizer_spm_32k_3.model", "tok");
  auto legacy = DownloadModel(options_, "kyutai/legacy");
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  EXPECT_EQ(ReadAll(*legacy / "tokenizer_spm_32k_3.model"), "tok");
  std::string error;
  EXPECT_EQ(
      ModelFileNames(R"({"mimi_name": "hf://kyutai/other/m.safetensors", "lora_name": "l.safetensors",
                               "tokenizer_name": "file:///abs/tok.model"})",
                     &error),
      (std::vector<std::string>{"model.safetensors", "hf://kyutai/other/m.safetensors", "l.safetensors"}));
}

TEST_F(HubTest, InterruptedDownloadResumesWithARangeRequest) {
  Write(root_ / "kyutai" / "tiny" / ".flaky", "model.safetensors");
  auto broken = DownloadFile(options_, "kyutai/tiny", "model.safetensors");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kUnavailable) << broken.status();
  EXPECT_NE(broken.status().message().find("interrupted"), std::string::npos) << broken.status();
  EXPECT_NE(broken.status().message().find("again to resume"), std::string::npos) << broken.status();
  const fs::path repo_dir = options_.cache_dir / "models--kyutai--tiny";
  const fs::path part = repo_dir / "blobs" / (Sha(repo_.model) + ".incomplete");
  ASSERT_TRUE(fs::exists(part));
  const auto partial = fs::file_size(part);
  EXPECT_GT(partial, 0u);
  EXPECT_LT(partial, repo_.model.size());
  // Nothing half-written is visible in a snapshot.
  if (fs::exists(repo_dir / "snapshots")) {
    for (const auto& e : fs::recursive_directory_iterator(repo_dir / "snapshots")) {
      EXPECT_NE(e.path().filename(), "model.safetensors") << e.path();
    }
  }
  auto resumed = DownloadFile(options_, "kyutai/tiny", "model.safetensors");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(ReadAll(*resumed), repo_.model);
  EXPECT_FALSE(fs::exists(part));
  EXPECT_EQ(Count(hub_->Requests(),
                  "GET /cdn/kyutai/tiny/model.safetensors bytes=" + std::to_string(partial) + "-"),
            1);
}

TEST_F(HubTest, CorruptPartialFileIsDetectedAndDownloadedAgain) {
  const fs::path part =
      options_.cache_dir / "models--kyutai--tiny" / "blobs" / (Sha(repo_.model) + ".incomplete");
  Write(part, std::string(1000, 'x'));  // not a prefix of the real file
  auto path = DownloadFile(options_, "kyutai/tiny", "model.safetensors");
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(ReadAll(*path), repo_.model);
  const auto requests = hub_->Requests();
  EXPECT_EQ(Count(requests, "GET /cdn/kyutai/tiny/model.safetensors bytes=1000-"),
            1);                                                               // resumed, sha256 failed
  EXPECT_EQ(Count(requests, "GET /cdn/kyutai/tiny/model.safetensors -"), 1);  // then from scratch
}

TEST_F(HubTest, CompletePartFileIsCheckedNotDownloadedAgain) {
  // A run that stopped between the last byte and the rename: the part file is verified and moved into place.
  const fs::path blobs = options_.cache_dir / "models--kyutai--tiny" / "blobs";
  Write(blobs / (Sha(repo_.model) + ".incomplete"), repo_.model);
  auto path = DownloadFile(options_, "kyutai/tiny", "model.safetensors");
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(ReadAll(*path), repo_.model);
  EXPECT_EQ(Count(hub_->Requests(), "GET /cdn/"), 0);
  // The same size but other bytes: the sha256 check catches it and the file is fetched from scratch.
  Write(blobs / (Sha(repo_.mimi) + ".incomplete"), std::string(repo_.mimi.size(), 'z'));
  auto mimi = DownloadFile(options_, "kyutai/tiny", "mimi.safetensors");
  ASSERT_TRUE(mimi.ok()) << mimi.status();
  EXPECT_EQ(ReadAll(*mimi), repo_.mimi);
  EXPECT_EQ(Count(hub_->Requests(), "GET /cdn/kyutai/tiny/mimi.safetensors -"), 1);
}

TEST_F(HubTest, OfflineModeUsesOnlyTheCache) {
  HubOptions offline = options_;
  offline.offline = true;
  auto miss = DownloadModel(offline, "kyutai/tiny");
  ASSERT_FALSE(miss.ok());
  EXPECT_EQ(miss.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(IsCacheOnlyMiss(miss.status()));
  EXPECT_NE(miss.status().message().find("HF_HUB_OFFLINE=1"), std::string::npos) << miss.status();
  EXPECT_NE(miss.status().message().find("models--kyutai--tiny"), std::string::npos) << miss.status();
  EXPECT_TRUE(hub_->Requests().empty());
  ASSERT_TRUE(DownloadModel(options_, "kyutai/tiny").ok());
  const size_t n = hub_->Requests().size();
  offline.check_remote = true;  // ignored offline
  auto hit = DownloadModel(offline, "kyutai/tiny");
  ASSERT_TRUE(hit.ok()) << hit.status();
  EXPECT_EQ(ReadAll(*hit / "model.safetensors"), repo_.model);
  EXPECT_EQ(hub_->Requests().size(), n);
}

TEST_F(HubTest, GatedMissingAndUnreachableGiveClearErrors) {
  repo_.WriteTo(root_ / "kyutai" / "gated");
  Write(root_ / "kyutai" / "gated" / ".gated", "hf_secret");
  auto gated = DownloadModel(options_, "kyutai/gated");
  ASSERT_FALSE(gated.ok());
  EXPECT_EQ(gated.status().code(), absl::StatusCode::kPermissionDenied);
  for (const char* part : {"kyutai/gated is a gated repository", "no Hugging Face token is set", "accept",
                           "HF_TOKEN", "huggingface-cli login"}) {
    EXPECT_NE(gated.status().message().find(part), std::string::npos) << part << ": " << gated.status();
  }
  HubOptions wrong = options_;
  wrong.token = "hf_wrong";
  auto denied = DownloadModel(wrong, "kyutai/gated");
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(denied.status().message().find("has no access"), std::string::npos) << denied.status();
  HubOptions right = options_;
  right.token = "hf_secret";
  auto granted = DownloadModel(right, "kyutai/gated");
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_EQ(ReadAll(*granted / "model.safetensors"), repo_.model);

  auto missing = DownloadModel(options_, "kyutai/nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("repository kyutai/nope was not found on " + hub_->endpoint()),
            std::string::npos)
      << missing.status();
  auto no_file = DownloadFile(options_, "kyutai/tiny", "absent.safetensors");
  EXPECT_EQ(no_file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(no_file.status().message().find("has no file 'absent.safetensors'"), std::string::npos)
      << no_file.status();
  // A config.json naming a file the repo lacks.
  Write(root_ / "kyutai" / "broken" / "config.json", R"({"moshi_name": "gone.safetensors"})");
  auto broken = DownloadModel(options_, "kyutai/broken");
  EXPECT_NE(broken.status().message().find("has no file 'gone.safetensors'"), std::string::npos)
      << broken.status();
  EXPECT_EQ(DownloadModel(options_, "not-a-repo").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DownloadFile(options_, "kyutai/tiny", "../x").status().code(),
            absl::StatusCode::kInvalidArgument);

  HubOptions down = options_;
  down.endpoint = "http://127.0.0.1:9";  // discard port: nothing listens
  down.connect_timeout_s = 5;
  auto unreachable = DownloadModel(down, "kyutai/tiny");
  EXPECT_EQ(unreachable.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(unreachable.status().message().find("cannot reach the Hugging Face Hub at http://127.0.0.1:9"),
            std::string::npos)
      << unreachable.status();
}

TEST_F(HubTest, RenamedRepoFollowsRelativeRedirects) {
  Write(root_ / "kyutai" / "old-name" / ".moved_to", "kyutai/tiny");
  auto path = DownloadFile(options_, "kyutai/old-name", "model.safetensors");
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(ReadAll(*path), repo_.model);
  EXPECT_TRUE(fs::exists(options_.cache_dir / "models--kyutai--old-name" / "refs" / "main"));
}

TEST_F(HubTest, ConcurrentDownloadsOfOneFileShareOneTransfer) {
  std::vector<absl::StatusOr<fs::path>> results(4, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = DownloadFile(options_, "kyutai/tiny", "model.safetensors"); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(ReadAll(*r), repo_.model);
  }
  EXPECT_EQ(Count(hub_->Requests(), "GET /cdn/kyutai/tiny/model.safetensors"), 1);
  EXPECT_TRUE(
      fs::exists(options_.cache_dir / ".locks" / "models--kyutai--tiny" / (Sha(repo_.model) + ".lock")));
}

// The venv's huggingface_hub, when present (scripts/setup.sh installs it).
std::string VenvPython() {
  const char* home = std::getenv("MONOLOGUE_HOME");
  const char* user = std::getenv("HOME");
  const fs::path base =
      home != nullptr ? fs::path(home) : fs::path(user != nullptr ? user : "/") / ".cache/monologue";
  const fs::path py = base / "venv" / "bin" / "python";
  if (!fs::exists(py)) return "";
  if (std::system((py.string() + " -c 'import huggingface_hub' >/dev/null 2>&1").c_str()) != 0) return "";
  return py.string();
}

TEST_F(HubTest, CacheWrittenByMonologueIsReadByHuggingFaceHub) {
  const std::string py = VenvPython();
  if (py.empty()) GTEST_SKIP() << "no venv with huggingface_hub (run scripts/setup.sh)";
  ASSERT_TRUE(DownloadModel(options_, "kyutai/tiny").ok());
  const fs::path out = base_ / "py.txt";
  const std::string script =
      "import sys, hashlib\n"
      "from huggingface_hub import hf_hub_download\n"
      "for f in ['config.json', 'model.safetensors', 'mimi.safetensors', 'tokenizer.model']:\n"
      "    p = hf_hub_download('kyutai/tiny', f, local_files_only=True)\n"
      "    print(f, hashlib.sha256(open(p, 'rb').read()).hexdigest(), p)\n";
  Write(base_ / "read.py", script);
  const std::string cmd = "env -u HF_HUB_OFFLINE HF_HUB_CACHE=" + options_.cache_dir.string() +
                          " HF_ENDPOINT=http://127.0.0.1:9 " + py + " " + (base_ / "read.py").string() +
                          " > " + out.string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadAll(out);
  const std::string text = ReadAll(out);
  EXPECT_NE(text.find("model.safetensors " + Sha(repo_.model)), std::string::npos) << text;
  EXPECT_NE(text.find("config.json " + Sha(repo_.config)), std::string::npos) << text;
  EXPECT_NE(text.find((options_.cache_dir / "models--kyutai--tiny" / "snapshots").string()),
            std::string::npos)
      << text;
}

TEST_F(HubTest, CacheWrittenByHuggingFaceHubIsReadByMonologue) {
  const std::string py = VenvPython();
  if (py.empty()) GTEST_SKIP() << "no venv with huggingface_hub (run scripts/setup.sh)";
  const fs::path out = base_ / "py.txt";
  const std::string script =
      "from huggingface_hub import hf_hub_download\n"
      "for f in ['config.json', 'model.safetensors', 'mimi.safetensors', 'tokenizer.model']:\n"
      "    print(hf_hub_download('kyutai/tiny', f))\n";
  Write(base_ / "fetch.py", script);
  const std::string cmd =
      "env -u HF_HUB_OFFLINE HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_TELEMETRY=1 "
      "HF_HUB_CACHE=" +
      options_.cache_dir.string() + " HF_ENDPOINT=" + hub_->endpoint() + " " + py + " " +
      (base_ / "fetch.py").string() + " > " + out.string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadAll(out);
  const size_t n = hub_->Requests().size();
  HubOptions offline = options_;
  offline.offline = true;
  auto snapshot = DownloadModel(offline, "kyutai/tiny");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status() << "\n" << ReadAll(out);
  EXPECT_EQ(ReadAll(*snapshot / "model.safetensors"), repo_.model);
  EXPECT_EQ(ReadAll(*snapshot / "tokenizer.model"), repo_.tok);
  // And online: the same blobs, no new transfer.
  auto online = DownloadModel(options_, "kyutai/tiny");
  ASSERT_TRUE(online.ok()) << online.status();
  EXPECT_EQ(*online, *snapshot);
  EXPECT_EQ(hub_->Requests().size(), n);
}

}  // namespace
}  // namespace monologue::hub
