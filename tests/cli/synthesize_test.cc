// End-to-end tests of `monologue synthesize` on the committed tiny TTS models (tests/data/tts): the audio, word
// timestamps and codes of the reference TTSModel fixtures through every input kind (text, stdin, --script,
// --text-file batches), output formats, sampling/cfg/padding flags, and bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "nlohmann/json.hpp"
#include "tests/common/process.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kTts = std::string(MONOLOGUE_TEST_DATA_DIR) + "/tts/";
const std::string kModel = " --model " + kTts + "tiny-tts --voices " + kTts + "voices --threads 1 --no-progress";

fs::path Tmp(const std::string& name) {
  const char* base = std::getenv("MONOLOGUE_TEST_TMP");
  fs::path dir = fs::path(base != nullptr ? base : ".") / "synthesize_test";
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

RunResult Synthesize(const std::string& args, const std::string& stdin_file = "") {
  return test_process::RunMonologue("synthesize " + args, {.stdin_file = stdin_file});
}

nlohmann::json Meta(const std::string& name) { return nlohmann::json::parse(ReadFile(kTts + "ref_" + name + ".json")); }

at::Tensor FixtureTensor(const std::string& name, const std::string& key) {
  auto file = SafeTensorsFile::Open(kTts + "ref_" + name + ".safetensors");
  EXPECT_TRUE(file.ok()) << file.status();
  return (*file)->Load(key)->clone();
}

std::string Quoted(const std::string& s) { return test_process::ShellQuote(s); }

at::Tensor RawFloats(const std::string& bytes) {
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return at::tensor(v, at::kFloat);
}

double RelL2(const at::Tensor& a, const at::Tensor& ref) {
  return (a - ref).norm().item<double>() / std::max(ref.norm().item<double>(), 1e-12);
}

// The codes file equals the fixture's (item `item` of a batch fixture) over the item's own frames, and the text
// stream over its steps.
void ExpectCodes(const fs::path& codes_file, const std::string& fixture, int item = -1) {
  SCOPED_TRACE(codes_file.string());
  auto file = SafeTensorsFile::Open(codes_file.string());
  ASSERT_TRUE(file.ok()) << file.status();
  at::Tensor codes = *(*file)->Load("codes"), text = *(*file)->Load("text_tokens");
  nlohmann::json meta = Meta(fixture);
  const nlohmann::json& m = item >= 0 ? meta["items"][item] : meta;
  const int64_t steps = m["end_step"].get<int64_t>() + 20, frames = steps - 18;
  at::Tensor want_codes = FixtureTensor(fixture, "codes"), want_text = FixtureTensor(fixture, "text_fed");
  if (item >= 0) {
    want_codes = want_codes[item];
    want_text = want_text[item];
  }
  ASSERT_EQ(codes.sizes(), (std::vector<int64_t>{1, 8, frames}));
  EXPECT_TRUE(at::equal(codes[0], want_codes.narrow(1, 0, frames)));
  EXPECT_TRUE(at::equal(text, want_text.narrow(0, 0, steps)));
}

TEST(SynthesizeCliTest, TextToAudioWordsAndCodesEqualTheReference) {
  const nlohmann::json meta = Meta("single_greedy");
  const fs::path out = Tmp("single.raw"), words = Tmp("single.words.json"), codes = Tmp("single.codes.safetensors");
  RunResult r = Synthesize(Quoted(meta["script"][0]) + kModel + " --voice alice --temp 0 -o " + out.string() +
                           " --format f32le --words-out " + words.string() + " --codes-out " + codes.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  at::Tensor pcm = RawFloats(ReadFile(out)), want = FixtureTensor("single_greedy", "pcm");
  ASSERT_EQ(pcm.numel(), want.numel());
  EXPECT_LT(RelL2(pcm, want), 1e-4);
  ExpectCodes(codes, "single_greedy");
  const nlohmann::json got = nlohmann::json::parse(ReadFile(words));
  const auto& transcript = meta["transcript"];
  ASSERT_EQ(got.size(), transcript.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i]["text"], transcript[i][0]);
    EXPECT_DOUBLE_EQ(got[i]["start"].get<double>(), transcript[i][1].get<int64_t>() / 12.5);
    const double end = i + 1 < got.size() ? transcript[i + 1][1].get<int64_t>() / 12.5
                                          : meta["end_step"].get<int64_t>() / 12.5;
    EXPECT_DOUBLE_EQ(got[i]["end"].get<double>(), end);
  }
}

