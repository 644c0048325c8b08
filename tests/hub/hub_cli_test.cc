// `monologue download` and `monologue transcribe --hf-repo` against the fake Hub (tests/hub/fake_hub.py):
// fetch on first use, offline afterwards, and one clear sentence with exit status 1 for gated / missing
// repos and an unreachable Hub.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/hub/fake_hub.h"

namespace monologue::hub {
namespace {

namespace fs = std::filesystem;
using testing_hub::FakeHub;
using testing_hub::ReadAll;

struct Result {
  int code = -1;
  std::string out, err;
};

// Runs the CLI with `env` prepended (HF_HUB_OFFLINE unset unless `env` sets it).
Result RunCli(const fs::path& dir, const std::string& env, const std::string& args) {
  const fs::path out = dir / "out.txt", err = dir / "err.txt";
  const std::string cmd = "env -u HF_HUB_OFFLINE -u HF_TOKEN HF_HUB_DISABLE_PROGRESS_BARS=1 " + env + " " +
                          MONOLOGUE_BINARY_DIR + "/monologue " + args + " > " + out.string() + " 2> " +
                          err.string();
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadAll(out), ReadAll(err)};
}

class HubCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing_hub::HavePython()) GTEST_SKIP() << "python3 is not available: the fake Hub cannot run";
    if (!fs::exists(fs::path(MONOLOGUE_BINARY_DIR) / "monologue")) GTEST_SKIP() << "no monologue binary";
    const char* base = std::getenv("MONOLOGUE_TEST_TMP");
    dir_ = fs::path(base != nullptr ? base : ".") /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
    const fs::path repo = dir_ / "root" / "kyutai" / "stt-tiny";
    fs::create_directories(repo);
    for (const auto& e : fs::directory_iterator(std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr/tiny-stt")) {
      fs::copy_file(e.path(), repo / e.path().filename());
    }
    std::ofstream(repo / "unused.bin") << "not named by config.json";
    fs::create_directories(dir_ / "root" / "kyutai" / "gated");
    std::ofstream(dir_ / "root" / "kyutai" / "gated" / ".gated") << "hf_token";
    std::ofstream(dir_ / "root" / "kyutai" / "gated" / "config.json") << "{}";
    hub_ = std::make_unique<FakeHub>(dir_ / "root", dir_ / "server");
    ASSERT_TRUE(hub_->ok());
    env_ = "HF_ENDPOINT=" + hub_->endpoint() + " HF_HOME=" + (dir_ / "hf-home").string();
  }
  void TearDown() override { hub_.reset(); }

  fs::path dir_;
  std::unique_ptr<FakeHub> hub_;
  std::string env_;
};

TEST_F(HubCliTest, DownloadThenTranscribeOffline) {
  Result r = RunCli(dir_, env_, "download kyutai/stt-tiny");
  ASSERT_EQ(r.code, 0) << r.err;
  const fs::path snapshot = fs::path(r.out.substr(0, r.out.find('\n')));
  EXPECT_EQ(snapshot.parent_path().parent_path(), dir_ / "hf-home" / "hub" / "models--kyutai--stt-tiny");
  for (const char* f :
       {"config.json", "model.safetensors", "mimi.safetensors", "mimi_config.json", "tokenizer.model"}) {
    EXPECT_TRUE(fs::exists(snapshot / f)) << f;
  }
  EXPECT_FALSE(fs::exists(snapshot / "unused.bin"));
  const std::string wav = std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr/speech_en.wav";
  Result t = RunCli(dir_, "HF_HUB_OFFLINE=1 " + env_, "transcribe " + wav + " --hf-repo kyutai/stt-tiny");
  EXPECT_EQ(t.code, 0) << t.err;
  // The same from a model directory: identical transcript.
  Result direct = RunCli(
      dir_, "", "transcribe " + wav + " --model " + std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr/tiny-stt");
  EXPECT_EQ(direct.code, 0) << direct.err;
  EXPECT_EQ(t.out, direct.out);
  // --revision with a tag; an unknown revision is one sentence and exit 1.
  EXPECT_EQ(RunCli(dir_, env_, "download kyutai/stt-tiny --revision v1").code, 0);
  Result bad = RunCli(dir_, env_, "download kyutai/stt-tiny --revision nope");
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(bad.err, "monologue download: kyutai/stt-tiny has no revision 'nope' (check --revision)\n");
}

TEST_F(HubCliTest, TranscribeFetchesTheModelOnFirstUse) {
  const std::string wav = std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr/speech_en.wav";
  Result t = RunCli(dir_, env_, "transcribe " + wav + " --hf-repo kyutai/stt-tiny");
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_TRUE(fs::exists(dir_ / "hf-home" / "hub" / "models--kyutai--stt-tiny" / "refs" / "main"));
  const size_t requests = hub_->Requests().size();
  EXPECT_GT(requests, 0u);
  Result again = RunCli(dir_, env_, "transcribe " + wav + " --hf-repo kyutai/stt-tiny");
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.out, t.out);
  EXPECT_EQ(hub_->Requests().size(), requests) << "the second run must not touch the Hub";
}

TEST_F(HubCliTest, FailuresAreOneSentenceAndExitOne) {
  Result gated = RunCli(dir_, env_, "download kyutai/gated");
  EXPECT_EQ(gated.code, 1);
  EXPECT_NE(gated.err.find("kyutai/gated is a gated repository"), std::string::npos) << gated.err;
  EXPECT_EQ(std::count(gated.err.begin(), gated.err.end(), '\n'), 1) << gated.err;
  Result with_token = RunCli(dir_, env_ + " HF_TOKEN=hf_token", "download kyutai/gated --files config.json");
  EXPECT_EQ(with_token.code, 0) << with_token.err;
  // The token file `huggingface-cli login` writes works too.
  fs::create_directories(dir_ / "hf-home2");
  std::ofstream(dir_ / "hf-home2" / "token") << "hf_token\n";
  Result token_file =
      RunCli(dir_, "HF_ENDPOINT=" + hub_->endpoint() + " HF_HOME=" + (dir_ / "hf-home2").string(),
             "download kyutai/gated --files config.json");
  EXPECT_EQ(token_file.code, 0) << token_file.err;

  const std::string wav = std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr/speech_en.wav";
  Result missing = RunCli(dir_, env_, "transcribe " + wav + " --hf-repo kyutai/nope");
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("repository kyutai/nope was not found on " + hub_->endpoint()),
            std::string::npos)
      << missing.err;
  Result down = RunCli(dir_, "HF_ENDPOINT=http://127.0.0.1:9 HF_HOME=" + (dir_ / "hf-home3").string(),
                       "download kyutai/stt-tiny");
  EXPECT_EQ(down.code, 1);
  EXPECT_NE(down.err.find("cannot reach the Hugging Face Hub at http://127.0.0.1:9"), std::string::npos)
      << down.err;
  Result offline = RunCli(dir_, "HF_HUB_OFFLINE=1 HF_HOME=" + (dir_ / "hf-home3").string(),
                          "transcribe " + wav + " --hf-repo kyutai/stt-tiny");
  EXPECT_EQ(offline.code, 1);
  EXPECT_NE(offline.err.find("models--kyutai--stt-tiny"), std::string::npos) << offline.err;
}

}  // namespace
}  // namespace monologue::hub
