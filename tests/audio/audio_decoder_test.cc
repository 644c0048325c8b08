// AudioDecoder on the committed fixtures (tests/reference/make_audio_fixtures.sh): one 1.4 s espeak-ng
// utterance in WAV / FLAC / MP3 / Ogg-Opus / Ogg-Vorbis / M4A-AAC, plus a 0.25 s 44.1 kHz stereo WAV whose
// left channel is speech and right channel a 440 Hz tone.
#include "core/audio/audio_decoder.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <thread>

#include "absl/strings/match.h"
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
using testing::WriteBytes;

constexpr int kRate = 24000;
constexpr size_t kSpeechSamples = 33600;  // 1.4 s at 24 kHz

std::vector<float> DecodeAll(const std::string& path, const AudioDecoderOptions& options = {}) {
  auto decoded = DecodeAudioFile(path, options);
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  if (!decoded.ok()) return {};
  EXPECT_TRUE(decoded->warning.ok()) << decoded->warning;
  return decoded->samples;
}

// Reads a decoder to the end in chunks of `chunk` samples.
std::vector<float> ReadToEnd(AudioDecoder& decoder, size_t chunk) {
  std::vector<float> all;
  while (true) {
    auto got = decoder.Read(chunk);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok() || got->empty()) break;
    EXPECT_LE(got->size(), chunk);
    all.insert(all.end(), got->begin(), got->end());
  }
  EXPECT_TRUE(decoder.at_end());
  return all;
}

TEST(AudioDecoderTest, WavInfoAndLength) {
  auto decoder = AudioDecoder::Open(AudioData("speech_16k_mono.wav"));
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  const AudioStreamInfo info = (*decoder)->info();
  EXPECT_EQ(info.container, "wav");
  EXPECT_EQ(info.codec, "pcm_s16le");
  EXPECT_EQ(info.source_sample_rate, 16000);
  EXPECT_EQ(info.source_channels, 1);
  EXPECT_EQ(info.output_sample_rate, kRate);
  ASSERT_TRUE(info.duration_seconds.has_value());
  EXPECT_NEAR(*info.duration_seconds, 1.4, 1e-6);
  EXPECT_FALSE(info.duration_is_estimate);
  const std::vector<float> samples = ReadToEnd(**decoder, 4096);
  // 22400 input samples at 16 kHz -> exactly 33600 at 24 kHz once the resampler is flushed.
  EXPECT_EQ(samples.size(), kSpeechSamples);
  EXPECT_EQ((*decoder)->samples_read(), static_cast<int64_t>(kSpeechSamples));
  float peak = 0;
  for (float x : samples) peak = std::max(peak, std::abs(x));
  // The fixture is normalised to -1 dBFS (0.891); resampling overshoot stays within a few percent.
  EXPECT_GT(peak, 0.8f);
  EXPECT_LT(peak, 1.0f);
}

// Resampling checked from first principles: a 16 kHz 1 kHz sine must come out as the 24 kHz sine.
TEST(AudioDecoderTest, ResamplesASineExactly) {
  const std::string path = TmpPath("sine16k.wav");
  std::vector<float> sine(16000);
  for (size_t i = 0; i < sine.size(); ++i)
    sine[i] = 0.5f * std::sin(2 * std::numbers::pi * 1000.0 * i / 16000.0);
  {
    auto writer = WavWriter::Create(path, WriterOptions([&](AudioWriterOptions& o) {
                                      o.sample_rate = 16000;
                                      o.wav_sample_format = WavSampleFormat::kFloat32;
                                    }));
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Write(sine).ok());
    ASSERT_TRUE((*writer)->Close().ok());
  }
  const std::vector<float> out = DecodeAll(path);
  ASSERT_EQ(out.size(), 24000u);
  std::vector<float> expected(out.size());
  for (size_t i = 0; i < out.size(); ++i)
    expected[i] = 0.5f * std::sin(2 * std::numbers::pi * 1000.0 * i / 24000.0);
  // Away from the edges (filter start-up at a hard onset), a linear-phase resampler adds no delay and
  // only tiny error: > 80 dB SNR for soxr at 28-bit precision.
  std::span<const float> mid_out(out.data() + 2400, out.size() - 4800);
  std::span<const float> mid_expected(expected.data() + 2400, expected.size() - 4800);
  EXPECT_GT(testing::SnrDb(mid_expected, mid_out), 80.0);
}

struct CodecCase {
  const char* file;
  const char* container;
  const char* codec;
  int source_rate;
  size_t max_extra_samples;  // codec padding allowed beyond the true length, in 24 kHz samples
  double min_correlation;
  double min_snr_db;
};

class CodecTest : public ::testing::TestWithParam<CodecCase> {};