// `--dtype int8` quantises the LM at load and says so; every word of the text is spoken, in order; the greedy
// utterance parts ways with the float reference's (73 frames instead of 69 for this fixture: tests/tts).
TEST(SynthesizeCliTest, Int8WeightsAreQuantisedAtLoadAndSpeakEveryWord) {
  const nlohmann::json meta = Meta("single_greedy");
  const fs::path out = Tmp("single_int8.wav"), words = Tmp("single_int8.words.json"),
                 codes = Tmp("single_int8.codes.safetensors");
  RunResult r =
      Synthesize(Quoted(meta["script"][0]) + kModel + " --voice alice --temp 0 --dtype int8 -o " +
                 out.string() + " --words-out " + words.string() + " --codes-out " + codes.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("int8 weights: "));
  EXPECT_THAT(r.err, HasSubstr("quantised at load in"));
  const nlohmann::json got = nlohmann::json::parse(ReadFile(words));
  const auto& transcript = meta["transcript"];
  ASSERT_EQ(got.size(), transcript.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i]["text"], transcript[i][0]);
  auto file = SafeTensorsFile::Open(codes.string());
  ASSERT_TRUE(file.ok()) << file.status();
  const at::Tensor c = *(*file)->Load("codes");
  const at::Tensor want = FixtureTensor("single_greedy", "codes");
  const bool same = c.size(2) == want.size(1) && at::equal(c[0], want);
  EXPECT_FALSE(same) << "int8 codes equal to the float reference's: was the LM quantised?";
  EXPECT_GT(fs::file_size(out), 44u);
}

