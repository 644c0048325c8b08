// End-to-end tests of `monologue codec encode|decode` on the committed tiny Mimi (tests/data/mimi): the
// CLI's streaming codes equal the library's, decoding writes the expected audio, and bad inputs (not a Mimi
// checkpoint, codes out of range / wrong shape / wrong dtype / missing, unreadable audio) fail with a clear
// message and a non-zero exit code.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "core/mimi/mimi_loader.h"
#include "core/mimi/mimi_model.h"
#include "tests/common/process.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kMimiDir = std::string(MONOLOGUE_TEST_DATA_DIR) + "/mimi/";
const std::string kModelFlags =
    " --mimi " + kMimiDir + "tiny_mimi.safetensors --mimi-config " + kMimiDir + "tiny_mimi_config.json";

fs::path Tmp(const std::string& name) {
  const char* base = std::getenv("MONOLOGUE_TEST_TMP");
  fs::path dir = fs::path(base != nullptr ? base : ".") / "codec_test";
  fs::create_directories(dir);
  return dir / name;
}

using test_process::RunResult;

RunResult RunCodec(const std::string& args) { return test_process::RunMonologue("codec " + args); }

void PutLe(std::ofstream& f, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) f.put(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A 24 kHz mono 16-bit WAV (exactly representable samples: the decoder returns them unchanged).
void WriteWav(const fs::path& path, const std::vector<int16_t>& samples) {
  std::ofstream f(path, std::ios::binary);
  const uint32_t data = static_cast<uint32_t>(samples.size() * 2);
  f.write("RIFF", 4);
  PutLe(f, 36 + data, 4);
  f.write("WAVEfmt ", 8);
  PutLe(f, 16, 4);
  PutLe(f, 1, 2);
  PutLe(f, 1, 2);
  PutLe(f, 24000, 4);
  PutLe(f, 48000, 4);
  PutLe(f, 2, 2);
  PutLe(f, 16, 2);
  f.write("data", 4);
  PutLe(f, data, 4);
  for (int16_t s : samples) PutLe(f, static_cast<uint16_t>(s), 2);
}

std::vector<int16_t> TestSignal(int64_t n) {
  std::vector<int16_t> out(n);
  for (int64_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) / 24000.0;
    const double env = 0.5 + 0.5 * std::sin(2 * M_PI * 3.0 * t);
    out[i] = static_cast<int16_t>(std::lround(
        6000.0 * env * (std::sin(2 * M_PI * 220.0 * t) + 0.5 * std::sin(2 * M_PI * 660.0 * t + 1.0))));
  }
  return out;
}

MimiModel TinyModel() {
  auto config = LoadMimiConfig(kMimiDir + "tiny_mimi_config.json");
  EXPECT_TRUE(config.ok()) << config.status();
  auto model = LoadMimiFile(kMimiDir + "tiny_mimi.safetensors", *config);
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(*model);
}