// Each codec decodes to the same 1.4 s, aligned to the sample (priming / pre-skip trimmed), with a
// waveform close to the WAV's. Bounds: lossy speech codecs at 24-32 kb/s keep the waveform (all of these
// are transform codecs that preserve phase at these rates): correlation > 0.98 and SNR > 14 dB (measured
// 0.991-0.995 and 18-20 dB). AAC has no end trimming in MP4 here: up to one 1024-sample frame of padding.
TEST_P(CodecTest, MatchesWavDecode) {
  const CodecCase& c = GetParam();
  const std::vector<float> wav = DecodeAll(AudioData("speech_16k_mono.wav"));
  auto decoded = DecodeAudioFile(AudioData(c.file));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(decoded->warning.ok()) << decoded->warning;
  EXPECT_EQ(decoded->info.container, c.container);
  EXPECT_EQ(decoded->info.codec, c.codec);
  EXPECT_EQ(decoded->info.source_sample_rate, c.source_rate);
  EXPECT_EQ(decoded->info.source_channels, 1);
  const std::vector<float>& samples = decoded->samples;
  EXPECT_GE(samples.size(), kSpeechSamples);
  EXPECT_LE(samples.size(), kSpeechSamples + c.max_extra_samples);
  const testing::BestLag best = testing::BestCorrelation(wav, samples, 1000);
  EXPECT_EQ(best.lag, 0) << "codec delay not trimmed";
  EXPECT_GT(best.correlation, c.min_correlation);
  EXPECT_GT(testing::SnrDb(wav, samples), c.min_snr_db);
}

INSTANTIATE_TEST_SUITE_P(Codecs, CodecTest,
                         ::testing::Values(CodecCase{"speech_16k.mp3", "mp3", "mp3", 16000, 0, 0.98, 14.0},
                                           CodecCase{"speech.opus", "ogg", "opus", 48000, 0, 0.98, 14.0},
                                           CodecCase{"speech_16k_vorbis.ogg", "ogg", "vorbis", 16000, 0, 0.98,
                                                     14.0},
                                           CodecCase{"speech_16k_aac.m4a", "mov,mp4,m4a,3gp,3g2,mj2", "aac",
                                                     16000, 1536, 0.98, 14.0}),
                         [](const auto& info) {
                           std::string name = info.param.codec;
                           return name;
                         });

// FLAC is lossless: the same 16 kHz samples, hence bit-identical output.
TEST(AudioDecoderTest, FlacIsIdenticalToWav) {
  const std::vector<float> wav = DecodeAll(AudioData("speech_16k_mono.wav"));
  const std::vector<float> flac = DecodeAll(AudioData("speech_16k.flac"));
  ASSERT_EQ(wav.size(), kSpeechSamples);
  EXPECT_EQ(flac, wav);
}

// Parses a 16-bit PCM WAV by hand (independent of FFmpeg): interleaved samples / 32768.
std::vector<std::vector<float>> ParsePcm16Wav(const std::string& path, int* rate) {
  const std::vector<uint8_t> b = ReadBytes(path);
  auto u32 = [&](size_t at) { return b[at] | b[at + 1] << 8 | b[at + 2] << 16 | uint32_t{b[at + 3]} << 24; };
  auto u16 = [&](size_t at) { return static_cast<uint16_t>(b[at] | b[at + 1] << 8); };
  int channels = 0;
  for (size_t at = 12; at + 8 <= b.size();) {
    const uint32_t size = u32(at + 4);
    if (std::memcmp(&b[at], "fmt ", 4) == 0) {
      EXPECT_EQ(u16(at + 8), 1);        // PCM
      EXPECT_EQ(u16(at + 8 + 14), 16);  // bits
      channels = u16(at + 8 + 2);
      *rate = static_cast<int>(u32(at + 8 + 4));
    } else if (std::memcmp(&b[at], "data", 4) == 0) {
      std::vector<std::vector<float>> out(channels);
      const size_t frames = size / (2 * channels);
      for (size_t i = 0; i < frames; ++i) {
        for (int c = 0; c < channels; ++c) {
          out[c].push_back(static_cast<int16_t>(u16(at + 8 + 2 * (i * channels + c))) / 32768.0f);
        }
      }
      return out;
    }
    at += 8 + size + (size & 1);
  }
  ADD_FAILURE() << "no data chunk in " << path;
  return {};
}

