// `--lora FILE` on transcribe: the adapter is fused into the LM at load (a zero update leaves the transcript
// unchanged; any fused update must fit its weight, or the command fails with one sentence naming both).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/io/safetensors.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;

const fs::path kData(MONOLOGUE_TEST_DATA_DIR);

struct Ran {
  int code = -1;
  std::string out, err;
};

std::string Slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

fs::path Scratch() {
  const char* base = std::getenv("MONOLOGUE_TEST_TMP");
  fs::path dir = fs::path(base != nullptr ? base : ".") / "lora_cli";
  fs::create_directories(dir);
  return dir;
}

Ran Transcribe(const std::string& extra) {
  const fs::path dir = Scratch();
  const std::string cmd = std::string(MONOLOGUE_BINARY_DIR "/monologue transcribe ") +
                          (kData / "asr" / "speech_en.wav").string() + " --model " +
                          (kData / "asr" / "tiny-stt").string() + " " + extra + " > " +
                          (dir / "out").string() + " 2> " + (dir / "err").string();
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Slurp(dir / "out"), Slurp(dir / "err")};
}

TEST(LoraCli, TranscribeFusesALoraFile) {
  auto model = SafeTensorsFile::Open((kData / "asr" / "tiny-stt" / "model.safetensors").string());
  ASSERT_TRUE(model.ok()) << model.status();
  const SafeTensorInfo* in_proj = (*model)->Find("transformer.layers.0.self_attn.in_proj_weight");
  ASSERT_NE(in_proj, nullptr);
  const int64_t rows = in_proj->shape[0], cols = in_proj->shape[1], rank = 2;
  // Per-step naming (what the reference's state_dict() saves for a LoRA-wrapped model), zero update.
  const fs::path zero = Scratch() / "zero_lora.safetensors";
  ASSERT_TRUE(
      WriteSafeTensors(zero.string(),
                       {{"transformer.layers.0.self_attn.in_projs.0.lora_A.weight", at::ones({rank, cols})},
                        {"transformer.layers.0.self_attn.in_projs.0.lora_B.weight", at::zeros({rows, rank})}})
          .ok());
  Ran base = Transcribe("");
  ASSERT_EQ(base.code, 0) << base.err;
  Ran fused = Transcribe("--lora " + zero.string());
  ASSERT_EQ(fused.code, 0) << fused.err;
  EXPECT_EQ(fused.out, base.out);

  const fs::path bad = Scratch() / "bad_lora.safetensors";
  ASSERT_TRUE(
      WriteSafeTensors(bad.string(),
                       {{"transformer.layers.0.self_attn.in_proj.lora_A.weight", at::ones({rank, cols + 1})},
                        {"transformer.layers.0.self_attn.in_proj.lora_B.weight", at::zeros({rows, rank})}})
          .ok());
  Ran refused = Transcribe("--lora " + bad.string());
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("do not fit weight 'transformer.layers.0.self_attn.in_proj_weight'"),
            std::string::npos)
      << refused.err;
  Ran missing = Transcribe("--lora " + (Scratch() / "absent.safetensors").string());
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("absent.safetensors"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace monologue
