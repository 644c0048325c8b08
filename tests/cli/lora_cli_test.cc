// `--lora FILE` on transcribe: the adapter is fused into the LM at load (a zero update leaves the transcript
// unchanged; any fused update must fit its weight, or the command fails with one sentence naming both).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>

#include "core/io/safetensors.h"
#include "tests/common/process.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;

const fs::path kData(MONOLOGUE_TEST_DATA_DIR);

using test_process::RunResult;

fs::path Scratch() {
  const char* base = std::getenv("MONOLOGUE_TEST_TMP");
  fs::path dir = fs::path(base != nullptr ? base : ".") / "lora_cli";
  fs::create_directories(dir);
  return dir;
}

RunResult Transcribe(const std::string& extra) {
  return test_process::RunMonologue("transcribe " + (kData / "asr" / "speech_en.wav").string() + " --model " +
                                    (kData / "asr" / "tiny-stt").string() + " " + extra);
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
  RunResult base = Transcribe("");
  ASSERT_EQ(base.exit_code, 0) << base.err;
  RunResult fused = Transcribe("--lora " + zero.string());
  ASSERT_EQ(fused.exit_code, 0) << fused.err;
  EXPECT_EQ(fused.out, base.out);

  const fs::path bad = Scratch() / "bad_lora.safetensors";
  ASSERT_TRUE(
      WriteSafeTensors(bad.string(),
                       {{"transformer.layers.0.self_attn.in_proj.lora_A.weight", at::ones({rank, cols + 1})},
                        {"transformer.layers.0.self_attn.in_proj.lora_B.weight", at::zeros({rows, rank})}})
          .ok());
  RunResult refused = Transcribe("--lora " + bad.string());
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("do not fit weight 'transformer.layers.0.self_attn.in_proj_weight'"),
            std::string::npos)
      << refused.err;
  RunResult missing = Transcribe("--lora " + (Scratch() / "absent.safetensors").string());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("absent.safetensors"), std::string::npos) << missing.err;
  RunResult directory = Transcribe("--lora " + Scratch().string());
  EXPECT_EQ(directory.exit_code, 1);
  EXPECT_NE(directory.err.find("is a directory: give the adapter's .safetensors file"), std::string::npos)
      << directory.err;
  // A LoRA update holding a NaN would turn every fused weight it touches into NaN.
  const fs::path nan = Scratch() / "nan_lora.safetensors";
  at::Tensor b = at::zeros({rows, rank});
  b[0][0] = std::numeric_limits<float>::quiet_NaN();
  ASSERT_TRUE(WriteSafeTensors(nan.string(), {{"transformer.layers.0.self_attn.in_proj.lora_A.weight",
                                               at::ones({rank, cols})},
                                              {"transformer.layers.0.self_attn.in_proj.lora_B.weight", b}})
                  .ok());
  RunResult non_finite = Transcribe("--lora " + nan.string());
  EXPECT_EQ(non_finite.exit_code, 1);
  EXPECT_NE(
      non_finite.err.find("LoRA tensor 'transformer.layers.0.self_attn.in_proj.lora_B.weight' holds NaN"),
      std::string::npos)
      << non_finite.err;
}

}  // namespace
}  // namespace monologue
