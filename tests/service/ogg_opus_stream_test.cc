// The WebSocket endpoints' streaming Ogg/Opus codec (service/http/ogg_opus_stream.h): a real speech clip
// through encoder and decoder, the reference codec's stream (sphn, as the reference server and the
// Full-Duplex-Bench client send it; tests/reference/make_ogg_opus_stream_fixtures.py), FFmpeg's libopus
// file, pages split across messages, and bad input.
#include "service/http/ogg_opus_stream.h"

#include <cstdint>
#include <fstream>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "core/audio/audio_decoder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/audio/audio_test_util.h"

namespace monologue {
namespace {

using ::monologue::testing::AudioData;
using ::monologue::testing::BestCorrelation;
using ::monologue::testing::ReadBytes;
using ::monologue::testing::SnrDb;

std::vector<float> Speech24k() {
  auto decoded = DecodeAudioFile(std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr/speech_en.wav");
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return decoded.ok() ? decoded->samples : std::vector<float>{};
}

// One Ogg page as found in a byte string (RFC 3533 header layout).
struct Page {
  size_t offset = 0;
  size_t size = 0;
  int header_type = 0;
  int64_t granule = 0;
  int segments = 0;
  int packets = 0;  // packets completed on the page (segments shorter than 255 bytes)
  std::string body;
};

std::vector<Page> SplitPages(const std::string& bytes) {
  std::vector<Page> pages;
  size_t at = 0;
  while (at + 27 <= bytes.size()) {
    EXPECT_EQ(bytes.substr(at, 4), "OggS") << "at " << at;
    Page p;
    p.offset = at;
    p.header_type = static_cast<uint8_t>(bytes[at + 5]);
    for (int i = 7; i >= 0; --i) p.granule = p.granule << 8 | static_cast<uint8_t>(bytes[at + 6 + i]);
    p.segments = static_cast<uint8_t>(bytes[at + 26]);
    size_t body = 0;
    for (int i = 0; i < p.segments; ++i) {
      const int lace = static_cast<uint8_t>(bytes[at + 27 + i]);
      body += lace;
      if (lace < 255) ++p.packets;
    }
    const size_t header = 27 + static_cast<size_t>(p.segments);
    p.body = bytes.substr(at + header, body);
    p.size = header + body;
    pages.push_back(p);
    at += p.size;
  }
  EXPECT_EQ(at, bytes.size()) << "trailing bytes after the last page";
  return pages;
}

std::string Encode(std::span<const float> pcm, const std::vector<size_t>& chunks,
                   const OggOpusStreamEncoderOptions& options = {}) {
  auto encoder = OggOpusStreamEncoder::Create(options);
  EXPECT_TRUE(encoder.ok()) << encoder.status();
  std::string out;
  size_t at = 0;
  for (size_t i = 0; at < pcm.size(); ++i) {
    const size_t n = std::min(chunks[i % chunks.size()], pcm.size() - at);
    auto bytes = (*encoder)->Encode(pcm.subspan(at, n));
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    out += *bytes;
    at += n;
  }
  auto last = (*encoder)->Finish();
  EXPECT_TRUE(last.ok()) << last.status();
  return out + *last;
}

// Feeds `bytes` in pieces of `piece` bytes and returns all the PCM (or the first error).
absl::StatusOr<std::vector<float>> DecodeInPieces(const std::string& bytes, size_t piece,
                                                  const OggOpusStreamDecoderOptions& options = {}) {
  auto decoder = OggOpusStreamDecoder::Create(options);
  if (!decoder.ok()) return decoder.status();
  std::vector<float> pcm;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    const size_t n = std::min(piece, bytes.size() - at);
    auto part = (*decoder)->Decode(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()) + at, n));
    if (!part.ok()) return part.status();
    pcm.insert(pcm.end(), part->begin(), part->end());
  }
  return pcm;
}

OggOpusStreamDecoderOptions Trimmed() {
  OggOpusStreamDecoderOptions o;
  o.apply_pre_skip_and_end_trim = true;
  return o;
}

std::string FileBytes(const std::string& path) {
  const std::vector<uint8_t> b = ReadBytes(path);
  return std::string(b.begin(), b.end());
}

