// WavWriter / OggOpusWriter / OpenAudioWriter: round trips through AudioDecoder, header bytes, streaming
// to byte sinks, crash safety (a child process that exits without Close).
#include "core/audio/audio_writer.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "absl/strings/match.h"
#include "core/audio/audio_decoder.h"
#include "core/audio/ogg_opus_writer.h"
#include "core/audio/wav_writer.h"
#include "gtest/gtest.h"
#include "tests/audio/audio_test_util.h"

namespace monologue {
namespace {

using testing::DecoderOptions;
using testing::WriterOptions;
using testing::AudioData;
using testing::ReadBytes;
using testing::TmpPath;

uint32_t U32(const std::vector<uint8_t>& b, size_t at) {
  return b[at] | b[at + 1] << 8 | b[at + 2] << 16 | uint32_t{b[at + 3]} << 24;
}
uint16_t U16(const std::vector<uint8_t>& b, size_t at) {
  return static_cast<uint16_t>(b[at] | b[at + 1] << 8);
}

std::vector<float> RandomSamples(size_t n, uint32_t seed, float amplitude = 0.9f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-amplitude, amplitude);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Writes `samples` in random-size chunks (0..999) through `writer`.
void WriteInChunks(AudioWriter& writer, const std::vector<float>& samples, uint32_t seed) {
  std::mt19937 rng(seed);
  size_t offset = 0;
  while (offset < samples.size()) {
    const size_t n = std::min<size_t>(samples.size() - offset, rng() % 1000);
    ASSERT_TRUE(writer.Write(std::span<const float>(samples.data() + offset, n)).ok());
    offset += n;
  }
  EXPECT_EQ(writer.samples_written(), static_cast<int64_t>(samples.size()));
}

std::vector<float> Decode(const std::string& path, int rate) {
  auto decoded =
      DecodeAudioFile(path, DecoderOptions([&](AudioDecoderOptions& o) { o.target_sample_rate = rate; }));
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  if (!decoded.ok()) return {};
  EXPECT_TRUE(decoded->warning.ok()) << decoded->warning;
  return decoded->samples;
}

std::vector<float> SpeechAt24k() {
  auto decoded = DecodeAudioFile(AudioData("speech_16k_mono.wav"));
  EXPECT_TRUE(decoded.ok());
  return decoded.ok() ? decoded->samples : std::vector<float>{};
}

TEST(WavWriterTest, FloatRoundTripIsExact) {
  const std::string path = TmpPath("float.wav");
  std::vector<float> samples = RandomSamples(24000 + 123, 1, 1.5f);  // beyond [-1, 1] is kept in float
  samples[5] = 1.0f;
  samples[6] = -1.0f;
  samples[7] = 1e-30f;
  {
    auto writer = OpenAudioWriter(
        path, WriterOptions([&](AudioWriterOptions& o) { o.wav_sample_format = WavSampleFormat::kFloat32; }));
    ASSERT_TRUE(writer.ok()) << writer.status();
    WriteInChunks(**writer, samples, 2);
    ASSERT_TRUE((*writer)->Close().ok());
    EXPECT_TRUE((*writer)->Close().ok());          // idempotent
    EXPECT_FALSE((*writer)->Write(samples).ok());  // closed
  }
  auto decoded = DecodeAudioFile(path);  // 24 kHz in, 24 kHz out: no resampling, exact
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->info.codec, "pcm_f32le");
  EXPECT_EQ(decoded->samples, samples);

