// End-to-end tests of `monologue chat` on the tiny-moshi-8 model (regenerated from its deterministic weights,
// tests/dialogue/dialogue_fixtures.h) against the reference's fixtures (tests/reference/
// make_dialogue_fixtures.py): codes and text tokens of every step, the output WAV (as the reference's
// sphn.write_wav writes it) aligned with and as long as the input, --prepend-silence, --stereo, --text-out,
// --fdb on a small tree (== one chat per input; resumable; --samples), and bad inputs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "nlohmann/json.hpp"
#include "tests/dialogue/dialogue_fixtures.h"
#include "tests/common/process.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;
using dialogue_test::LoadReference;
using dialogue_test::ModelDir;
using dialogue_test::Reference;
using ::testing::HasSubstr;

fs::path Tmp(const std::string& name) {
  const char* base = std::getenv("MONOLOGUE_TEST_TMP");
  fs::path dir = fs::path(base != nullptr ? base : ".") / "chat_test";
  fs::create_directories(dir);
  return dir / name;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

using test_process::RunResult;

// Runs `monologue chat ARGS --threads 1`; `env`: "NAME=VALUE" assignments for that command.
RunResult Chat(const std::string& args, const std::string& env = "") {
  return test_process::RunShell(env + (env.empty() ? "" : " ") + test_process::MonologueBinary() + " chat " + args +
                                " --threads 1");
}

// The int16 samples (interleaved) and channel count of a 16-bit PCM WAV (chunks walked, so any header).
std::vector<int16_t> ReadPcm16(const fs::path& path, int* channels) {
  const std::string bytes = ReadFile(path);
  EXPECT_GE(bytes.size(), 12u) << path;
  if (bytes.size() < 12 || bytes.substr(0, 4) != "RIFF" || bytes.substr(8, 4) != "WAVE") {
    ADD_FAILURE() << path << " is not a WAV file";
    return {};
  }
  auto u32 = [&](size_t at) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[at + i]);
    return v;
  };
  size_t pos = 12;
  while (pos + 8 <= bytes.size()) {
    const std::string id = bytes.substr(pos, 4);
    const uint32_t size = u32(pos + 4);
    if (id == "fmt ") {
      EXPECT_EQ(static_cast<uint8_t>(bytes[pos + 8]), 1) << "PCM";
      EXPECT_EQ(static_cast<uint8_t>(bytes[pos + 22]), 16) << "bits";
      *channels = static_cast<uint8_t>(bytes[pos + 10]);
    } else if (id == "data") {
      const size_t n = std::min<size_t>(size, bytes.size() - pos - 8) / 2;
      std::vector<int16_t> out(n);
      std::memcpy(out.data(), bytes.data() + pos + 8, n * 2);
      return out;
    }
    pos += 8 + size + (size & 1);
  }
  ADD_FAILURE() << path << " has no data chunk";
  return {};
}

// A 16-bit mono WAV of `samples` (values k / 32768 of the 16-bit clips are kept exactly).
void WriteWav16(const fs::path& path, const std::vector<float>& samples) {
  std::string b = "RIFF";
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  auto u16 = [&](uint16_t v) {
    b.push_back(static_cast<char>(v & 0xff));
    b.push_back(static_cast<char>(v >> 8));
  };
  const uint32_t data = static_cast<uint32_t>(samples.size() * 2);
  u32(36 + data);
  b += "WAVEfmt ";
  u32(16);
  u16(1);
  u16(1);
  u32(24000);
  u32(48000);
  u16(2);
  u16(16);
  b += "data";
  u32(data);
  for (float x : samples) u16(static_cast<uint16_t>(static_cast<int16_t>(std::lround(x * 32768.0))));
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << b;
}

// The case's clip (its first `samples` samples) as a WAV file.
fs::path CaseClip(const Reference& ref) {
  const std::string clip = ref.meta["clip"].get<std::string>();
  const fs::path path = Tmp("clip_" + clip);
  if (!fs::exists(path)) {
    int channels = 0;
    const std::vector<int16_t> pcm = ReadPcm16(dialogue_test::ClipPath(clip), &channels);
    EXPECT_EQ(channels, 1);
    std::vector<float> x;
    for (size_t i = 0; i < std::min(pcm.size(), ref.meta["samples"].get<size_t>()); ++i)
      x.push_back(pcm[i] / 32768.0f);
    WriteWav16(path, x);
  }
  return path;
}

