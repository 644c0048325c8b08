// End-to-end tests of `monologue transcribe` on the committed tiny STT model (tests/data/asr): every output
// format against the reference transcriber's fixtures, stdin input, several inputs in one batch equal to
// one by one, output naming, and bad inputs (unreadable, empty, not audio, wrong model type, missing
// tokenizer, truncated audio).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/common/process.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kAsrDir = std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr/";
// One thread: the tiny model gains nothing from more, and the test machine's cores are shared.
const std::string kModel = " --model " + kAsrDir + "tiny-stt --threads 1";
const std::string kEn = kAsrDir + "speech_en.wav";
const std::string kFr = kAsrDir + "speech_fr.wav";

fs::path Tmp(const std::string& name) {
  const char* base = std::getenv("MONOLOGUE_TEST_TMP");
  fs::path dir = fs::path(base != nullptr ? base : ".") / "transcribe_test";
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

// Runs `monologue transcribe ARGS` (optionally with stdin from a file).
RunResult Transcribe(const std::string& args, const std::string& stdin_file = "") {
  return test_process::RunMonologue("transcribe " + args, {.stdin_file = stdin_file});
}

// One-input runs are reused across tests (each run starts a process and loads the model).
const RunResult& Single(const std::string& args) {
  static std::map<std::string, RunResult> cache;
  auto it = cache.find(args);
  if (it == cache.end()) it = cache.emplace(args, Transcribe(args)).first;
  return it->second;
}

// Batched and one-by-one runs give the same tokens, words and times; VAD probabilities come from batched
// matmuls and may differ in the last float bits.
void ExpectSameTranscript(const std::string& a_text, const std::string& b_text, const std::string& what) {
  nlohmann::json a = nlohmann::json::parse(a_text), b = nlohmann::json::parse(b_text);
  const nlohmann::json va = a["vad"]["no_voice"], vb = b["vad"]["no_voice"];
  ASSERT_EQ(va.size(), vb.size()) << what;
  for (size_t i = 0; i < va.size(); ++i) {
    ASSERT_EQ(va[i].size(), vb[i].size());
    for (size_t h = 0; h < va[i].size(); ++h) {
      EXPECT_NEAR(va[i][h].get<double>(), vb[i][h].get<double>(), 1e-5) << what;
    }
  }
  a["vad"].erase("no_voice");
  b["vad"].erase("no_voice");
  EXPECT_EQ(a, b) << what;
}

nlohmann::json Reference(const std::string& clip) {
  return nlohmann::json::parse(ReadFile(kAsrDir + "ref_tiny-stt_" + clip + ".json"));
}

void ExpectWords(const nlohmann::json& got, const nlohmann::json& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i]["text"], want[i]["text"]) << i;
    EXPECT_NEAR(got[i]["start"].get<double>(), want[i]["start"].get<double>(), 1e-6) << i;
    EXPECT_NEAR(got[i]["end"].get<double>(), want[i]["end"].get<double>(), 1e-6) << i;
    EXPECT_FALSE(got[i]["tokens"].empty()) << i;
  }
}

TEST(Transcribe, TxtIsTheReferenceTranscript) {
  for (const std::string clip : {"speech_en", "speech_fr"}) {
    const RunResult& r = Single(kAsrDir + clip + ".wav" + kModel);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, Reference(clip)["transcript"].get<std::string>() + "\n");
  }
}