TEST(CodecCliTest, EncodeStreamsLikeTheLibraryAndDecodeWritesTheAudio) {
  const int64_t frame = 1920, n = frame * 3 + 700;  // 4 frames, the last zero-padded
  const std::vector<int16_t> signal = TestSignal(n);
  WriteWav(Tmp("in.wav"), signal);
  const fs::path codes_path = Tmp("codes.safetensors");
  RunResult r =
      RunCodec("encode " + Tmp("in.wav").string() + " -o " + codes_path.string() + " --codebooks 8" + kModelFlags);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  auto file = SafeTensorsFile::Open(codes_path.string());
  ASSERT_TRUE(file.ok()) << file.status();
  const SafeTensorInfo* info = (*file)->Find("codes");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->dtype, "I64");
  EXPECT_EQ(info->shape, (std::vector<int64_t>{1, 8, 4}));
  EXPECT_EQ((*file)->metadata().at("codebooks"), "8");
  EXPECT_EQ((*file)->metadata().at("sample_rate"), "24000");
  EXPECT_EQ((*file)->metadata().at("frame_rate"), "12.5");
  const at::Tensor codes = (*file)->Load("codes")->clone();

  // The library, streaming the same samples.
  MimiModel model = TinyModel();
  ASSERT_TRUE(model.SetNumCodebooks(8).ok());
  at::Tensor pcm = at::zeros({1, 1, 4 * frame});
  for (int64_t i = 0; i < n; ++i) pcm[0][0][i] = static_cast<float>(signal[i]) / 32768.0f;
  MimiStreamState state = model.NewState(1);
  std::vector<at::Tensor> expected;
  for (int64_t t = 0; t < 4; ++t)
    expected.push_back(*model.EncodeStep(state, pcm.narrow(2, t * frame, frame)));
  EXPECT_TRUE(codes.equal(at::cat(expected, 2))) << codes << at::cat(expected, 2);

  // Decode to a 16-bit WAV: 4 frames of samples, matching the library's decode.
  const fs::path wav = Tmp("out.wav");
  r = RunCodec("decode " + codes_path.string() + " -o " + wav.string() + kModelFlags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream f(wav, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t data = bytes.find("data");
  ASSERT_NE(data, std::string::npos);
  const size_t count = (bytes.size() - data - 8) / 2;
  ASSERT_EQ(count, static_cast<size_t>(4 * frame));
  MimiStreamState dstate = model.NewState(1);
  std::vector<at::Tensor> audio;
  for (int64_t t = 0; t < 4; ++t) audio.push_back(*model.DecodeStep(dstate, codes.narrow(2, t, 1)));
  const at::Tensor ref = at::cat(audio, 2).flatten();
  int64_t far = 0;
  for (size_t i = 0; i < count; ++i) {
    const int16_t got = static_cast<int16_t>(static_cast<uint8_t>(bytes[data + 8 + 2 * i]) |
                                             (static_cast<uint8_t>(bytes[data + 9 + 2 * i]) << 8));
    const double want = std::clamp(std::round(ref[i].item<double>() * 32768.0), -32768.0, 32767.0);
    if (std::abs(got - want) > 1.0) ++far;
  }
  EXPECT_EQ(far, 0);
}

TEST(CodecCliTest, StdinInput) {
  WriteWav(Tmp("stdin.wav"), TestSignal(1920 * 2));
  const RunResult r = test_process::RunMonologue("codec encode - -o " + Tmp("stdin.safetensors").string() +
                                                 kModelFlags, {.stdin_file = Tmp("stdin.wav").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto file = SafeTensorsFile::Open(Tmp("stdin.safetensors").string());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->Find("codes")->shape, (std::vector<int64_t>{1, 32, 2}));
}

TEST(CodecCliTest, NotAMimiCheckpoint) {
  ASSERT_TRUE(WriteSafeTensors(Tmp("junk.safetensors").string(), {{"weight", at::ones({3})}}).ok());
  WriteWav(Tmp("short.wav"), TestSignal(1920));
  RunResult r = RunCodec("encode " + Tmp("short.wav").string() + " -o " + Tmp("x.safetensors").string() +
                    " --mimi " + Tmp("junk.safetensors").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("monologue codec encode: not a Mimi checkpoint"));
  EXPECT_THAT(r.err, HasSubstr("missing tensor encoder.model.0.conv.conv.weight"));
}

TEST(CodecCliTest, BadCodesFiles) {
  struct Case {
    std::string name;
    at::Tensor codes;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"range", at::full({1, 8, 3}, 128, at::kLong), "codes must be in [0, 128), found values in [128, 128]"},
      {"negative", at::full({1, 8, 3}, -1, at::kLong), "codes must be in [0, 128)"},
      {"shape", at::zeros({8, 3}, at::kLong), "'codes' must be shaped [1, codebooks, frames], got [8, 3]"},
      {"batch", at::zeros({2, 8, 3}, at::kLong), "must be shaped [1, codebooks, frames]"},
      {"dtype", at::zeros({1, 8, 3}, at::kFloat), "'codes' must be an integer tensor (int64), got F32"},
      {"codebooks", at::zeros({1, 33, 3}, at::kLong), "'codes' has 33 codebooks, the Mimi has 32"},
      {"no_codebooks", at::zeros({1, 0, 5}, at::kLong), "'codes' [1, 0, 5] has no codebooks"},
  };
  // A file already at -o is left as it was by a failing decode (it was cut to an empty WAV header).
  std::ofstream(Tmp("bad.wav"), std::ios::binary) << "an earlier take";
  for (const Case& c : cases) {
    const fs::path path = Tmp("bad_" + c.name + ".safetensors");
    ASSERT_TRUE(WriteSafeTensors(path.string(), {{"codes", c.codes}}).ok());
    RunResult r = RunCodec("decode " + path.string() + " -o " + Tmp("bad.wav").string() + kModelFlags);
    EXPECT_NE(r.exit_code, 0) << c.name;
    EXPECT_THAT(r.err, HasSubstr("monologue codec decode: " + path.string())) << c.name;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << c.name;
    EXPECT_EQ(fs::file_size(Tmp("bad.wav")), std::string("an earlier take").size()) << c.name;
  }
  ASSERT_TRUE(
      WriteSafeTensors(Tmp("nocodes.safetensors").string(), {{"tokens", at::zeros({1, 8, 3}, at::kLong)}})
          .ok());
  RunResult r =
      RunCodec("decode " + Tmp("nocodes.safetensors").string() + " -o " + Tmp("bad.wav").string() + kModelFlags);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("no tensor 'codes'"));
}