// Stereo -> mono is the mean of the channels, not FFmpeg's default 1/sqrt(2) mix. At the source rate
// nothing is resampled, so the result must be (L + R) / 2 to float precision.
TEST(AudioDecoderTest, StereoDownmixIsTheChannelMean) {
  int rate = 0;
  const auto channels = ParsePcm16Wav(AudioData("speech_44k_stereo.wav"), &rate);
  ASSERT_EQ(channels.size(), 2u);
  ASSERT_EQ(rate, 44100);
  const auto& left = channels[0];
  const auto& right = channels[1];
  ASSERT_EQ(left.size(), 11025u);
  // The channels really differ (speech vs tone), so a left-only or right-only decode would fail below.
  EXPECT_LT(std::abs(testing::Correlation(left, right)), 0.3);

  auto decoded =
      DecodeAudioFile(AudioData("speech_44k_stereo.wav"),
                      DecoderOptions([&](AudioDecoderOptions& o) { o.target_sample_rate = 44100; }));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->info.source_channels, 2);
  ASSERT_EQ(decoded->samples.size(), left.size());
  double max_err = 0;
  for (size_t i = 0; i < left.size(); ++i) {
    max_err = std::max(max_err, std::abs(decoded->samples[i] - 0.5 * (left[i] + right[i])));
  }
  EXPECT_LT(max_err, 1e-6);

  // At 24 kHz: 0.25 s -> 6000 samples, equal to the mean of the channels resampled one by one.
  const std::vector<float> mono24 = DecodeAll(AudioData("speech_44k_stereo.wav"));
  ASSERT_EQ(mono24.size(), 6000u);
  std::vector<float> mean(left.size());
  for (size_t i = 0; i < left.size(); ++i) mean[i] = 0.5f * (left[i] + right[i]);
  const std::string mean_path = TmpPath("mean44k.wav");
  {
    auto writer = WavWriter::Create(mean_path, WriterOptions([&](AudioWriterOptions& o) {
                                      o.sample_rate = 44100;
                                      o.wav_sample_format = WavSampleFormat::kFloat32;
                                    }));
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write(mean).ok());
    ASSERT_TRUE((*writer)->Close().ok());
  }
  const std::vector<float> mean24 = DecodeAll(mean_path);
  ASSERT_EQ(mean24.size(), mono24.size());
  EXPECT_GT(testing::SnrDb(mean24, mono24), 100.0);  // same signal up to float rounding in the filter
}

