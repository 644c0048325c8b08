// `--dtype int8` and `--dtype int4` through the whole transcription engine on the tiny STT fixtures' clips:
// the greedy text tokens against the reference transcriber's (f32), as an agreement rate, with a floor that
// only a broken path falls below; and the engine reports the dtype.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "asr/asr_engine.h"
#include "tests/asr/asr_test_util.h"
#include "tests/common/quantised_info.h"

namespace monologue {
namespace {

using asr_test::LoadReference;
using asr_test::ModelDir;
using asr_test::ReadClip;
using asr_test::RunClip;

// The tiny models' 16-48 wide rows make an int4 group nearly a whole row, so int4 rounds ~16x coarser than
// int8 here (docs/lm.md, "int4 weights"): a lower floor.
void ExpectGreedyTokensAgreeWithReference(const std::string& dtype, double floor) {
  for (const std::string model : {"tiny-stt", "tiny-stt-prefix"}) {
    AsrEngineOptions options;
    options.threads = 1;
    options.dtype = dtype;
    auto engine = AsrEngine::Load(ModelDir(model), options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    test_util::ExpectQuantisedAtLoad((*engine)->info(), dtype);
    for (const std::string clip : {"speech_en", "speech_fr"}) {
      auto session = (*engine)->OpenSession();
      ASSERT_TRUE(session.ok()) << session.status();
      asr_test::Transcript t = RunClip(**engine, **session, ReadClip(clip));
      const asr_test::Reference ref = LoadReference(model, clip);
      ASSERT_EQ(t.tokens.size(), ref.tokens.size()) << model << "/" << clip;
      size_t equal = 0;
      for (size_t i = 0; i < ref.tokens.size(); ++i) equal += t.tokens[i] == ref.tokens[i];
      const double rate = static_cast<double>(equal) / static_cast<double>(ref.tokens.size());
      std::printf("%s %s/%s: %zu of %zu greedy text tokens equal to the reference's (%.1f%%)\n",
                  dtype.c_str(), model.c_str(), clip.c_str(), equal, ref.tokens.size(), 100 * rate);
      EXPECT_EQ(t.ends, 1);
      EXPECT_GT(rate, floor) << dtype << " " << model << "/" << clip;
    }
  }
}

TEST(AsrInt8, GreedyTokensAgreeWithReferenceOnFixtureClips) {
  ExpectGreedyTokensAgreeWithReference("int8", 0.5);
}
TEST(AsrInt4, GreedyTokensAgreeWithReferenceOnFixtureClips) {
  ExpectGreedyTokensAgreeWithReference("int4", 0.3);
}

TEST(AsrQuantised, QuantisedOnCudaIsRefusedWithAClearError) {
  for (const std::string dtype : {"int8", "int4"}) {
    AsrEngineOptions options;
    options.dtype = dtype;
    options.device = "cuda";
    auto engine = AsrEngine::Load(ModelDir(), options);
    ASSERT_FALSE(engine.ok());
    // Without a CUDA device the device is refused first; with one, the dtype.
    const std::string message(engine.status().message());
    EXPECT_TRUE(message.find("CPU only") != std::string::npos || message.find("CUDA") != std::string::npos)
        << message;
  }
}

}  // namespace
}  // namespace monologue