TEST(SynthesizeCliTest, StdinToStdoutWavEqualsTheReference) {
  const nlohmann::json meta = Meta("french_greedy");
  const fs::path text = Tmp("french.txt");
  std::ofstream(text) << meta["script"][0].get<std::string>() << "\n";
  RunResult r = Synthesize("-" + kModel + " --voice carol --temp 0 -o -", text.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // A streaming WAV (open length) of 16-bit PCM.
  ASSERT_GT(r.out.size(), 44u);
  EXPECT_EQ(r.out.substr(0, 4), "RIFF");
  EXPECT_EQ(r.out.substr(8, 4), "WAVE");
  const size_t samples = (r.out.size() - 44) / 2;
  const int64_t frames = meta["end_step"].get<int64_t>() + 2;
  EXPECT_EQ(static_cast<int64_t>(samples), frames * 1920);
  std::vector<float> pcm(samples);
  for (size_t i = 0; i < samples; ++i) {
    int16_t v;
    std::memcpy(&v, r.out.data() + 44 + 2 * i, 2);
    pcm[i] = v / 32768.0f;
  }
  at::Tensor want = FixtureTensor("french_greedy", "pcm");
  at::Tensor got = at::tensor(pcm, at::kFloat).narrow(0, 0, want.numel());
  EXPECT_LT((got - want).abs().max().item<float>(), 1.5f / 32768.0f);  // 16-bit rounding only
}

TEST(SynthesizeCliTest, ScriptWithTwoVoicesEqualsTheReferenceDialogue) {
  const nlohmann::json meta = Meta("dialogue_greedy");
  const fs::path script = Tmp("dialogue.json"), codes = Tmp("dialogue.codes.safetensors");
  std::ofstream(script) << meta["script"].dump();
  RunResult r = Synthesize("--script " + script.string() + kModel + " --voice bob --voice " + kTts +
                           "voices/carol.0000tiny@0.safetensors --temp 0 -o " + Tmp("dialogue.ogg").string() +
                           " --codes-out " + codes.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, Not(HasSubstr("note:")));
  ExpectCodes(codes, "dialogue_greedy");
  EXPECT_EQ(ReadFile(Tmp("dialogue.ogg")).substr(0, 4), "OggS");
}

// Several utterances into one file (`-o out.wav`) used to make a directory named out.wav; voices that do not
// match the script's two speakers ran without a word.
TEST(SynthesizeCliTest, SeveralUtterancesNeedADirectoryOrAPatternAndVoicesMatchTheScript) {
  const fs::path lines = Tmp("two_lines.txt");
  std::ofstream(lines) << "Hello there.\nSecond line.\n";
  const fs::path wav = Tmp("several.wav");
  fs::remove_all(wav);
  RunResult into_wav =
      Synthesize("--text-file " + lines.string() + kModel + " --voice alice -o " + wav.string());
  EXPECT_EQ(into_wav.exit_code, 2);
  EXPECT_THAT(into_wav.err, HasSubstr("2 utterances cannot all go to one file"));
  EXPECT_THAT(into_wav.err, HasSubstr((wav.parent_path() / "several-{index}.wav").string()));
  EXPECT_FALSE(fs::exists(wav));
  const fs::path existing = Tmp("existing.out");
  std::ofstream(existing) << "keep";
  RunResult into_existing =
      Synthesize("--text-file " + lines.string() + kModel + " --voice alice -o " + existing.string());
  EXPECT_EQ(into_existing.exit_code, 2);
  EXPECT_EQ(ReadFile(existing), "keep");
  RunResult words = Synthesize("--text-file " + lines.string() + kModel + " --voice alice -o " +
                               Tmp("several_dir").string() + " --words-out " + Tmp("several.json").string());
  EXPECT_EQ(words.exit_code, 2);
  EXPECT_THAT(words.err, HasSubstr("--words-out"));

  const fs::path script = Tmp("two_turns.json");
  std::ofstream(script) << R"(["Hello there.", "Hi."])";
  RunResult one_voice = Synthesize("--script " + script.string() + kModel + " --voice alice -o " +
                                   Tmp("one_voice.wav").string());
  EXPECT_EQ(one_voice.exit_code, 0) << one_voice.err;
  EXPECT_THAT(one_voice.err, HasSubstr("turns 2, 4, ... are the second speaker's, who has no --voice"));
  RunResult three_voices =
      Synthesize("--script " + script.string() + kModel + " --voice alice --voice bob --voice carol -o " +
                 Tmp("three.wav").string());
  EXPECT_EQ(three_voices.exit_code, 0) << three_voices.err;
  EXPECT_THAT(three_voices.err, HasSubstr("--voice carol conditions the model but never speaks"));
  RunResult text_two_voices =
      Synthesize("Hello." + kModel + " --voice alice --voice bob -o " + Tmp("tv.wav").string());
  EXPECT_EQ(text_two_voices.exit_code, 0) << text_two_voices.err;
  EXPECT_THAT(text_two_voices.err, HasSubstr("only the first --voice speaks (alice)"));
}

TEST(SynthesizeCliTest, TextFileLinesAreBatchedAndEqualTheReferenceBatch) {
  const nlohmann::json meta = Meta("batch3_greedy");
  const fs::path lines = Tmp("lines.txt");
  {
    std::ofstream f(lines);
    for (const auto& item : meta["items"]) f << item["script"][0].get<std::string>() << "\n\n";
  }
  const fs::path dir = Tmp("batch_out");
  RunResult r = Synthesize("--text-file " + lines.string() + kModel + " --voice alice --temp 0 -o " + dir.string() +
                           " --codes-out " + (dir / "{name}.codes.safetensors").string() + " --batch-size 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Named after the text file and the line number (blank lines skipped).
  ExpectCodes(dir / "lines-1.codes.safetensors", "batch3_greedy", 0);
  ExpectCodes(dir / "lines-3.codes.safetensors", "batch3_greedy", 1);
  ExpectCodes(dir / "lines-5.codes.safetensors", "batch3_greedy", 2);
  EXPECT_TRUE(fs::exists(dir / "lines-5.wav"));
}

TEST(SynthesizeCliTest, SamplingCfgAndPaddingFlagsEqualTheirReferenceRuns) {
  const nlohmann::json sampled = Meta("single_sampled");
  RunResult a = Synthesize(Quoted(sampled["script"][0]) + kModel + " --voice alice --temp 0.6 --seed 1234 -o " +
                           Tmp("s.wav").string() + " --codes-out " + Tmp("sampled.safetensors").string());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ExpectCodes(Tmp("sampled.safetensors"), "single_sampled");
  RunResult b = Synthesize(Quoted(sampled["script"][0]) + kModel + " --voice alice --temp 0 --padding-bonus 5 -o " +
                           Tmp("b.wav").string() + " --codes-out " + Tmp("bonus.safetensors").string());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  ExpectCodes(Tmp("bonus.safetensors"), "padding_bonus_greedy");
  RunResult c = Synthesize(Quoted(sampled["script"][0]) + " --model " + kTts + "tiny-tts-nocfg --voices " + kTts +
                           "voices --threads 1 --voice carol --temp 0 --cfg-coef 2 -o " + Tmp("c.wav").string() +
                           " --codes-out " + Tmp("nocfg.safetensors").string());
  ASSERT_EQ(c.exit_code, 0) << c.err;
  ExpectCodes(Tmp("nocfg.safetensors"), "nocfg_cfg2_greedy");
}

TEST(SynthesizeCliTest, BadInputGetsClearErrors) {
  const std::string out = " -o " + Tmp("bad.wav").string();
  RunResult empty = Synthesize("'   '" + kModel + " --voice alice" + out);
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_THAT(empty.err, HasSubstr("no text to speak"));
  RunResult broken = Synthesize("hello" + kModel + " --voice broken" + out);
  EXPECT_EQ(broken.exit_code, 1);
  EXPECT_THAT(broken.err, HasSubstr("speaker_wavs has shape [1, 8, 125]"));
  RunResult unknown = Synthesize("hello" + kModel + " --voice alicia" + out);
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("closest: alice"));
  RunResult cfg = Synthesize("hello" + kModel + " --voice alice --cfg-coef 2.2" + out);
  EXPECT_EQ(cfg.exit_code, 1);
  EXPECT_THAT(cfg.err, HasSubstr("not one this model was distilled for"));
  RunResult stt = Synthesize("hello --model " + std::string(MONOLOGUE_TEST_DATA_DIR) +
                             "/asr/tiny-stt --voice alice --voices " + kTts + "voices" + out);
  EXPECT_EQ(stt.exit_code, 1);
  EXPECT_THAT(stt.err, HasSubstr("text-to-speech"));
  RunResult unwritable = Synthesize("hello" + kModel + " --voice alice -o /proc/monologue/x.wav");
  EXPECT_EQ(unwritable.exit_code, 1);
  EXPECT_THAT(unwritable.err, HasSubstr("/proc/monologue/x.wav"));
  RunResult two_inputs = Synthesize("hello --script x.json" + kModel + out);
  EXPECT_EQ(two_inputs.exit_code, 2);
  RunResult no_output = Synthesize("hello" + kModel + " --voice alice");
  EXPECT_EQ(no_output.exit_code, 2);
  EXPECT_THAT(no_output.err, HasSubstr("-o OUT is required"));
  RunResult bad_script = Synthesize("--script " + kTts + "voices/alice.0000tiny@0.safetensors" + kModel + out);
  EXPECT_EQ(bad_script.exit_code, 1);
  EXPECT_THAT(bad_script.err, HasSubstr("not valid JSON"));
  // One line of a batch maps to no word: it fails, the others are still written.
  const fs::path lines = Tmp("mixed.txt");
  std::ofstream(lines) << "(())\nShort one.\n";
  const fs::path dir = Tmp("mixed_out");
  RunResult mixed = Synthesize("--text-file " + lines.string() + kModel + " --voice alice --temp 0 -o " + dir.string());
  EXPECT_EQ(mixed.exit_code, 1);
  EXPECT_THAT(mixed.err, HasSubstr("mixed-1: tts session: no text to speak"));
  EXPECT_GT(fs::file_size(dir / "mixed-2.wav"), 44u);
  // A folder or an audio file given as a voice is named as such (it read as a bad Hugging Face file name).
  RunResult folder = Synthesize("hello" + kModel + " --voice " + kTts + "voices" + out);
  EXPECT_EQ(folder.exit_code, 1);
  EXPECT_THAT(folder.err, HasSubstr("is a folder: pass --voices"));
  RunResult audio = Synthesize("hello" + kModel + " --voice " + std::string(MONOLOGUE_TEST_DATA_DIR) +
                               "/asr/speech_en.wav" + out);
  EXPECT_EQ(audio.exit_code, 1);
  EXPECT_THAT(audio.err, HasSubstr("is a file but not a voice embedding"));
  // --voice and --text-file take one value each: the text after them is the text (it became more voices).
  RunResult text_after = Synthesize(kModel + " --voice alice hello there" + out);
  EXPECT_EQ(text_after.exit_code, 0) << text_after.err;
  // --seed is a whole number that fits 64 bits (-1 and 2^64 both became 2^64 - 1).
  for (const char* bad : {"-1", "18446744073709551616"}) {
    RunResult seed = Synthesize("hello" + kModel + " --voice alice --seed " + bad + out);
    EXPECT_NE(seed.exit_code, 0) << bad;
    EXPECT_THAT(seed.err, HasSubstr("must be a whole number from 0 to 18446744073709551615")) << bad;
  }
}

// An output that is a symbolic link keeps the link (its target gets the audio), and one that has been made
// private keeps its permissions: the finished file used to be renamed over the link (or a device, as root).
TEST(SynthesizeCliTest, ALinkedOrPrivateOutputKeepsWhatItIs) {
  const fs::path dir = Tmp("linked");
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "target.wav") << "old";
  fs::create_symlink("target.wav", dir / "link.wav");
  RunResult r = Synthesize("hello" + kModel + " --voice alice --temp 0 -o " + (dir / "link.wav").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::is_symlink(dir / "link.wav"));
  EXPECT_GT(fs::file_size(dir / "target.wav"), 44u);
  fs::permissions(dir / "target.wav", fs::perms::owner_read | fs::perms::owner_write);
  r = Synthesize("hello again" + kModel + " --voice alice --temp 0 -o " + (dir / "target.wav").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fs::status(dir / "target.wav").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
  EXPECT_EQ(entries, 2);  // no temporary left
}

// Found by probing the CLI with bad input (2026-12-03): each case used to abort, be accepted, or destroy a
// file.
TEST(SynthesizeCliTest, BadInputLeavesExistingOutputAndSaysWhatIsWrong) {
  // A failing run leaves a file already at -o as it was, and no temporary file beside it.
  const fs::path dir = Tmp("keep");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path keep = dir / "keep.wav";
  std::ofstream(keep, std::ios::binary) << "an earlier take";
  auto expect_kept = [&](const RunResult& r, const std::string& what) {
    EXPECT_EQ(r.exit_code, 1) << what << ": " << r.err;
    EXPECT_EQ(ReadFile(keep), "an earlier take") << what;
    size_t files = 0;
    for (const auto& entry : fs::directory_iterator(dir)) files += entry.is_regular_file();
    EXPECT_EQ(files, 1u) << what << ": a temporary file was left behind";
  };
  const std::string to_keep = " -o " + keep.string();
  RunResult cfg = Synthesize("hello" + kModel + " --voice alice --cfg-coef 9" + to_keep);
  expect_kept(cfg, "cfg");
  EXPECT_THAT(cfg.err, HasSubstr("not one this model was distilled for"));
  RunResult broken = Synthesize("hello" + kModel + " --voice broken" + to_keep);
  expect_kept(broken, "broken voice");
  // Text that is not UTF-8 is refused, naming the byte.
  const fs::path bad_text = Tmp("not_utf8.txt");
  std::ofstream(bad_text, std::ios::binary) << "abc \xff\xfe\n";
  RunResult utf8 = Synthesize("--text-file " + bad_text.string() + kModel + " --voice alice" + to_keep);
  expect_kept(utf8, "invalid UTF-8");
  EXPECT_THAT(utf8.err, HasSubstr("not valid UTF-8: byte 0xff at byte 4"));
  // A voice holding NaN.
  const fs::path nan_voice = Tmp("nan_voice.safetensors");
  ASSERT_TRUE(WriteSafeTensors(nan_voice.string(), {{"speaker_wavs", at::full({1, 16, 125}, NAN)}}).ok());
  RunResult nan = Synthesize("hello" + kModel + " --voice " + nan_voice.string() + to_keep);
  expect_kept(nan, "NaN voice");
  EXPECT_THAT(nan.err, HasSubstr("holds NaN or infinite values"));
  // A failing run to a new path leaves nothing there (that path is written as it goes: it can be followed).
  RunResult fresh = Synthesize("hello" + kModel + " --voice broken -o " + (dir / "fresh.wav").string());
  EXPECT_EQ(fresh.exit_code, 1);
  EXPECT_FALSE(fs::exists(dir / "fresh.wav"));
  // A successful run replaces it.
  RunResult ok = Synthesize("hello" + kModel + " --voice alice" + to_keep);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_GT(fs::file_size(keep), 44u);
  EXPECT_EQ(ReadFile(keep).substr(0, 4), "RIFF");
  // An extension that names no audio format the writer has, a directory as the script or the text file.
  RunResult mp3 = Synthesize("hello" + kModel + " --voice alice -o " + (dir / "x.mp3").string());
  EXPECT_EQ(mp3.exit_code, 1);
  EXPECT_THAT(mp3.err, HasSubstr("no audio format for '.mp3'"));
  EXPECT_FALSE(fs::exists(dir / "x.mp3"));
  RunResult script_dir =
      Synthesize("--script " + dir.string() + kModel + " --voice alice --voice bob" + to_keep);
  EXPECT_EQ(script_dir.exit_code, 1);
  EXPECT_THAT(script_dir.err, HasSubstr("is a directory"));
  RunResult text_dir = Synthesize("--text-file " + dir.string() + kModel + " --voice alice" + to_keep);
  EXPECT_EQ(text_dir.exit_code, 1);
  EXPECT_THAT(text_dir.err, HasSubstr("--text-file " + dir.string() + ": is a directory"));
  // Numeric flags: NaN and out-of-range values are refused with the rule in words.
  const std::vector<std::pair<std::string, std::string>> flags = {
      {"--temp nan", "--temp: must be a finite number >= 0, got nan"},
      {"--threads 100000", "--threads: must be a whole number from 0"},
      {"--batch-size 0", "--batch-size: must be a whole number >= 1, got 0"}};
  for (const auto& [flag, message] : flags) {
    RunResult r = Synthesize("hello" + kModel + " --voice alice " + flag + to_keep);
    EXPECT_NE(r.exit_code, 0) << flag;
    EXPECT_THAT(r.err, HasSubstr(message));
  }
  EXPECT_EQ(ReadFile(keep).substr(0, 4), "RIFF");
}

}  // namespace
}  // namespace monologue