// Headers the decoder cannot honour are named: more channels than FFmpeg's resampler mixes (it used to read
// as an input with no audio), and a sample rate below 4 kHz (1 Hz turned an 8 KB WAV into 4000 s of audio).
TEST(AudioDecoderTest, HeadersOutsideWhatCanBeDecodedAreNamed) {
  auto u32 = [](uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [](uint16_t v) { return std::string(reinterpret_cast<const char*>(&v), 2); };
  auto wav = [&](int channels, int rate, int frames, const std::string& name) {
    const std::string data(static_cast<size_t>(channels) * frames * 2, '\1');
    const std::string bytes = "RIFF" + u32(36 + static_cast<uint32_t>(data.size())) + "WAVEfmt " + u32(16) +
                              u16(1) + u16(channels) + u32(rate) + u32(rate * channels * 2) +
                              u16(channels * 2) + u16(16) + "data" + u32(static_cast<uint32_t>(data.size())) +
                              data;
    const std::string path = TmpPath(name);
    FILE* f = std::fopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
    std::fclose(f);
    return path;
  };
  struct Case {
    int channels, rate;
    std::vector<std::string> expected;
  };
  for (const Case& c : {Case{255, 24000, {"255 channels at 24000 Hz", "at most 64 channels"}},
                        Case{1, 1, {"sample rate 1 Hz in the audio's header; supported: 4000 to 768000 Hz"}},
                        Case{1, 3999, {"sample rate 3999 Hz"}}}) {
    // The header reads, then the first frame cannot be converted: no samples, and the reason as the warning.
    auto decoded = DecodeAudioFile(wav(c.channels, c.rate, 480, "bad_header.wav"));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(decoded->samples.empty()) << c.channels << " " << c.rate;
    for (const std::string& e : c.expected) {
      EXPECT_TRUE(absl::StrContains(decoded->warning.message(), e)) << decoded->warning;
    }
  }
  // A header of 0 channels, or 0 bits per sample: named with the numbers it holds (it read as "no audio
  // stream
  // (... 1 stream(s): audio)" and "no decoder for the audio codec").
  {
    std::string zero_channels = wav(1, 24000, 480, "zero_channels.wav");
    std::string bytes;
    {
      std::ifstream in(zero_channels, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::string no_channels = bytes, no_bits = bytes;
    no_channels[22] = 0;  // fmt channels
    no_bits[34] = 0;      // fmt bits per sample
    std::ofstream(TmpPath("zero_channels.wav"), std::ios::binary) << no_channels;
    std::ofstream(TmpPath("zero_bits.wav"), std::ios::binary) << no_bits;
    auto c0 = DecodeAudioFile(TmpPath("zero_channels.wav"));
    ASSERT_FALSE(c0.ok());
    EXPECT_TRUE(absl::StrContains(c0.status().message(),
                                  "header is unusable (codec pcm_s16le, 0 channel(s), 24000 Hz"))
        << c0.status();
    auto b0 = DecodeAudioFile(TmpPath("zero_bits.wav"));
    ASSERT_FALSE(b0.ok());
    EXPECT_TRUE(absl::StrContains(b0.status().message(), "0 bits per sample")) << b0.status();
  }
  // A float file written at 16-bit scale: refused at its first sample far outside [-1, 1] (it was transcribed
  // into noise words); a few times over (clipped speech) decodes.
  for (const float peak : {12000.0f, 3.0f}) {
    const std::string path = TmpPath("loud_float.wav");
    {
      auto writer = WavWriter::Create(path, WriterOptions([&](AudioWriterOptions& o) {
                                        o.sample_rate = 24000;
                                        o.wav_sample_format = WavSampleFormat::kFloat32;
                                      }));
      ASSERT_TRUE(writer.ok());
      std::vector<float> samples(4800, 0.01f);
      samples[2400] = peak;
      ASSERT_TRUE((*writer)->Write(samples).ok());
      ASSERT_TRUE((*writer)->Close().ok());
    }
    auto decoded = DecodeAudioFile(path);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    if (peak > 64) {
      EXPECT_TRUE(absl::StrContains(decoded->warning.message(), "the audio holds the sample 12000 at 0.1 s"))
          << decoded->warning;
      EXPECT_EQ(decoded->samples.size(), 2400u);  // what came before it stands
      // ... and is counted (it said "after 0.000 s"), the file named once (it was twice).
      EXPECT_TRUE(absl::StrContains(decoded->warning.message(),
                                    "decoding stopped after 0.100 s of audio (2400 samples"))
          << decoded->warning;
      EXPECT_EQ(decoded->warning.message().find(path), 0u) << decoded->warning;
      EXPECT_EQ(decoded->warning.message().find(path, 1), std::string::npos) << decoded->warning;
    } else {
      EXPECT_TRUE(decoded->warning.ok()) << decoded->warning;
      EXPECT_EQ(decoded->samples.size(), 4800u);
    }
  }
  // The edges of the range decode.
  for (const int rate : {4000, 8000, 192000}) {
    auto decoded = DecodeAudioFile(wav(2, rate, rate / 10, "edge.wav"));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(decoded->warning.ok()) << rate << ": " << decoded->warning;
    EXPECT_NEAR(static_cast<double>(decoded->samples.size()), 2400.0, 2.0) << rate;
  }
}

// How the caller slices Read() must not change a sample.
TEST(AudioDecoderTest, ChunkedReadEqualsOneShot) {
  for (const char* file : {"speech_16k_mono.wav", "speech.opus", "speech_16k.mp3", "speech_44k_stereo.wav"}) {
    const std::vector<float> whole = DecodeAll(AudioData(file));
    ASSERT_FALSE(whole.empty()) << file;
    for (size_t chunk : {1u, 7u, 480u, 1920u, 100000u}) {
      if (chunk == 1 && whole.size() > 10000) continue;  // keep it quick; 7 covers odd sizes
      auto decoder = AudioDecoder::Open(AudioData(file));
      ASSERT_TRUE(decoder.ok()) << decoder.status();
      EXPECT_EQ(ReadToEnd(**decoder, chunk), whole) << file << " chunk " << chunk;
      // After the end, Read keeps returning nothing.
      auto again = (*decoder)->Read(10);
      ASSERT_TRUE(again.ok());
      EXPECT_TRUE(again->empty());
    }
  }
}

// Bytes pushed in small random pieces, with reads in between, decode exactly like the file; audio comes
// out while bytes are still arriving, and Read never waits for more input. Before Finish, all but
// `max_held_back` samples must have come out (negative: no bound).
void CheckPushEqualsFile(const std::string& file, uint32_t seed, long max_held_back) {
  const std::vector<float> expected = DecodeAll(AudioData(file));
  const std::vector<uint8_t> bytes = ReadBytes(AudioData(file));
  auto decoder = AudioDecoder::OpenPush({}, "pushed " + file);
  std::mt19937 rng(seed);
  std::vector<float> got;
  size_t offset = 0;
  size_t samples_before_finish = 0;
  while (offset < bytes.size()) {
    const size_t piece = std::min<size_t>(bytes.size() - offset, 1 + rng() % 300);
    ASSERT_TRUE(decoder->Push(std::span<const uint8_t>(bytes.data() + offset, piece)).ok());
    offset += piece;
    if (rng() % 2 == 0) {
      auto chunk = decoder->Read(1 + rng() % 3000);
      ASSERT_TRUE(chunk.ok()) << chunk.status();
      got.insert(got.end(), chunk->begin(), chunk->end());
    }
  }
  // Everything pushed so far is decodable without Finish (all but the decoder/resampler tail).
  while (true) {
    auto chunk = decoder->Read(100000);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    if (chunk->empty()) break;
    got.insert(got.end(), chunk->begin(), chunk->end());
  }
  samples_before_finish = got.size();
  EXPECT_FALSE(decoder->at_end());
  ASSERT_TRUE(decoder->Finish().ok());
  EXPECT_FALSE(decoder->Push(std::span<const uint8_t>(bytes.data(), 1)).ok());  // Push after Finish
  while (true) {
    auto chunk = decoder->Read(1 + rng() % 5000);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    if (chunk->empty()) break;
    got.insert(got.end(), chunk->begin(), chunk->end());
  }
  EXPECT_TRUE(decoder->at_end());
  EXPECT_EQ(got, expected) << file;
  if (max_held_back >= 0) {
    EXPECT_GE(static_cast<long>(samples_before_finish) + max_held_back, static_cast<long>(expected.size()))
        << file;
  }
}

// Ogg/Opus: only the last page's packets, the decoder and the resampler tail (< 0.1 s) wait for Finish.
TEST(AudioDecoderPushTest, OggOpusInRandomPiecesEqualsFile) { CheckPushEqualsFile("speech.opus", 1, 2400); }
TEST(AudioDecoderPushTest, OggOpusOtherSplitEqualsFile) { CheckPushEqualsFile("speech.opus", 2, 2400); }
// Raw FLAC: the parser ends a frame only when it has seen the next frame's header and the demuxer reads
// ahead, so up to three 4608-sample (16 kHz) frames, 3 x 6912 output samples, plus the resampler tail
// wait for Finish (0.71 s measured in a 1.4 s file).
TEST(AudioDecoderPushTest, FlacInRandomPiecesEqualsFile) {
  CheckPushEqualsFile("speech_16k.flac", 4, 3 * 6912 + 2400);
}
// WAV: FFmpeg's WAV demuxer reads 64 KiB ahead (S/PDIF detection) before its first packet, more than this
// whole file, so nothing is bounded here; the result must still be identical.
TEST(AudioDecoderPushTest, WavInRandomPiecesEqualsFile) { CheckPushEqualsFile("speech_16k_mono.wav", 3, -1); }

// Push from one thread, Read from another (the gRPC service's shape).
TEST(AudioDecoderPushTest, PushAndReadFromDifferentThreads) {
  const std::vector<float> expected = DecodeAll(AudioData("speech.opus"));
  const std::vector<uint8_t> bytes = ReadBytes(AudioData("speech.opus"));
  auto decoder = AudioDecoder::OpenPush();
  std::thread producer([&] {
    std::mt19937 rng(11);
    for (size_t offset = 0; offset < bytes.size();) {
      const size_t n = std::min<size_t>(bytes.size() - offset, 1 + rng() % 200);
      EXPECT_TRUE(decoder->Push(std::span<const uint8_t>(bytes.data() + offset, n)).ok());
      offset += n;
      std::this_thread::yield();
    }
    EXPECT_TRUE(decoder->Finish().ok());
  });
  std::vector<float> got;
  while (!decoder->at_end()) {
    auto chunk = decoder->Read(960);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    got.insert(got.end(), chunk->begin(), chunk->end());
    if (chunk->empty()) std::this_thread::yield();
  }
  producer.join();
  EXPECT_EQ(got, expected);
}

// A tiny output bound makes the decoder thread wait for the reader; nothing is lost or reordered.
TEST(AudioDecoderPushTest, BackpressureKeepsEverySample) {
  const std::vector<float> expected = DecodeAll(AudioData("speech.opus"));
  const std::vector<uint8_t> bytes = ReadBytes(AudioData("speech.opus"));
  auto decoder =
      AudioDecoder::OpenPush(DecoderOptions([&](AudioDecoderOptions& o) { o.max_buffered_samples = 500; }));
  ASSERT_TRUE(decoder->Push(bytes).ok());
  ASSERT_TRUE(decoder->Finish().ok());
  std::vector<float> got;
  while (true) {
    auto chunk = decoder->Read(2000);  // more than the bound: returns at most what is buffered
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    if (chunk->empty()) break;
    EXPECT_LE(chunk->size(), 2000u);
    got.insert(got.end(), chunk->begin(), chunk->end());
  }
  EXPECT_EQ(got, expected);
}

// Destroying push decoders in every state must neither hang nor leak: fresh, mid-header, mid-stream.
TEST(AudioDecoderPushTest, DestroyInAnyState) {
  const std::vector<uint8_t> bytes = ReadBytes(AudioData("speech.opus"));
  { auto fresh = AudioDecoder::OpenPush(); }
  {
    auto header = AudioDecoder::OpenPush();
    ASSERT_TRUE(header->Push(std::span<const uint8_t>(bytes.data(), 30)).ok());
  }
  {
    auto mid =
        AudioDecoder::OpenPush(DecoderOptions([&](AudioDecoderOptions& o) { o.max_buffered_samples = 100; }));
    ASSERT_TRUE(mid->Push(bytes).ok());
    auto some = mid->Read(50);
    ASSERT_TRUE(some.ok());
  }
}

TEST(AudioDecoderPushTest, InfoArrivesWithTheHeader) {
  auto decoder = AudioDecoder::OpenPush({}, "opus chunks");
  EXPECT_FALSE(decoder->has_info());
  auto nothing = decoder->Read(100);  // no bytes yet: returns at once, empty
  ASSERT_TRUE(nothing.ok());
  EXPECT_TRUE(nothing->empty());
  EXPECT_FALSE(decoder->at_end());
  const std::vector<uint8_t> bytes = ReadBytes(AudioData("speech.opus"));
  ASSERT_TRUE(decoder->Push(bytes).ok());
  auto some = decoder->Read(100);
  ASSERT_TRUE(some.ok());
  EXPECT_EQ(some->size(), 100u);
  ASSERT_TRUE(decoder->has_info());
  EXPECT_EQ(decoder->info().codec, "opus");
  EXPECT_EQ(decoder->info().source_sample_rate, 48000);
  // Destroying a decoder mid-stream (no Finish) must not hang or crash.
}

TEST(AudioDecoderPushTest, EmptyAndGarbageInputs) {
  auto empty = AudioDecoder::OpenPush({}, "request 7 audio");
  ASSERT_TRUE(empty->Finish().ok());
  auto r = empty->Read(10);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), "request 7 audio")) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "empty")) << r.status();
  EXPECT_TRUE(empty->at_end());

  auto garbage = AudioDecoder::OpenPush({}, "junk bytes");
  std::string text(5000, 'x');
  ASSERT_TRUE(
      garbage->Push(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()))
          .ok());
  ASSERT_TRUE(garbage->Finish().ok());
  auto g = garbage->Read(10);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(absl::StrContains(g.status().message(), "junk bytes")) << g.status();
}