TEST(OggOpusStream, SpeechRoundTripIsOnePagePerTwentyMsFrameAndExactWithTrimming) {
  const std::vector<float> speech = Speech24k();
  ASSERT_GT(speech.size(), 24000u);
  const std::string ogg = Encode(speech, {1000, 37, 1920, 481});
  const std::vector<Page> pages = SplitPages(ogg);
  ASSERT_GT(pages.size(), 3u);
  EXPECT_EQ(pages[0].header_type, 2);  // beginning of stream
  EXPECT_EQ(pages[0].body.substr(0, 8), "OpusHead");
  EXPECT_EQ(pages[1].body.substr(0, 8), "OpusTags");
  // 20 ms frames, one per page, every page granule 960 (48 kHz) further, the last one end-of-stream.
  const size_t audio_pages = pages.size() - 2;
  auto encoder = OggOpusStreamEncoder::Create();
  ASSERT_TRUE(encoder.ok());
  const size_t pre_skip_24k = static_cast<size_t>((*encoder)->pre_skip_48k() / 2);
  EXPECT_GT(pre_skip_24k, 0u);
  EXPECT_EQ(audio_pages, (speech.size() + pre_skip_24k + 479) / 480) << "frames to cover the clip and look-ahead";
  for (size_t i = 2; i < pages.size(); ++i) {
    EXPECT_EQ(pages[i].packets, 1) << "page " << i;
    if (i + 1 < pages.size()) {
      EXPECT_EQ(pages[i].granule, static_cast<int64_t>(i - 1) * 960) << "page " << i;
    }
  }
  EXPECT_EQ(pages.back().header_type & 4, 4);

  // With pre-skip and end trimming honoured the decoder returns the clip's samples, in place.
  auto trimmed = DecodeInPieces(ogg, 100, Trimmed());
  ASSERT_TRUE(trimmed.ok()) << trimmed.status();
  ASSERT_EQ(trimmed->size(), speech.size());
  // (libopus's declared look-ahead and its real delay at 24 kHz differ by a sample.)
  const auto best = BestCorrelation(speech, *trimmed, 40);
  EXPECT_LE(std::abs(best.lag), 1);
  EXPECT_GT(best.correlation, 0.9);
  std::cout << "round trip: correlation " << best.correlation << " at lag " << best.lag << "\n";

  // FFmpeg reads it as a well-formed Ogg/Opus file: same length (pre-skip, end trim), same audio.
  const std::string path = ::monologue::testing::TmpPath("round_trip.opus");
  ::monologue::testing::WriteBytes(path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ogg.data()),
                                                                  ogg.size()));
  auto ffmpeg = DecodeAudioFile(path);
  ASSERT_TRUE(ffmpeg.ok()) << ffmpeg.status();
  EXPECT_EQ(ffmpeg->samples.size(), speech.size());
  EXPECT_GT(BestCorrelation(ffmpeg->samples, *trimmed, 2).correlation, 0.99);

  // By default (as the reference servers) every decoded sample is returned: the clip delayed by pre-skip.
  auto untrimmed = DecodeInPieces(ogg, 4096);
  ASSERT_TRUE(untrimmed.ok()) << untrimmed.status();
  EXPECT_EQ(untrimmed->size(), audio_pages * 480);
  EXPECT_NEAR(BestCorrelation(speech, *untrimmed, 200).lag, static_cast<double>(pre_skip_24k), 1.0);
}

TEST(OggOpusStream, EncoderEmitsEachPageAsSoonAsItsFrameIsComplete) {
  auto encoder = OggOpusStreamEncoder::Create();
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  EXPECT_EQ((*encoder)->frame_samples(), 480);
  const std::vector<float> speech = Speech24k();
  auto first = (*encoder)->Encode(std::span<const float>(speech).subspan(0, 100));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(SplitPages(*first).size(), 2u) << "headers only: no whole frame yet";
  auto second = (*encoder)->Encode(std::span<const float>(speech).subspan(100, 379));
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->empty()) << "479 samples: still one short of a frame";
  auto third = (*encoder)->Encode(std::span<const float>(speech).subspan(479, 1));
  ASSERT_TRUE(third.ok());
  ASSERT_EQ(SplitPages(*third).size(), 1u);
  auto fourth = (*encoder)->Encode(std::span<const float>(speech).subspan(480, 1920));
  ASSERT_TRUE(fourth.ok());
  EXPECT_EQ(SplitPages(*fourth).size(), 4u);
  ASSERT_TRUE((*encoder)->Finish().ok());
  EXPECT_FALSE((*encoder)->Encode(std::span<const float>(speech).subspan(0, 480)).ok());
}

TEST(OggOpusStream, DecodesTheReferenceStreamAsTheReferenceReaderDoes) {
  const std::string ogg = FileBytes(AudioData("ref_sphn_stream_24k.ogg"));
  auto reference = DecodeAudioFile(AudioData("ref_sphn_stream_24k_decoded.wav"));
  ASSERT_TRUE(reference.ok()) << reference.status();
  ASSERT_EQ(reference->samples.size(), 23040u);

  // Fed message by message, as the reference writer's append_pcm calls produced them.
  auto decoder = OggOpusStreamDecoder::Create();
  ASSERT_TRUE(decoder.ok());
  std::ifstream sizes(AudioData("ref_sphn_stream_24k_messages.txt"));
  std::vector<float> pcm;
  size_t at = 0;
  for (size_t n; sizes >> n; at += n) {
    auto part = (*decoder)->Decode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ogg.data()) + at, n));
    ASSERT_TRUE(part.ok()) << part.status();
    EXPECT_EQ(part->size(), 1920u) << "each message is one 80 ms Mimi frame (two 40 ms pages)";
    pcm.insert(pcm.end(), part->begin(), part->end());
  }
  EXPECT_EQ(at, ogg.size());
  EXPECT_EQ((*decoder)->input_sample_rate(), 48000);
  EXPECT_EQ((*decoder)->channels(), 1);
  ASSERT_EQ(pcm.size(), reference->samples.size());
  // Same packets through libopus on both sides (sphn bundles its own libopus build; 16-bit fixture).
  EXPECT_GT(SnrDb(reference->samples, pcm), 40.0);

  // One byte at a time: every page split across calls, the same PCM.
  auto bytewise = DecodeInPieces(ogg, 1);
  ASSERT_TRUE(bytewise.ok()) << bytewise.status();
  EXPECT_EQ(*bytewise, pcm);
}