  // Header: RIFF size, fmt (IEEE float, 18 bytes), fact = sample count, data size, patched on Close.
  const std::vector<uint8_t> b = ReadBytes(path);
  ASSERT_EQ(b.size(), 58 + 4 * samples.size());
  EXPECT_EQ(std::memcmp(b.data(), "RIFF", 4), 0);
  EXPECT_EQ(U32(b, 4), b.size() - 8);
  EXPECT_EQ(std::memcmp(b.data() + 8, "WAVEfmt ", 8), 0);
  EXPECT_EQ(U32(b, 16), 18u);
  EXPECT_EQ(U16(b, 20), 3);  // WAVE_FORMAT_IEEE_FLOAT
  EXPECT_EQ(U16(b, 22), 1);
  EXPECT_EQ(U32(b, 24), 24000u);
  EXPECT_EQ(U32(b, 28), 96000u);
  EXPECT_EQ(U16(b, 32), 4);
  EXPECT_EQ(U16(b, 34), 32);
  EXPECT_EQ(std::memcmp(b.data() + 38, "fact", 4), 0);
  EXPECT_EQ(U32(b, 46), samples.size());
  EXPECT_EQ(std::memcmp(b.data() + 50, "data", 4), 0);
  EXPECT_EQ(U32(b, 54), 4 * samples.size());
}

// int16: round(x * 32768) clamped, so decoding (/ 32768) is within half a step inside [-1, 1) and within
// one step at the clamped ends; out-of-range input is clamped to full scale.
TEST(WavWriterTest, Pcm16RoundTripWithinOneStep) {
  const std::string path = TmpPath("pcm16.wav");
  std::vector<float> samples = RandomSamples(5000, 3, 1.0f);
  samples.insert(samples.end(), {1.0f, -1.0f, 1.7f, -3.0f, 0.0f, 0.5f / 32768, std::nanf("")});
  {
    auto writer = OpenAudioWriter(path, WriterOptions([&](AudioWriterOptions& o) { o.sample_rate = 16000; }));
    ASSERT_TRUE(writer.ok()) << writer.status();
    WriteInChunks(**writer, samples, 4);
    ASSERT_TRUE((*writer)->Close().ok());
  }
  const std::vector<float> decoded = Decode(path, 16000);
  ASSERT_EQ(decoded.size(), samples.size());
  for (size_t i = 0; i < 5000; ++i) ASSERT_NEAR(decoded[i], samples[i], 0.5 / 32768 + 1e-9) << i;
  const size_t t = 5000;
  EXPECT_EQ(decoded[t + 0], 32767.0f / 32768);  // +1 clamps to the largest int16
  EXPECT_EQ(decoded[t + 1], -1.0f);
  EXPECT_EQ(decoded[t + 2], 32767.0f / 32768);
  EXPECT_EQ(decoded[t + 3], -1.0f);
  EXPECT_EQ(decoded[t + 4], 0.0f);
  EXPECT_EQ(decoded[t + 5], 0.0f);  // 0.5 step rounds to even (0)
  EXPECT_EQ(decoded[t + 6], 0.0f);  // NaN -> 0
  const std::vector<uint8_t> b = ReadBytes(path);
  ASSERT_EQ(b.size(), 44 + 2 * samples.size());
  EXPECT_EQ(U32(b, 4), b.size() - 8);
  EXPECT_EQ(U16(b, 20), 1);  // PCM
  EXPECT_EQ(U32(b, 24), 16000u);
  EXPECT_EQ(U16(b, 34), 16);
  EXPECT_EQ(U32(b, 40), 2 * samples.size());
}

TEST(WavWriterTest, StreamingHeaderAndSink) {
  const std::vector<uint8_t> header = WavWriter::Header(24000, WavSampleFormat::kPcm16, std::nullopt);
  ASSERT_EQ(header.size(), 44u);
  EXPECT_EQ(U32(header, 4), 0xFFFFFFFFu);
  EXPECT_EQ(U32(header, 40), 0xFFFFFFFFu);

  // To a byte sink (non-seekable): header with streaming sizes, then the samples, as they are written.
  std::vector<uint8_t> sunk;
  auto writer = OpenAudioWriter(
      [&](std::span<const uint8_t> bytes) {
        sunk.insert(sunk.end(), bytes.begin(), bytes.end());
        return absl::OkStatus();
      },
      WriterOptions([&](AudioWriterOptions& o) {
        o.format = "wav";
        o.wav_sample_format = WavSampleFormat::kFloat32;
      }));
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ(sunk.size(), 58u);
  const std::vector<float> samples = RandomSamples(3000, 5);
  ASSERT_TRUE((*writer)->Write(samples).ok());
  EXPECT_EQ(sunk.size(), 58u + 4 * 3000);
  ASSERT_TRUE((*writer)->Close().ok());
  EXPECT_EQ(U32(sunk, 4), 0xFFFFFFFFu);
  EXPECT_EQ(U32(sunk, 54), 0xFFFFFFFFu);
  // A push decoder reads the stream ("until the end") exactly.
  auto decoder = AudioDecoder::OpenPush({}, "wav stream");
  ASSERT_TRUE(decoder->Push(sunk).ok());
  ASSERT_TRUE(decoder->Finish().ok());
  std::vector<float> back;
  while (true) {
    auto chunk = decoder->Read(1 << 16);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    if (chunk->empty()) break;
    back.insert(back.end(), chunk->begin(), chunk->end());
  }
  EXPECT_EQ(back, samples);

  // A failing sink fails the Write that produced the bytes, and stays failed.
  int calls = 0;
  auto failing = WavWriter::Create(
      [&](std::span<const uint8_t>) {
        return ++calls > 1 ? absl::UnavailableError("client went away") : absl::OkStatus();
      },
      {});
  ASSERT_TRUE(failing.ok());
  EXPECT_TRUE(absl::IsUnavailable((*failing)->Write(samples)));
  EXPECT_FALSE((*failing)->Write(samples).ok());
}

// Runs `body` in a child process that ends with _exit (no destructors, no Close): a crash mid-way.
void InCrashingChild(const std::function<void()>& body) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    body();
    _exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
}