// A FIFO path: written by a child process (like `cat file > fifo`), decoded as a non-seekable stream.
TEST(AudioDecoderPipeTest, FifoPathEqualsFile) {
  for (const char* file : {"speech.opus", "speech_16k_mono.wav", "speech_16k.mp3"}) {
    const std::string fifo = TmpPath(std::string("fifo_") + file);
    ::unlink(fifo.c_str());
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const std::string command = "cat '" + AudioData(file) + "' > '" + fifo + "' &";
    ASSERT_EQ(std::system(command.c_str()), 0);
    auto decoder = AudioDecoder::Open(fifo);
    ASSERT_TRUE(decoder.ok()) << decoder.status();
    EXPECT_EQ(ReadToEnd(**decoder, 1920), DecodeAll(AudioData(file))) << file;
    ::unlink(fifo.c_str());
  }
}

// "-" reads stdin: here stdin is replaced by the read end of `cat file |`.
TEST(AudioDecoderPipeTest, StdinFromCatEqualsFile) {
  const std::string file = "speech_16k.flac";
  std::FILE* pipe = ::popen(("cat '" + AudioData(file) + "'").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  const int saved_stdin = ::dup(0);
  ASSERT_GE(::dup2(::fileno(pipe), 0), 0);
  auto decoder = AudioDecoder::Open("-");
  std::vector<float> samples;
  if (decoder.ok()) {
    EXPECT_EQ((*decoder)->name(), "stdin");
    samples = ReadToEnd(**decoder, 4096);
    decoder->reset();
  }
  ::dup2(saved_stdin, 0);
  ::close(saved_stdin);
  ::pclose(pipe);
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  EXPECT_EQ(samples, DecodeAll(AudioData(file)));
}

TEST(AudioDecoderErrorTest, MissingFile) {
  auto decoder = AudioDecoder::Open("/nonexistent/dir/speech.wav");
  ASSERT_FALSE(decoder.ok());
  EXPECT_TRUE(absl::IsNotFound(decoder.status())) << decoder.status();
  EXPECT_TRUE(absl::StrContains(decoder.status().message(), "/nonexistent/dir/speech.wav"));
}

TEST(AudioDecoderErrorTest, TextFileIsNotAudio) {
  const std::string path = TmpPath("notes.txt");
  const std::string text = "This is a plain text file.\nIt holds no audio at all.\n";
  WriteBytes(path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  auto decoder = AudioDecoder::Open(path);
  ASSERT_FALSE(decoder.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(decoder.status())) << decoder.status();
  EXPECT_TRUE(absl::StrContains(decoder.status().message(), path)) << decoder.status();
  EXPECT_TRUE(absl::StrContains(decoder.status().message(), "not an audio file")) << decoder.status();
}

TEST(AudioDecoderErrorTest, EmptyFileAndDirectory) {
  const std::string path = TmpPath("empty.wav");
  WriteBytes(path, {});
  auto decoder = AudioDecoder::Open(path);
  ASSERT_FALSE(decoder.ok());
  EXPECT_TRUE(absl::StrContains(decoder.status().message(), path)) << decoder.status();
  EXPECT_TRUE(absl::StrContains(decoder.status().message(), "empty")) << decoder.status();

  auto dir = AudioDecoder::Open(MONOLOGUE_TEST_DATA_DIR);
  ASSERT_FALSE(dir.ok());
  EXPECT_TRUE(absl::StrContains(dir.status().message(), "directory")) << dir.status();
}

TEST(AudioDecoderErrorTest, BadOptions) {
  EXPECT_FALSE(AudioDecoder::Open(AudioData("speech.opus"),
                                  DecoderOptions([&](AudioDecoderOptions& o) { o.target_sample_rate = 0; }))
                   .ok());
  auto hint =
      AudioDecoder::Open(AudioData("speech.opus"),
                         DecoderOptions([&](AudioDecoderOptions& o) { o.format_hint = "no-such-format"; }));
  ASSERT_FALSE(hint.ok());
  EXPECT_TRUE(absl::StrContains(hint.status().message(), "no-such-format"));
  auto decoder = AudioDecoder::Open(AudioData("speech.opus"),
                                    DecoderOptions([&](AudioDecoderOptions& o) { o.format_hint = "ogg"; }));
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  EXPECT_FALSE((*decoder)->Read(0).ok());
  EXPECT_FALSE((*decoder)->Push(std::vector<uint8_t>{1, 2}).ok());  // not a push source
}

// A cut-off copy: everything before the cut decodes, then a kDataLoss status names the stop time; the
// audio before it equals the intact file's.
void CheckTruncated(const std::string& file, double keep_fraction, double min_seconds, double max_seconds) {
  const std::vector<uint8_t> bytes = ReadBytes(AudioData(file));
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<size_t>(bytes.size() * keep_fraction));
  const std::string path = TmpPath("cut_" + file);
  WriteBytes(path, cut);
  auto decoder = AudioDecoder::Open(path);
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  std::vector<float> samples;
  absl::Status status;
  while (true) {
    auto chunk = (*decoder)->Read(1000);
    if (!chunk.ok()) {
      status = chunk.status();
      break;
    }
    ASSERT_FALSE(chunk->empty()) << file << ": truncation not reported";
    samples.insert(samples.end(), chunk->begin(), chunk->end());
  }
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), path)) << status;
  const double seconds = static_cast<double>(samples.size()) / kRate;
  EXPECT_GE(seconds, min_seconds) << file;
  EXPECT_LE(seconds, max_seconds) << file;
  char stopped[64];
  std::snprintf(stopped, sizeof(stopped), "%.3f s", seconds);
  EXPECT_TRUE(absl::StrContains(status.message(), stopped)) << status << " vs " << stopped;
  // The error is sticky.
  EXPECT_TRUE(absl::IsDataLoss((*decoder)->Read(10).status()));
  // The partial audio is the intact audio (up to the resampler's flush at the cut, ~soxr filter length).
  const std::vector<float> full = DecodeAll(AudioData(file));
  ASSERT_LE(samples.size(), full.size());
  const size_t compare = samples.size() > 1000 ? samples.size() - 1000 : 0;
  for (size_t i = 0; i < compare; ++i) ASSERT_EQ(samples[i], full[i]) << file << " sample " << i;

  // DecodeAudioFile keeps the audio and reports the warning.
  auto all = DecodeAudioFile(path);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->samples, samples);
  EXPECT_TRUE(absl::IsDataLoss(all->warning));
}

