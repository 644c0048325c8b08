// Numerical parity with the reference package (fixtures from tests/reference/make_mimi_fixtures.py), for
// the tiny Mimi and the released architecture with deterministic weights: codes equal on >= 99.9% of
// positions, decoded audio within 1e-4 relative L2, streaming and offline each against the reference's own.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "tests/mimi/mimi_test_util.h"

namespace monologue {
namespace {

using mimi_test::Agreement;
using mimi_test::Fixture;
using mimi_test::RelativeL2;

constexpr double kCodeAgreement = 0.999;
constexpr double kAudioTolerance = 1e-4;

// Checks and reports (stderr) how close we are, so a log shows bit-exactness or drift.
void ExpectCodes(const at::Tensor& got, const at::Tensor& expected, const std::string& what) {
  ASSERT_EQ(got.sizes(), expected.sizes()) << what;
  const double agreement = Agreement(got, expected);
  std::cerr << "  [" << what << "] code agreement " << agreement << "\n";
  EXPECT_GE(agreement, kCodeAgreement) << what;
}

void ExpectAudio(const at::Tensor& got, const at::Tensor& expected, const std::string& what) {
  ASSERT_EQ(got.sizes(), expected.sizes()) << what;
  const double err = RelativeL2(got, expected);
  std::cerr << "  [" << what << "] relative L2 " << err << "\n";
  EXPECT_LT(err, kAudioTolerance) << what;
}

class MimiParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const bool tiny = GetParam() == "tiny";
    // Regenerating the real architecture's 80M weights takes seconds: once per model for the suite.
    static std::map<std::string, std::unique_ptr<MimiModel>>* models =
        new std::map<std::string, std::unique_ptr<MimiModel>>();
    std::unique_ptr<MimiModel>& slot = (*models)[GetParam()];
    if (slot == nullptr) {
      auto model = tiny ? mimi_test::LoadTiny() : mimi_test::LoadReal();
      ASSERT_TRUE(model.ok()) << model.status();
      slot = std::make_unique<MimiModel>(std::move(*model));
    }
    model_ = slot.get();
    ASSERT_TRUE(model_->SetNumCodebooks(32).ok());
    auto file = SafeTensorsFile::Open(
        mimi_test::DataPath(tiny ? "tiny_cases.safetensors" : "real_cases.safetensors"));
    ASSERT_TRUE(file.ok()) << file.status();
    cases_ = *file;
  }
  at::Tensor F(const std::string& name) { return Fixture(*cases_, name); }

  MimiModel* model_ = nullptr;
  std::shared_ptr<const SafeTensorsFile> cases_;
};

TEST_P(MimiParityTest, OfflineLatentMatches) {
  auto latent = model_->EncodeToLatent(F("input_a_cut"));
  ASSERT_TRUE(latent.ok()) << latent.status();
  const double err = RelativeL2(*latent, F("offline_latent_a_cut"));
  std::cerr << "  [latent] relative L2 " << err << "\n";
  EXPECT_LT(err, 1e-5);
}

TEST_P(MimiParityTest, OfflineEncode8And32Codebooks) {
  for (int n : {8, 32}) {
    ASSERT_TRUE(model_->SetNumCodebooks(n).ok());
    auto codes = model_->Encode(F("input_a_cut"));
    ASSERT_TRUE(codes.ok()) << codes.status();
    ExpectCodes(*codes, F("offline_codes" + std::to_string(n) + "_a_cut"), "offline " + std::to_string(n));
  }
}

TEST_P(MimiParityTest, StreamingEncodeLongClipWrapsTheRing) {
  // The tiny Mimi's context is 10 steps, the real one's 250: both clips run past it.
  MimiStreamState state = model_->NewState(1);
  const at::Tensor codes = mimi_test::StreamEncode(*model_, state, F("input_long"));
  ExpectCodes(codes, F("stream_codes32_long"), "streaming long");
}

TEST_P(MimiParityTest, StreamingEncode8Codebooks) {
  ASSERT_TRUE(model_->SetNumCodebooks(8).ok());
  MimiStreamState state = model_->NewState(1);
  const at::Tensor codes = mimi_test::StreamEncode(*model_, state, F("input_a"));
  ExpectCodes(codes, F("stream_codes8_a"), "streaming 8");
}

TEST_P(MimiParityTest, ResetInTheMiddleOfAStream) {
  MimiStreamState state = model_->NewState(1);
  const at::Tensor first = mimi_test::StreamEncode(*model_, state, F("input_b"));
  ASSERT_TRUE(model_->Reset(state).ok());
  const at::Tensor second = mimi_test::StreamEncode(*model_, state, F("input_a"));
  ExpectCodes(at::cat({first, second}, 2), F("stream_codes32_b_reset_a"), "reset");
  // After the reset the stream is a fresh one: same codes as clip a alone, first frame included.
  MimiStreamState fresh = model_->NewState(1);
  EXPECT_TRUE(mimi_test::StreamEncode(*model_, fresh, F("input_a")).equal(second));
}

TEST_P(MimiParityTest, OfflineDecode) {
  auto pcm = model_->Decode(F("decode_codes"));
  ASSERT_TRUE(pcm.ok()) << pcm.status();
  ExpectAudio(*pcm, F("offline_decode"), "offline decode");
}

TEST_P(MimiParityTest, StreamingDecode32And8Codebooks) {
  const at::Tensor codes = F("decode_codes");
  MimiStreamState state = model_->NewState(1);
  const at::Tensor pcm = mimi_test::StreamDecode(*model_, state, codes);
  ExpectAudio(pcm, F("stream_decode"), "streaming decode");
  MimiStreamState state8 = model_->NewState(1);
  const at::Tensor pcm8 = mimi_test::StreamDecode(*model_, state8, codes.narrow(1, 0, 8));
  ExpectAudio(pcm8, F("stream_decode8"), "streaming decode 8");
}

TEST_P(MimiParityTest, StreamingDecodeWithReset) {
  const at::Tensor codes = F("decode_codes");
  const int64_t half = codes.size(2) / 2;
  MimiStreamState state = model_->NewState(1);
  const at::Tensor a = mimi_test::StreamDecode(*model_, state, codes.narrow(2, 0, half));
  ASSERT_TRUE(model_->Reset(state).ok());
  const at::Tensor b = mimi_test::StreamDecode(*model_, state, codes.narrow(2, half, codes.size(2) - half));
  ExpectAudio(at::cat({a, b}, 2), F("stream_decode_reset"), "streaming decode reset");
}

INSTANTIATE_TEST_SUITE_P(Models, MimiParityTest, ::testing::Values("tiny", "real"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace monologue