namespace monologue {
namespace {

// With no --model and no --voice, the DSM defaults come from the Hugging Face cache: kyutai/tts-1.6b-en_fr and
// the voice expresso/ex03-ex01_happy_001_channel1_334s.wav of kyutai/tts-voices (here: the tiny model and
// the alice voice laid out as those repos are).
TEST(SynthesizeCliTest, DefaultModelAndVoiceComeFromTheHfCache) {
  const fs::path hub = Tmp("hf_hub");
  fs::remove_all(hub);
  const fs::path model = hub / "models--kyutai--tts-1.6b-en_fr";
  fs::create_directories(model / "snapshots" / "abc123");
  fs::create_directories(model / "refs");
  std::ofstream(model / "refs" / "main") << "abc123";
  for (const auto& entry : fs::directory_iterator(kTts + "tiny-tts")) {
    fs::create_symlink(entry.path(), model / "snapshots" / "abc123" / entry.path().filename());
  }
  const fs::path voices = hub / "models--kyutai--tts-voices" / "snapshots" / "def456" / "expresso";
  fs::create_directories(voices);
  fs::copy_file(kTts + "voices/alice.0000tiny@0.safetensors",
                voices / "ex03-ex01_happy_001_channel1_334s.wav.0000tiny@0.safetensors");
  const nlohmann::json meta = Meta("single_greedy");
  const fs::path codes = Tmp("hf.codes.safetensors");
  const RunResult run = test_process::RunShell(
      "HF_HUB_CACHE=" + hub.string() + " " + test_process::MonologueBinary() + " synthesize " +
      Quoted(meta["script"][0]) + " --temp 0 --threads 1 --no-progress -o " + Tmp("hf.wav").string() +
      " --codes-out " + codes.string());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ExpectCodes(codes, "single_greedy");
  // A repo that is not in the cache: a clear error saying how to get it.
  const RunResult missing =
      test_process::RunShell("HF_HUB_CACHE=" + hub.string() + " " + test_process::MonologueBinary() +
                             " synthesize hello --hf-repo kyutai/nope -o " + Tmp("x.wav").string());
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("kyutai/nope is not in the local Hugging Face cache"));
}

}  // namespace
}  // namespace monologue