// WAV: 60% of the bytes, an even count -> 0.839 s of 1.4 s; FFmpeg clips the header's size silently, the
// decoder compares with the header itself.
TEST(AudioDecoderErrorTest, TruncatedWav) { CheckTruncated("speech_16k_mono.wav", 0.6, 0.80, 0.86); }
// Ogg/Opus cut in the middle of a page: the complete pages decode (100 ms pages).
TEST(AudioDecoderErrorTest, TruncatedOggOpus) { CheckTruncated("speech.opus", 0.6, 0.55, 0.86); }
// MP3: the LAME header declares the length.
TEST(AudioDecoderErrorTest, TruncatedMp3) { CheckTruncated("speech_16k.mp3", 0.6, 0.7, 0.86); }
// FLAC: the partial last frame fails to decode; the frames before it are kept.
TEST(AudioDecoderErrorTest, TruncatedFlac) { CheckTruncated("speech_16k.flac", 0.6, 0.4, 0.86); }

// Garbage in the middle of an MP3: decoding stops at the damage and says when.
TEST(AudioDecoderErrorTest, CorruptMiddle) {
  std::vector<uint8_t> bytes = ReadBytes(AudioData("speech_16k.mp3"));
  std::mt19937 rng(7);
  for (size_t i = bytes.size() * 4 / 10; i < bytes.size() * 5 / 10; ++i)
    bytes[i] = static_cast<uint8_t>(rng());
  const std::string path = TmpPath("garbled.mp3");
  WriteBytes(path, bytes);
  auto decoded = DecodeAudioFile(path);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(absl::IsDataLoss(decoded->warning)) << decoded->warning;
  EXPECT_TRUE(absl::StrContains(decoded->warning.message(), "stopped after")) << decoded->warning;
  const double seconds = static_cast<double>(decoded->samples.size()) / kRate;
  EXPECT_GT(seconds, 0.3);
  EXPECT_LT(seconds, 1.0);
}

}  // namespace
}  // namespace monologue