TEST(WavWriterTest, CrashMidWayLeavesAReadableFile) {
  const std::string path = TmpPath("crash.wav");
  const std::vector<float> samples = RandomSamples(12000, 6);
  InCrashingChild([&] {
    auto writer = OpenAudioWriter(
        path, WriterOptions([&](AudioWriterOptions& o) { o.wav_sample_format = WavSampleFormat::kFloat32; }));
    if (!writer.ok()) _exit(1);
    (void)(*writer)->Write(samples);
    _exit(0);  // no Close, no destructor
  });
  const std::vector<uint8_t> b = ReadBytes(path);
  ASSERT_EQ(b.size(), 58 + 4 * samples.size());
  EXPECT_EQ(U32(b, 54), 0xFFFFFFFFu);  // streaming header: "data runs to the end of the file"
  EXPECT_EQ(Decode(path, 24000), samples);
}

// "-" writes to stdout: into a regular file (seekable: sizes patched) or a pipe (streaming header).
// Each case runs in a child process whose stdout is redirected.
std::vector<uint8_t> WriteToStdout(const std::string& format, const std::vector<float>& samples,
                                   bool via_pipe) {
  const std::string file = TmpPath("stdout." + format);
  int fds[2] = {-1, -1};
  if (via_pipe) {
    EXPECT_EQ(pipe(fds), 0);
  }
  const pid_t pid = fork();
  EXPECT_GE(pid, 0);
  if (pid == 0) {
    const int fd = via_pipe ? fds[1] : ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 1) < 0) _exit(2);
    if (via_pipe) close(fds[0]);
    auto writer = OpenAudioWriter("-", WriterOptions([&](AudioWriterOptions& o) {
                                    o.format = format;
                                    o.wav_sample_format = WavSampleFormat::kFloat32;
                                  }));
    if (!writer.ok() || !(*writer)->Write(samples).ok() || !(*writer)->Close().ok()) _exit(3);
    fflush(stdout);
    _exit(0);
  }
  std::vector<uint8_t> bytes;
  if (via_pipe) {
    close(fds[1]);
    uint8_t buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0) bytes.insert(bytes.end(), buf, buf + n);
    close(fds[0]);
  }
  int wstatus = 0;
  EXPECT_EQ(waitpid(pid, &wstatus, 0), pid);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "child status " << wstatus;
  return via_pipe ? bytes : ReadBytes(file);
}

TEST(AudioWriterStdoutTest, WavToFileAndPipe) {
  const std::vector<float> samples = RandomSamples(4800, 11);
  const std::vector<uint8_t> to_file = WriteToStdout("wav", samples, false);
  ASSERT_EQ(to_file.size(), 58 + 4 * samples.size());
  EXPECT_EQ(U32(to_file, 54), 4 * samples.size());  // patched
  const std::vector<uint8_t> to_pipe = WriteToStdout("wav", samples, true);
  ASSERT_EQ(to_pipe.size(), 58 + 4 * samples.size());
  EXPECT_EQ(U32(to_pipe, 54), 0xFFFFFFFFu);  // streaming header
  EXPECT_TRUE(std::equal(to_pipe.begin() + 58, to_pipe.end(), to_file.begin() + 58));
}

TEST(AudioWriterStdoutTest, OggToPipe) {
  const std::vector<float> speech = SpeechAt24k();
  const std::vector<uint8_t> bytes = WriteToStdout("ogg", speech, true);
  ASSERT_GT(bytes.size(), 1000u);
  const std::string path = TmpPath("from_pipe.ogg");
  testing::WriteBytes(path, bytes);
  const std::vector<float> back = Decode(path, 24000);
  EXPECT_EQ(back.size(), speech.size());
  EXPECT_GT(testing::Correlation(speech, back), 0.98);
}