TEST(Transcribe, JsonCarriesWordsTokensAndVad) {
  const RunResult& r = Single(kEn + kModel + " --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const nlohmann::json ref = Reference("speech_en");
  EXPECT_EQ(j["text"], ref["transcript"]);
  EXPECT_NEAR(j["duration"].get<double>(), ref["samples"].get<double>() / 24000.0, 1e-9);
  ExpectWords(j["words"], ref["words"]);
  // VAD: one row of 4 head probabilities per 80 ms frame holding input audio.
  const size_t frames = (ref["samples"].get<size_t>() + 1919) / 1920;
  ASSERT_EQ(j["vad"]["times"].size(), frames);
  ASSERT_EQ(j["vad"]["no_voice"].size(), frames);
  EXPECT_EQ(j["vad"]["no_voice"][0].size(), 4u);
  EXPECT_NEAR(j["vad"]["times"][0].get<double>(), 0.08, 1e-9);
  EXPECT_TRUE(j["end_of_turn"].is_array());
  // -o FILE writes the same document.
  const fs::path file = Tmp("en.json");
  RunResult w = Transcribe(kEn + kModel + " --format json -o " + file.string());
  ASSERT_EQ(w.exit_code, 0) << w.err;
  EXPECT_EQ(ReadFile(file), r.out);
}

// Cue lines "start --> end" from srt / vtt output.
std::vector<std::string> CueTimes(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" --> ") != std::string::npos) out.push_back(line);
  }
  return out;
}

TEST(Transcribe, SrtAndVttCoverTheWordsInOrder) {
  const nlohmann::json words = Reference("speech_en")["words"];
  std::string joined;
  for (const auto& w : words) {
    if (!joined.empty()) joined += ' ';
    joined += w["text"].get<std::string>();
  }
  const RunResult& srt = Single(kEn + kModel + " --format srt");
  ASSERT_EQ(srt.exit_code, 0) << srt.err;
  RunResult vtt = Transcribe(kEn + kModel + " --format vtt");
  ASSERT_EQ(vtt.exit_code, 0) << vtt.err;
  EXPECT_EQ(vtt.out.rfind("WEBVTT\n\n", 0), 0u);
  EXPECT_EQ(srt.out.rfind("1\n", 0), 0u);
  const std::vector<std::string> srt_cues = CueTimes(srt.out), vtt_cues = CueTimes(vtt.out);
  ASSERT_FALSE(srt_cues.empty());
  ASSERT_EQ(srt_cues.size(), vtt_cues.size());
  for (size_t i = 0; i < srt_cues.size(); ++i) {
    std::string s = srt_cues[i];
    for (char& c : s) c = c == ',' ? '.' : c;
    EXPECT_EQ(s, vtt_cues[i]);
    EXPECT_EQ(srt_cues[i].size(), std::string("00:00:00,000 --> 00:00:00,000").size()) << srt_cues[i];
  }
  // The first cue starts at the first word's start (rounded to the millisecond).
  char first[40];
  const long long ms = std::llround(words[0]["start"].get<double>() * 1000);
  std::snprintf(first, sizeof(first), "00:00:%02lld,%03lld", ms / 1000, ms % 1000);
  EXPECT_EQ(srt_cues[0].substr(0, 12), first);
  // Cue texts, joined, are the words in order.
  std::string cue_text;
  std::istringstream in(srt.out);
  std::string line;
  int state = 0;  // 0 index, 1 times, 2 text
  while (std::getline(in, line)) {
    if (line.empty()) {
      state = 0;
      continue;
    }
    if (state == 2) {
      if (!cue_text.empty()) cue_text += ' ';
      cue_text += line;
    }
    state = std::min(state + 1, 2);
  }
  EXPECT_EQ(cue_text, joined);
  // -o out.srt / out.vtt ask for that format (they got txt); an explicit --format wins.
  RunResult to_file = Transcribe(kEn + kModel + " -o " + Tmp("by_name.srt").string());
  ASSERT_EQ(to_file.exit_code, 0) << to_file.err;
  EXPECT_EQ(ReadFile(Tmp("by_name.srt")), srt.out);
  to_file = Transcribe(kEn + kModel + " -o " + Tmp("by_name.VTT").string());
  ASSERT_EQ(to_file.exit_code, 0) << to_file.err;
  EXPECT_EQ(ReadFile(Tmp("by_name.VTT")), vtt.out);
  to_file = Transcribe(kEn + kModel + " --format vtt -o " + Tmp("explicit.srt").string());
  ASSERT_EQ(to_file.exit_code, 0) << to_file.err;
  EXPECT_EQ(ReadFile(Tmp("explicit.srt")), vtt.out);
  // --speed paces what is sent to a server; alone it would be ignored.
  to_file = Transcribe(kEn + kModel + " --speed 2");
  EXPECT_EQ(to_file.exit_code, 2);
  EXPECT_THAT(to_file.err, HasSubstr("--speed goes with --server"));
}

