// `--dtype int8` through the whole transcription engine on the tiny STT fixtures' clips: the greedy text
// tokens against the reference transcriber's (f32), as an agreement rate, with a floor that only a broken
// int8 path falls below; and the engine reports the dtype.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "asr/asr_engine.h"
#include "tests/asr/asr_test_util.h"

namespace monologue {
namespace {

using asr_test::LoadReference;
using asr_test::ModelDir;
using asr_test::ReadClip;
using asr_test::RunClip;

TEST(AsrInt8, GreedyTokensAgreeWithReferenceOnFixtureClips) {
  for (const std::string model : {"tiny-stt", "tiny-stt-prefix"}) {
    AsrEngineOptions options;
    options.threads = 1;
    options.dtype = "int8";
    auto engine = AsrEngine::Load(ModelDir(model), options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    EXPECT_EQ((*engine)->info().dtype, "int8");
    EXPECT_NE((*engine)->info().lm_weights.find("quantised at load in"), std::string::npos)
        << (*engine)->info().lm_weights;
    for (const std::string clip : {"speech_en", "speech_fr"}) {
      auto session = (*engine)->OpenSession();
      ASSERT_TRUE(session.ok()) << session.status();
      asr_test::Transcript t = RunClip(**engine, **session, ReadClip(clip));
      const asr_test::Reference ref = LoadReference(model, clip);
      ASSERT_EQ(t.tokens.size(), ref.tokens.size()) << model << "/" << clip;
      size_t equal = 0;
      for (size_t i = 0; i < ref.tokens.size(); ++i) equal += t.tokens[i] == ref.tokens[i];
      const double rate = static_cast<double>(equal) / static_cast<double>(ref.tokens.size());
      std::printf("int8 %s/%s: %zu of %zu greedy text tokens equal to the reference's (%.1f%%)\n", model.c_str(),
                  clip.c_str(), equal, ref.tokens.size(), 100 * rate);
      EXPECT_EQ(t.ends, 1);
      EXPECT_GT(rate, 0.5) << model << "/" << clip;
    }
  }
}

TEST(AsrInt8, Int8OnCudaIsRefusedWithAClearError) {
  AsrEngineOptions options;
  options.dtype = "int8";
  options.device = "cuda";
  auto engine = AsrEngine::Load(ModelDir(), options);
  ASSERT_FALSE(engine.ok());
  // Without a CUDA device the device is refused first; with one, the dtype.
  const std::string message(engine.status().message());
  EXPECT_TRUE(message.find("CPU only") != std::string::npos || message.find("CUDA") != std::string::npos)
      << message;
}

}  // namespace
}  // namespace monologue