TEST(OggOpusWriterTest, RoundTripSpeech) {
  const std::vector<float> speech = SpeechAt24k();
  ASSERT_EQ(speech.size(), 33600u);
  const std::string path = TmpPath("speech.ogg");
  {
    auto writer =
        OpenAudioWriter(path, WriterOptions([&](AudioWriterOptions& o) { o.opus_bitrate = 32000; }));
    ASSERT_TRUE(writer.ok()) << writer.status();
    WriteInChunks(**writer, speech, 7);
    ASSERT_TRUE((*writer)->Close().ok());
  }
  auto decoded = DecodeAudioFile(path);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(decoded->warning.ok()) << decoded->warning;
  EXPECT_EQ(decoded->info.container, "ogg");
  EXPECT_EQ(decoded->info.codec, "opus");
  // Pre-skip and end trimming through granule positions give back exactly the written length.
  EXPECT_EQ(decoded->samples.size(), speech.size());
  // Opus at 32 kb/s on speech keeps the waveform: same bounds as the fixture codecs.
  const testing::BestLag best = testing::BestCorrelation(speech, decoded->samples, 500);
  EXPECT_EQ(best.lag, 0);
  EXPECT_GT(best.correlation, 0.98);
  EXPECT_GT(testing::SnrDb(speech, decoded->samples), 14.0);
  // Bitrate is honoured roughly (VBR, plus ~1-2 kB of headers and page overhead).
  const double kbps = 8.0 * ReadBytes(path).size() / 1.4 / 1000;
  EXPECT_GT(kbps, 15.0);
  EXPECT_LT(kbps, 50.0);
}

// A rate libopus does not take (44.1 kHz) is resampled to 48 kHz first; the length stays right.
TEST(OggOpusWriterTest, ResamplesOtherRates) {
  std::vector<float> tone(44100);
  for (size_t i = 0; i < tone.size(); ++i) tone[i] = 0.4f * std::sin(2 * M_PI * 440.0 * i / 44100.0);
  const std::string path = TmpPath("tone.opus");
  {
    auto writer = OpenAudioWriter(path, WriterOptions([&](AudioWriterOptions& o) { o.sample_rate = 44100; }));
    ASSERT_TRUE(writer.ok()) << writer.status();
    WriteInChunks(**writer, tone, 8);
    ASSERT_TRUE((*writer)->Close().ok());
  }
  const std::vector<float> back = Decode(path, 44100);
  // The 48 kHz resampler's flush may round the length by a sample or two.
  EXPECT_NEAR(static_cast<double>(back.size()), 44100.0, 3.0);
  std::span<const float> a(tone.data() + 4410, 35280), b(back.data() + 4410, 35280);
  EXPECT_GT(testing::Correlation(a, b), 0.99);
}

// Pages leave as audio is written (100 ms pages), not only at Close; the byte stream decodes through a
// push decoder to the same audio as the file would.
TEST(OggOpusWriterTest, StreamsPagesToASink) {
  const std::vector<float> speech = SpeechAt24k();
  std::vector<uint8_t> sunk;
  size_t after_header = 0, after_half = 0;
  auto writer = OggOpusWriter::Create(
      [&](std::span<const uint8_t> bytes) {
        sunk.insert(sunk.end(), bytes.begin(), bytes.end());
        return absl::OkStatus();
      },
      WriterOptions([&](AudioWriterOptions& o) {
        o.format = "ogg";
        o.ogg_page_duration_ms = 100;
      }));
  ASSERT_TRUE(writer.ok()) << writer.status();
  after_header = sunk.size();
  EXPECT_GT(after_header, 0u);  // OpusHead + OpusTags pages
  ASSERT_TRUE((*writer)->Write(std::span<const float>(speech.data(), 16800)).ok());
  after_half = sunk.size();
  EXPECT_GT(after_half, after_header + 1000) << "no audio pages before Close";
  ASSERT_TRUE((*writer)->Write(std::span<const float>(speech.data() + 16800, speech.size() - 16800)).ok());
  ASSERT_TRUE((*writer)->Close().ok());
  EXPECT_EQ(std::memcmp(sunk.data(), "OggS", 4), 0);

  auto decoder = AudioDecoder::OpenPush({}, "ogg stream");
  ASSERT_TRUE(decoder->Push(sunk).ok());
  ASSERT_TRUE(decoder->Finish().ok());
  std::vector<float> back;
  while (true) {
    auto chunk = decoder->Read(4096);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    if (chunk->empty()) break;
    back.insert(back.end(), chunk->begin(), chunk->end());
  }
  EXPECT_EQ(back.size(), speech.size());
  EXPECT_GT(testing::Correlation(speech, back), 0.98);
}