std::string SamplingFlags(const Reference& ref) {
  std::string s = " --seed " + std::to_string(ref.meta["seed"].get<uint64_t>());
  const auto& ov = ref.meta["overrides"];
  if (ov.contains("temp")) s += " --temp " + std::to_string(ov["temp"].get<double>());
  if (ov.contains("temp_text")) s += " --temp-text " + std::to_string(ov["temp_text"].get<double>());
  if (ov.contains("top_k")) s += " --top-k " + std::to_string(ov["top_k"].get<int>());
  if (ov.contains("top_k_text")) s += " --top-k-text " + std::to_string(ov["top_k_text"].get<int>());
  const double prepend = ref.meta["prepend_samples"].get<double>() / 24000.0;
  if (prepend > 0) s += " --prepend-silence " + std::to_string(prepend);
  return s;
}

void ExpectCodes(const fs::path& path, const Reference& ref, const std::string& what) {
  auto file = SafeTensorsFile::Open(path.string());
  ASSERT_TRUE(file.ok()) << file.status();
  at::Tensor codes = *(*file)->Load("codes");
  at::Tensor text = *(*file)->Load("text_tokens");
  const int64_t frames = static_cast<int64_t>(ref.text_tokens.size());
  ASSERT_EQ(codes.sizes(), (std::vector<int64_t>{1, 8, frames})) << what;
  ASSERT_EQ(text.sizes(), (std::vector<int64_t>{frames})) << what;
  for (int64_t f = 0; f < frames; ++f) {
    ASSERT_EQ(text[f].item<int64_t>(), ref.text_tokens[f]) << what << " frame " << f;
    for (int64_t k = 0; k < 8; ++k) ASSERT_EQ(codes[0][k][f].item<int64_t>(), ref.codes[f][k]) << what;
  }
}

// Output samples vs the reference PCM written as sphn.write_wav does (x * 32767 truncated, clamped): equal
// within one step (the float outputs agree to ~1e-6, which can flip a truncation).
void ExpectPcm(const std::vector<int16_t>& got, const std::vector<float>& ref, int stride, int offset) {
  ASSERT_EQ(got.size() / stride, ref.size());
  int max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double q = std::clamp(static_cast<double>(ref[i]) * 32767.0, -32768.0, 32767.0);
    max_diff = std::max(max_diff, std::abs(got[i * stride + offset] - static_cast<int>(q)));
  }
  EXPECT_LE(max_diff, 1);
}