TEST(OggOpusStream, DecodesFfmpegsLibopusFileWithSeveralPacketsPerPage) {
  // FFmpeg's libopus at 16 kHz input, 100 ms pages: five 20 ms packets a page, real pre-skip and end trim.
  const std::string ogg = FileBytes(AudioData("speech.opus"));
  const std::vector<Page> pages = SplitPages(ogg);
  ASSERT_GT(pages.size(), 3u);
  EXPECT_GT(pages[3].packets, 1);
  auto ours = DecodeInPieces(ogg, 333, Trimmed());
  ASSERT_TRUE(ours.ok()) << ours.status();
  auto ffmpeg = DecodeAudioFile(AudioData("speech.opus"));
  ASSERT_TRUE(ffmpeg.ok()) << ffmpeg.status();
  EXPECT_NEAR(static_cast<double>(ours->size()), static_cast<double>(ffmpeg->samples.size()), 2.0);
  const auto best = BestCorrelation(ffmpeg->samples, *ours, 50);
  EXPECT_LE(std::abs(best.lag), 1);
  EXPECT_GT(best.correlation, 0.99);
}

TEST(OggOpusStream, BadInputIsAClearErrorAndStaysOne) {
  const std::string good = Encode(Speech24k(), {1920});
  const std::vector<Page> pages = SplitPages(good);
  ASSERT_GT(pages.size(), 8u);
  auto error_of = [](const std::string& bytes) {
    auto r = DecodeInPieces(bytes, 1000);
    return r.ok() ? std::string("ok") : std::string(r.status().message());
  };
  EXPECT_THAT(error_of("hello"), ::testing::HasSubstr("OggS"));
  EXPECT_THAT(error_of(std::string(300000, 'O')), ::testing::HasSubstr("OggS"));
  EXPECT_THAT(error_of("OggS" + std::string(200000, '\0')), ::testing::HasSubstr("not a valid Ogg page"));

  std::string damaged = good;
  damaged[pages[5].offset + pages[5].size - 3] ^= 0x55;  // body byte: the page checksum no longer matches
  const std::string damaged_error = error_of(damaged);
  EXPECT_THAT(damaged_error, ::testing::HasSubstr("not a valid Ogg page"));
  EXPECT_THAT(damaged_error, ::testing::HasSubstr("byte " + std::to_string(pages[5].offset)));

  EXPECT_THAT(error_of(good.substr(pages[2].offset)), ::testing::HasSubstr("beginning-of-stream"));
  const std::string gap = good.substr(0, pages[6].offset) + good.substr(pages[7].offset);
  EXPECT_THAT(error_of(gap), ::testing::HasSubstr("gap in the page sequence"));
  EXPECT_THAT(error_of(FileBytes(AudioData("speech_16k_vorbis.ogg"))), ::testing::HasSubstr("Vorbis"));
  const std::string no_tags = good.substr(0, pages[1].offset) + good.substr(pages[2].offset);
  EXPECT_THAT(error_of(no_tags), ::testing::HasSubstr("gap"));

  // After an error every call reports it (a connection is closed on the first one).
  auto decoder = OggOpusStreamDecoder::Create();
  ASSERT_TRUE(decoder.ok());
  const uint8_t junk[] = {'x', 'y', 'z'};
  EXPECT_FALSE((*decoder)->Decode(junk).ok());
  const auto again = (*decoder)->Decode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(good.data()), good.size()));
  EXPECT_FALSE(again.ok());
}

TEST(OggOpusStream, AChainedStreamStartsOverAtItsHeader) {
  const std::vector<float> speech = Speech24k();
  const std::string a = Encode(std::span<const float>(speech).subspan(0, 4800), {480});
  OggOpusStreamEncoderOptions other;
  other.serial = 7;
  const std::string b = Encode(std::span<const float>(speech).subspan(4800, 4800), {480}, other);
  auto both = DecodeInPieces(a + b, 500);
  ASSERT_TRUE(both.ok()) << both.status();
  auto one = DecodeInPieces(a, 500);
  ASSERT_TRUE(one.ok());
  EXPECT_GT(both->size(), one->size() + 4000);
}

TEST(OggOpusStream, RefusesOptionsOpusCannotDo) {
  OggOpusStreamEncoderOptions rate;
  rate.sample_rate = 44100;
  EXPECT_FALSE(OggOpusStreamEncoder::Create(rate).ok());
  OggOpusStreamEncoderOptions frame;
  frame.frame_ms = 25;
  EXPECT_FALSE(OggOpusStreamEncoder::Create(frame).ok());
  OggOpusStreamDecoderOptions out;
  out.sample_rate = 22050;
  EXPECT_FALSE(OggOpusStreamDecoder::Create(out).ok());
}

}  // namespace
}  // namespace monologue