// Killed mid-way: the completed pages are still a decodable Ogg/Opus file (reported as truncated).
TEST(OggOpusWriterTest, CrashMidWayLeavesDecodablePages) {
  const std::vector<float> speech = SpeechAt24k();
  const std::string path = TmpPath("crash.ogg");
  InCrashingChild([&] {
    auto writer =
        OpenAudioWriter(path, WriterOptions([&](AudioWriterOptions& o) { o.ogg_page_duration_ms = 100; }));
    if (!writer.ok()) _exit(1);
    (void)(*writer)->Write(speech);
    _exit(0);
  });
  auto decoded = DecodeAudioFile(path);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  // All but the page under construction (<= 100 ms) and the encoder lookahead survive.
  EXPECT_GT(decoded->samples.size(), speech.size() - 24000 / 5);
  EXPECT_LE(decoded->samples.size(), speech.size());
  EXPECT_TRUE(absl::IsDataLoss(decoded->warning)) << "no end-of-stream page, must be reported";
  const std::span<const float> head(speech.data(), decoded->samples.size());
  EXPECT_GT(testing::Correlation(head, decoded->samples), 0.98);
}

TEST(AudioWriterFactoryTest, ChoosesByExtensionAndRejectsOthers) {
  for (const char* name : {"a.wav", "b.WAV", "c.ogg", "d.opus"}) {
    const std::string path = TmpPath(name);
    auto writer = OpenAudioWriter(path);
    ASSERT_TRUE(writer.ok()) << name << ": " << writer.status();
    ASSERT_TRUE((*writer)->Write(RandomSamples(2400, 9, 0.3f)).ok());
    ASSERT_TRUE((*writer)->Close().ok());
    auto decoded = DecodeAudioFile(path);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    const bool is_wav = absl::EndsWithIgnoreCase(name, ".wav");
    EXPECT_EQ(decoded->info.codec, is_wav ? "pcm_s16le" : "opus") << name;
    EXPECT_EQ(decoded->samples.size(), 2400u) << name;
  }
  auto mp3 = OpenAudioWriter(TmpPath("out.mp3"));
  ASSERT_FALSE(mp3.ok());
  EXPECT_TRUE(absl::StrContains(mp3.status().message(), "mp3")) << mp3.status();
  EXPECT_TRUE(absl::StrContains(mp3.status().message(), "out.mp3")) << mp3.status();
  auto none = OpenAudioWriter(TmpPath("noextension"));
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(absl::StrContains(none.status().message(), "format")) << none.status();
  auto stdout_writer = OpenAudioWriter("-");
  ASSERT_FALSE(stdout_writer.ok());  // stdout needs an explicit format
  EXPECT_TRUE(absl::StrContains(stdout_writer.status().message(), "stdout")) << stdout_writer.status();
  auto sink = OpenAudioWriter([](std::span<const uint8_t>) { return absl::OkStatus(); },
                              WriterOptions([&](AudioWriterOptions& o) { o.format = "flac"; }));
  EXPECT_FALSE(sink.ok());
  // An explicit format overrides the extension.
  auto forced =
      OpenAudioWriter(TmpPath("x.bin"), WriterOptions([&](AudioWriterOptions& o) { o.format = "wav"; }));
  EXPECT_TRUE(forced.ok()) << forced.status();
  auto bad_dir = OpenAudioWriter("/nonexistent/dir/out.wav");
  ASSERT_FALSE(bad_dir.ok());
  EXPECT_TRUE(absl::StrContains(bad_dir.status().message(), "/nonexistent/dir/out.wav")) << bad_dir.status();
  auto bad_ogg = OpenAudioWriter("/nonexistent/dir/out.ogg");
  ASSERT_FALSE(bad_ogg.ok());
  EXPECT_TRUE(absl::StrContains(bad_ogg.status().message(), "/nonexistent/dir/out.ogg")) << bad_ogg.status();
  EXPECT_FALSE(
      OpenAudioWriter(TmpPath("r.ogg"), WriterOptions([&](AudioWriterOptions& o) { o.opus_bitrate = 10; }))
          .ok());
  EXPECT_FALSE(
      OpenAudioWriter(TmpPath("r.wav"), WriterOptions([&](AudioWriterOptions& o) { o.sample_rate = 0; }))
          .ok());
}

}  // namespace
}  // namespace monologue