TEST(CodecCliTest, UnreadableAudioAndMissingCheckpoint) {
  {
    std::ofstream f(Tmp("text.wav"));
    f << "this is not audio\n";
  }
  RunResult r =
      RunCodec("encode " + Tmp("text.wav").string() + " -o " + Tmp("y.safetensors").string() + kModelFlags);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("monologue codec encode: "));
  EXPECT_THAT(r.err, HasSubstr("text.wav"));
  r = RunCodec("encode " + Tmp("missing.wav").string() + " -o " + Tmp("y.safetensors").string() + kModelFlags);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("missing.wav"));
  r = RunCodec("encode " + Tmp("text.wav").string() + " -o " + Tmp("y.safetensors").string() + " --mimi " +
          Tmp("no_such_mimi.safetensors").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("no_such_mimi.safetensors"));
  r = RunCodec("encode " + Tmp("text.wav").string() + " -o " + Tmp("y.safetensors").string() + kModelFlags +
          " --codebooks 0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("codebooks must be in [1, 32], got 0"));
}

}  // namespace
}  // namespace monologue

namespace monologue {
namespace {

// Found by a bad-input audit (2026-12-03): outputs were renamed over whatever was at the path (a symlink, a
// FIFO, /dev/stdout, /dev/full as root), -o - wrote a file named "-", an audio name got safetensors bytes,
// and the released architecture's shape errors gave no hint that --mimi-config was missing.
TEST(CodecCliTest, OutputsFollowTheirNamesAndNeverReplaceLinksOrDevices) {
  WriteWav(Tmp("o_in.wav"), TestSignal(1920 * 2));
  const std::string in = Tmp("o_in.wav").string();
  RunResult r = RunCodec("encode " + in + " -o " + Tmp("codes.wav").string() + kModelFlags);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("codes are written as safetensors"));
  EXPECT_FALSE(fs::exists(Tmp("codes.wav")));

  // -o -: the safetensors bytes on stdout, equal to the file's.
  const fs::path codes = Tmp("o_codes.safetensors");
  ASSERT_EQ(RunCodec("encode " + in + " -o " + codes.string() + kModelFlags).exit_code, 0);
  r = RunCodec("encode " + in + " -o -" + kModelFlags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream file(codes, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(r.out, bytes);

  // A symbolic link: its target gets the codes, the link stays.
  fs::remove(Tmp("o_link.safetensors"));
  fs::remove(Tmp("o_target.safetensors"));
  fs::create_symlink(Tmp("o_target.safetensors"), Tmp("o_link.safetensors"));
  ASSERT_EQ(RunCodec("encode " + in + " -o " + Tmp("o_link.safetensors").string() + kModelFlags).exit_code,
            0);
  EXPECT_TRUE(fs::is_symlink(Tmp("o_link.safetensors")));
  EXPECT_TRUE(SafeTensorsFile::Open(Tmp("o_target.safetensors").string()).ok());

  // decode -o -: WAV by default, Ogg/Opus with --format ogg.
  r = RunCodec("decode " + codes.string() + " -o -" + kModelFlags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 4), "RIFF");
  r = RunCodec("decode " + codes.string() + " -o - --format ogg" + kModelFlags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 4), "OggS");
  r = RunCodec("decode " + codes.string() + " -o " + Tmp("x.mp3").string() + kModelFlags);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("no audio format for '.mp3'"));

  // A device is written, not replaced: a full one is an error, and it stays a device.
  struct stat st;
  if (::stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode)) {
    r = RunCodec("decode " + codes.string() + " -o /dev/full --format wav" + kModelFlags);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_THAT(r.err, HasSubstr("No space left on device"));
    ASSERT_EQ(::stat("/dev/full", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
  }

  // The tiny Mimi without its config: the shape errors say what is missing.
  r = RunCodec("encode " + in + " -o " + Tmp("y.safetensors").string() + " --mimi " + kMimiDir +
               "tiny_mimi.safetensors");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("pass its config JSON with --mimi-config"));
}

TEST(MonologueCliTest, UnknownCommandsAndFailedStdoutWritesAreErrors) {
  RunResult r = test_process::RunMonologue("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown command 'frobnicate' (commands: "));
  struct stat st;
  if (::stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode)) {
    // info prints its report on stdout: a full disk is an error, not a silent success.
    r = test_process::RunShell(test_process::ShellQuote(test_process::MonologueBinary()) + " info " +
                               kMimiDir + "tiny_mimi.safetensors --mimi-config " + kMimiDir +
                               "tiny_mimi_config.json > /dev/full");
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_THAT(r.err, HasSubstr("cannot write to stdout: No space left on device"));
  }
}

}  // namespace
}  // namespace monologue