TEST(chat, MatchesReferenceWithCodesTextAndLength) {
  const Reference ref = LoadReference("greedy_en");
  const fs::path out = Tmp("greedy.wav"), codes = Tmp("greedy.safetensors"), text = Tmp("greedy.json");
  const RunResult r =
      Chat(CaseClip(ref).string() + " -o " + out.string() + " --model " + ModelDir() + SamplingFlags(ref) +
           " --codes-out " + codes.string() + " --text-out " + text.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectCodes(codes, ref, "greedy_en");
  int channels = 0;
  const std::vector<int16_t> pcm = ReadPcm16(out, &channels);
  EXPECT_EQ(channels, 1);
  ExpectPcm(pcm, ref.pcm, 1, 0);
  // Text pieces: the printable tokens, at frame times.
  const nlohmann::json j = nlohmann::json::parse(ReadFile(text));
  std::vector<int> printable;
  std::vector<double> starts;
  for (size_t f = 0; f < ref.text_tokens.size(); ++f) {
    if (ref.text_tokens[f] == 0 || ref.text_tokens[f] == 3) continue;
    printable.push_back(ref.text_tokens[f]);
    starts.push_back(f * 0.08);
  }
  ASSERT_EQ(j["pieces"].size(), printable.size());
  for (size_t i = 0; i < printable.size(); ++i) {
    EXPECT_EQ(j["pieces"][i]["token"].get<int>(), printable[i]);
    EXPECT_NEAR(j["pieces"][i]["start"].get<double>(), starts[i], 1e-6);
  }
  EXPECT_FALSE(j["words"].empty());
  EXPECT_NEAR(j["duration_s"].get<double>(), 30000 / 24000.0, 1e-9);
}

// `--dtype int8` quantises the LM at load, says so, and the reply keeps the input's length; the greedy
// codes part ways with the float reference's (the tiny model flips tokens under int8: tests/dialogue).
TEST(chat, Int8WeightsAreQuantisedAtLoadAndReplyInTime) {
  const Reference ref = LoadReference("greedy_en");
  const fs::path out = Tmp("greedy_int8.wav"), codes = Tmp("greedy_int8.safetensors");
  const RunResult r = Chat(CaseClip(ref).string() + " -o " + out.string() + " --model " + ModelDir() +
                           SamplingFlags(ref) + " --dtype int8 --codes-out " + codes.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("int8 weights: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("quantised at load in"), std::string::npos) << r.err;
  int channels = 0;
  const std::vector<int16_t> pcm = ReadPcm16(out, &channels);
  EXPECT_EQ(pcm.size(), ref.pcm.size());
  auto file = SafeTensorsFile::Open(codes.string());
  ASSERT_TRUE(file.ok()) << file.status();
  const at::Tensor got = *(*file)->Load("codes");
  ASSERT_EQ(got.size(2), static_cast<int64_t>(ref.codes.size()));
  int64_t differ = 0;
  for (int64_t f = 0; f < got.size(2); ++f)
    for (int64_t k = 0; k < 8; ++k) differ += got[0][k][f].item<int64_t>() != ref.codes[f][k];
  EXPECT_GT(differ, 0) << "int8 codes equal to the float reference's everywhere: was the LM quantised?";
}

TEST(chat, PrependSilenceKeepsAlignmentAndStereo) {
  const Reference ref = LoadReference("sampled_fr_silence");
  const fs::path out = Tmp("prepend.wav"), codes = Tmp("prepend.safetensors");
  const fs::path clip = CaseClip(ref);
  RunResult r = Chat(clip.string() + " -o " + out.string() + " --model " + ModelDir() + SamplingFlags(ref) +
                     " --codes-out " + codes.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectCodes(codes, ref, "sampled_fr_silence");  // prepended silence's steps included
  int channels = 0;
  const std::vector<int16_t> mono = ReadPcm16(out, &channels);
  EXPECT_EQ(mono.size(), ref.meta["samples"].get<size_t>());  // the input's length

  const fs::path stereo = Tmp("stereo.wav");
  r = Chat(clip.string() + " -o " + stereo.string() + " --model " + ModelDir() + SamplingFlags(ref) +
           " --stereo");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<int16_t> lr = ReadPcm16(stereo, &channels);
  EXPECT_EQ(channels, 2);
  ASSERT_EQ(lr.size(), 2 * mono.size());
  const std::vector<int16_t> user = ReadPcm16(clip, &channels);
  for (size_t i = 0; i < mono.size(); ++i) {
    ASSERT_EQ(lr[2 * i + 1], mono[i]) << i;            // Moshi on the right
    ASSERT_LE(std::abs(lr[2 * i] - user[i]), 1) << i;  // the user on the left (32768 -> 32767 scale)
  }
}

TEST(chat, FdbTreeEqualsOneChatPerInputAndResumes) {
  const Reference en = LoadReference("sampled_en");
  const Reference fr = LoadReference("sampled_fr_silence");
  const fs::path root = Tmp("fdb");
  fs::create_directories(root / "a");
  fs::create_directories(root / "b" / "c");
  fs::create_directories(root / "d");
  fs::copy_file(CaseClip(en), root / "a" / "input.wav", fs::copy_options::overwrite_existing);
  fs::copy_file(CaseClip(fr), root / "b" / "c" / "input.wav", fs::copy_options::overwrite_existing);
  std::ofstream(root / "d" / "input.wav") << "not audio";
  const std::string sampling = " --seed 5 --temp 0.8 --temp-text 0.7 --top-k 50 --top-k-text 25";
  RunResult r = Chat("--fdb " + root.string() + " --model " + ModelDir() + sampling + " --samples 2");
  EXPECT_EQ(r.exit_code, 1) << r.err;  // d/input.wav is not audio
  EXPECT_THAT(r.err, HasSubstr((root / "d" / "input.wav").string()));
  EXPECT_THAT(r.err, HasSubstr("4 written"));
  EXPECT_FALSE(fs::exists(root / "d" / "output_0.wav"));
  for (const fs::path& dir : {root / "a", root / "b" / "c"}) {
    for (int i = 0; i < 2; ++i) {
      const fs::path single = Tmp("single.wav");
      const RunResult s =
          Chat((dir / "input.wav").string() + " -o " + single.string() + " --model " + ModelDir() +
               " --seed " + std::to_string(5 + i) + " --temp 0.8 --temp-text 0.7 --top-k 50 --top-k-text 25");
      ASSERT_EQ(s.exit_code, 0) << s.err;
      const fs::path batched = dir / ("output_" + std::to_string(i) + ".wav");
      // Same samples up to one 16-bit step: the batched Mimi and LM matmuls round differently in the last
      // float bits, which can flip a truncation; any different code or token would differ far more.
      int channels = 0;
      const std::vector<int16_t> a = ReadPcm16(batched, &channels), b = ReadPcm16(single, &channels);
      ASSERT_EQ(a.size(), b.size()) << batched;
      int max_diff = 0;
      for (size_t k = 0; k < a.size(); ++k) max_diff = std::max(max_diff, std::abs(a[k] - b[k]));
      EXPECT_LE(max_diff, 1) << batched;
    }
  }
  // Resumable: existing outputs are skipped.
  r = Chat("--fdb " + root.string() + " --model " + ModelDir() + sampling + " --samples 2");
  EXPECT_THAT(r.err, HasSubstr("0 written, 4 skipped"));
  // One sample: output.wav, the reference run with seed S for the en clip.
  fs::remove(root / "d" / "input.wav");
  const fs::path one = Tmp("fdb1");
  fs::create_directories(one / "x");
  fs::copy_file(CaseClip(en), one / "x" / "input.wav", fs::copy_options::overwrite_existing);
  r = Chat("--fdb " + one.string() + " --model " + ModelDir() + SamplingFlags(en));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int channels = 0;
  ExpectPcm(ReadPcm16(one / "x" / "output.wav", &channels), en.pcm, 1, 0);
}

// --hf-repo finds the snapshot in the local Hugging Face cache (refs/main), as `transcribe` does.
TEST(chat, HfRepoFromTheLocalCache) {
  const Reference ref = LoadReference("greedy_en");
  const fs::path hub = Tmp("hub");
  const fs::path repo = hub / "models--test--tiny-moshi-8";
  fs::create_directories(repo / "snapshots" / "0123abcd");
  fs::create_directories(repo / "refs");
  for (const char* f :
       {"config.json", "mimi_config.json", "model.safetensors", "mimi.safetensors", "tokenizer.model"}) {
    fs::copy_file(fs::path(ModelDir()) / f, repo / "snapshots" / "0123abcd" / f,
                  fs::copy_options::overwrite_existing);
  }
  std::ofstream(repo / "refs" / "main") << "0123abcd";
  const fs::path codes = Tmp("hf.safetensors");
  const std::string env = "HF_HUB_CACHE=" + hub.string();
  RunResult r = Chat("--hf-repo test/tiny-moshi-8 " + CaseClip(ref).string() + " -o " +
                         Tmp("hf.wav").string() + SamplingFlags(ref) + " --codes-out " + codes.string(),
                     env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectCodes(codes, ref, "--hf-repo");
  r = Chat("--hf-repo test/absent " + CaseClip(ref).string() + " -o " + Tmp("hf.wav").string(), env);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not in the local Hugging Face cache"));
}

// Found by a bad-input audit (2026-12-03): -o x.mp3 or x.ogg got WAV bytes, -o - wrote a file named "-", and
// --seed -1 became 2^64 - 1.
TEST(chat, OutputNamesChooseTheFormatAndStdoutWorks) {
  const Reference ref = LoadReference("greedy_en");
  const std::string args = CaseClip(ref).string() + " --model " + ModelDir() + SamplingFlags(ref);
  RunResult r = Chat(args + " -o " + Tmp("x.mp3").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("no audio format for '.mp3'"));
  r = Chat(args + " -o " + Tmp("x.ogg").string() + " --stereo");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--stereo writes WAV"));
  r = Chat(args + " -o " + Tmp("x.wav").string() + " --codes-out " + Tmp("codes.json").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("codes are written as safetensors"));
  for (const char* bad : {"-1", "18446744073709551616", "1e3"}) {
    r = Chat(args + " -o " + Tmp("x.wav").string() + " --seed " + bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_THAT(r.err, HasSubstr("must be a whole number from 0 to 18446744073709551615")) << bad;
  }
  // -o -: the same WAV bytes as the file.
  const fs::path wav = Tmp("stdout_ref.wav");
  r = Chat(args + " -o " + wav.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Chat(args + " -o -");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, ReadFile(wav));
  EXPECT_FALSE(fs::exists("-"));
  // .ogg / .opus: Ogg/Opus, as long as the input.
  r = Chat(args + " -o " + Tmp("reply.opus").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(Tmp("reply.opus")).substr(0, 4), "OggS");
}

TEST(chat, BadInputsAndModels) {
  const Reference ref = LoadReference("greedy_en");
  const std::string clip = CaseClip(ref).string();
  // An STT model directory.
  RunResult r =
      Chat(clip + " -o " + Tmp("x.wav").string() + " --model " + MONOLOGUE_TEST_DATA_DIR + "/asr/tiny-stt");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("'stt' model"));
  // A missing LM weight file.
  const fs::path broken = Tmp("broken-model");
  fs::create_directories(broken);
  for (const char* f : {"config.json", "mimi_config.json", "mimi.safetensors", "tokenizer.model"}) {
    fs::copy_file(fs::path(ModelDir()) / f, broken / f, fs::copy_options::overwrite_existing);
  }
  r = Chat(clip + " -o " + Tmp("x.wav").string() + " --model " + broken.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("LM weights"));
  // --prepend-silence that is not a finite number of seconds up to an hour (NaN aborted, 1e9 ran out of
  // memory).
  for (const char* bad : {"nan", "inf", "-1"}) {
    r = Chat(clip + " -o " + Tmp("x.wav").string() + " --model " + ModelDir() + " --prepend-silence " + bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_THAT(r.err, HasSubstr(std::string("--prepend-silence: must be a finite number >= 0, got ") + bad));
  }
  r = Chat(clip + " -o " + Tmp("x.wav").string() + " --model " + ModelDir() + " --prepend-silence 1e9");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--prepend-silence must be from 0 to 3600 seconds"));
  // An existing directory as the output: said, and no temporary file left beside it.
  const fs::path out_dir = Tmp("out_is_a_dir");
  fs::create_directories(out_dir);
  r = Chat(clip + " -o " + out_dir.string() + " --model " + ModelDir());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("it is a directory"));
  for (const auto& entry : fs::directory_iterator(out_dir.parent_path())) {
    EXPECT_EQ(entry.path().filename().string().find("out_is_a_dir.tmp"), std::string::npos) << entry.path();
  }
  // Unreadable and empty inputs.
  r = Chat(Tmp("missing.wav").string() + " -o " + Tmp("x.wav").string() + " --model " + ModelDir());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("missing.wav"));
  WriteWav16(Tmp("empty.wav"), {});
  r = Chat(Tmp("empty.wav").string() + " -o " + Tmp("x.wav").string() + " --model " + ModelDir());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no audio"));
  EXPECT_FALSE(fs::exists(Tmp("x.wav")));
  // An output that cannot be written fails before the conversation, not after it.
  r = Chat(clip + " -o " + Tmp("x.wav").string() + " --model " + ModelDir() + " --text-out " + clip +
           "/under_a_file.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot write " + clip + "/under_a_file.json: Not a directory"));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("weights")));  // the model was not loaded
  // Usage errors.
  EXPECT_EQ(Chat(clip + " --model " + ModelDir()).exit_code, 2);  // no -o
}

}  // namespace
}  // namespace monologue