namespace monologue {
namespace {

// Parity with the reference's loader: moshi reads audio with sphn.read(path, sample_rate=24000) and
// averages the channels (fixtures ref_sphn_*.wav, made by tests/reference/make_audio_fixtures.sh).
// sphn's FFT resampler delays the signal (768 samples for 16 -> 24 kHz, 280 for 44.1 -> 24 kHz) and pads
// the end; ours is zero-delay and trimmed. After aligning, the two resamplers agree closely.
struct RefCase {
  const char* input;
  const char* reference;
  int expected_delay;
  double min_snr_db;
};

class ReferenceLoaderTest : public ::testing::TestWithParam<RefCase> {};

TEST_P(ReferenceLoaderTest, MatchesSphnAfterItsDelay) {
  const RefCase& c = GetParam();
  const std::vector<float> ours = DecodeAll(AudioData(c.input));
  const std::vector<float> ref = DecodeAll(AudioData(c.reference));  // 24 kHz float WAV: read exactly
  ASSERT_FALSE(ours.empty());
  ASSERT_GT(ref.size(), ours.size());
  int best_lag = 0;
  double best = -2;
  for (int lag = 0; lag <= 1024; ++lag) {
    const double corr = testing::Correlation(ours, ref, lag);
    if (corr > best) {
      best = corr;
      best_lag = lag;
    }
  }
  EXPECT_EQ(best_lag, c.expected_delay);
  // Compare where both have the whole signal, ours[i] vs ref[i + lag], leaving out 20 ms at each end
  // where the fixtures start and stop abruptly (the two filters ring differently there).
  const size_t edge = 480;
  const size_t n = std::min(ours.size(), ref.size() - best_lag) - 2 * edge;
  std::span<const float> a(ours.data() + edge, n), b(ref.data() + best_lag + edge, n);
  EXPECT_GT(testing::Correlation(a, b), 0.999);
  EXPECT_GT(testing::SnrDb(b, a), c.min_snr_db);
}

// 16 kHz mono: only the resamplers differ (both band-limited, near-transparent): > 45 dB (51.9 measured).
// 44.1 kHz stereo: the channel mean must match too (FFmpeg's default 1/sqrt(2) mix would be 3 dB louder:
// SNR < 8 dB). sphn's delay here is 279.7 samples, not whole: the 0.3-sample remainder caps the
// integer-aligned SNR at ~28 dB (it is 48 dB at the fractional delay), hence 25 dB.
INSTANTIATE_TEST_SUITE_P(
    Sphn, ReferenceLoaderTest,
    ::testing::Values(RefCase{"speech_16k_mono.wav", "ref_sphn_speech_24k.wav", 768, 45.0},
                      RefCase{"speech_44k_stereo.wav", "ref_sphn_stereo_mean_24k.wav", 280, 25.0}));

}  // namespace
}  // namespace monologue