TEST(Transcribe, StdinEqualsFile) {
  const RunResult& file = Single(kFr + kModel + " --format json");
  RunResult piped = Transcribe("-" + kModel + " --format json", kFr);
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  nlohmann::json a = nlohmann::json::parse(file.out), b = nlohmann::json::parse(piped.out);
  EXPECT_EQ(b["input"], "-");
  a.erase("input");
  b.erase("input");
  EXPECT_EQ(a, b);
  RunResult txt = Transcribe("-" + kModel, kFr);
  ASSERT_EQ(txt.exit_code, 0) << txt.err;
  EXPECT_EQ(txt.out, Reference("speech_fr")["transcript"].get<std::string>() + "\n");
}

TEST(Transcribe, BatchedInputsEqualOneByOne) {
  // A third input shorter than the others, so slots finish at different steps and a queued input joins.
  const fs::path dir = Tmp("batch");
  RunResult batched =
      Transcribe(kEn + " " + kFr + " " + kEn + " " + kFr + kModel + " --format json --batch-size 3 -o " +
                 Tmp("batch_{index}_{name}.json").string());
  ASSERT_EQ(batched.exit_code, 0) << batched.err;
  const std::vector<std::string> clips = {"speech_en", "speech_fr", "speech_en", "speech_fr"};
  for (size_t i = 0; i < clips.size(); ++i) {
    const std::string one = Single(kAsrDir + clips[i] + ".wav" + kModel + " --format json").out;
    const std::string got = ReadFile(Tmp("batch_" + std::to_string(i + 1) + "_" + clips[i] + ".json"));
    ExpectSameTranscript(got, one, "input " + std::to_string(i + 1));
    ExpectWords(nlohmann::json::parse(got)["words"], Reference(clips[i])["words"]);
  }
  // Several inputs to stdout: in input order, each under a header (txt), or JSON Lines.
  RunResult txt = Transcribe(kEn + " " + kFr + kModel);
  ASSERT_EQ(txt.exit_code, 0) << txt.err;
  EXPECT_EQ(txt.out, "==> " + kEn + " <==\n" + Reference("speech_en")["transcript"].get<std::string>() +
                         "\n==> " + kFr + " <==\n" + Reference("speech_fr")["transcript"].get<std::string>() +
                         "\n");
  RunResult lines = Transcribe(kFr + " " + kEn + kModel + " --format json --batch-size 1");
  ASSERT_EQ(lines.exit_code, 0) << lines.err;
  std::istringstream in(lines.out);
  std::string l1, l2;
  std::getline(in, l1);
  std::getline(in, l2);
  EXPECT_EQ(nlohmann::json::parse(l1)["text"], Reference("speech_fr")["transcript"]);
  EXPECT_EQ(nlohmann::json::parse(l2)["text"], Reference("speech_en")["transcript"]);
  // -o DIR: DIR/<name>.<format>; names that clash are refused before any work.
  RunResult to_dir = Transcribe(kEn + " " + kFr + kModel + " --format srt -o " + dir.string());
  ASSERT_EQ(to_dir.exit_code, 0) << to_dir.err;
  EXPECT_EQ(ReadFile(dir / "speech_en.srt"), Single(kEn + kModel + " --format srt").out);
  EXPECT_TRUE(fs::exists(dir / "speech_fr.srt"));
  RunResult clash = Transcribe(kEn + " " + kEn + kModel + " -o " + dir.string());
  EXPECT_NE(clash.exit_code, 0);
  EXPECT_THAT(clash.err, HasSubstr("{index}"));
}

TEST(Transcribe, BadInputs) {
  // Unreadable input: an error naming it; the other input is still transcribed.
  RunResult missing = Transcribe(Tmp("absent.wav").string() + " " + kFr + kModel);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("absent.wav"));
  EXPECT_THAT(missing.out, HasSubstr(Reference("speech_fr")["transcript"].get<std::string>()));
  // Not audio.
  const fs::path text = Tmp("notes.wav");
  std::ofstream(text) << "this is not audio at all, just some text\n";
  RunResult not_audio = Transcribe(text.string() + kModel);
  EXPECT_EQ(not_audio.exit_code, 1);
  EXPECT_THAT(not_audio.err, HasSubstr("notes.wav"));
  // Empty audio: a WAV header with no samples.
  const fs::path empty = Tmp("empty.wav");
  {
    std::ofstream f(empty, std::ios::binary);
    const unsigned char header[44] = {'R', 'I', 'F',  'F',  36,  0,   0,    0,    'W', 'A', 'V',
                                      'E', 'f', 'm',  't',  ' ', 16,  0,    0,    0,   1,   0,
                                      1,   0,   0xc0, 0x5d, 0,   0,   0x80, 0xbb, 0,   0,   2,
                                      0,   16,  0,    'd',  'a', 't', 'a',  0,    0,   0,   0};
    f.write(reinterpret_cast<const char*>(header), sizeof(header));
  }
  RunResult no_audio = Transcribe(empty.string() + kModel);
  EXPECT_EQ(no_audio.exit_code, 1);
  EXPECT_THAT(no_audio.err, HasSubstr("empty.wav"));
  EXPECT_EQ(no_audio.out, "");
  // Wrong model type.
  RunResult tts =
      Transcribe(kEn + " --threads 1 --model " + std::string(MONOLOGUE_TEST_DATA_DIR) + "/configs/tiny-tts");
  EXPECT_EQ(tts.exit_code, 1);
  EXPECT_THAT(tts.err, HasSubstr("'tts' model"));
  // Missing tokenizer: the config names a file that is not there.
  const fs::path model = Tmp("no_tokenizer");
  fs::create_directories(model);
  nlohmann::json config = nlohmann::json::parse(ReadFile(kAsrDir + "tiny-stt/config.json"));
  for (const char* key : {"moshi_name", "mimi_name", "mimi_config_name"}) {
    config[key] = kAsrDir + "tiny-stt/" + config[key].get<std::string>();
  }
  config["tokenizer_name"] = "tokenizer_en_fr_audio_8000.model";
  std::ofstream(model / "config.json") << config.dump();
  RunResult no_tok = Transcribe(kEn + " --threads 1 --model " + model.string());
  EXPECT_EQ(no_tok.exit_code, 1);
  EXPECT_THAT(no_tok.err, HasSubstr("text tokenizer"));
  EXPECT_THAT(no_tok.err, HasSubstr("tokenizer_en_fr_audio_8000.model"));
  // Absent Hugging Face repo: says where it looked and how to get it.
  RunResult hf = Transcribe(kEn + " --hf-repo kyutai/stt-1b-en_fr");
  if (hf.exit_code != 0) {
    EXPECT_THAT(hf.err, HasSubstr("models--kyutai--stt-1b-en_fr"));
  }
}

TEST(Transcribe, TruncatedInputTranscribesWhatDecodedAndWarns) {
  const std::string whole = ReadFile(kEn);
  const fs::path cut = Tmp("cut.wav");
  std::ofstream(cut, std::ios::binary) << whole.substr(0, 60000);
  RunResult r = Transcribe(cut.string() + kModel + " --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("warning"));
  EXPECT_THAT(r.err, HasSubstr("cut.wav"));
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j.contains("warning"));
  const double decoded = (60000.0 - 44.0) / 2.0 / 24000.0;
  EXPECT_NEAR(j["duration"].get<double>(), decoded, 1.0 / 24000);
  // The words decided before the cut are the full clip's words (streaming: nothing later can change them).
  const nlohmann::json full = Reference("speech_en")["words"];
  ASSERT_FALSE(j["words"].empty());
  for (size_t i = 0; i + 1 < j["words"].size(); ++i) {
    if (j["words"][i]["end"].get<double>() + 0.7 > decoded) break;
    EXPECT_EQ(j["words"][i]["text"], full[i]["text"]) << i;
  }
}

}  // namespace
}  // namespace monologue
