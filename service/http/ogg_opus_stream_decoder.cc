// OggOpusStreamDecoder: libogg finds pages in bytes of any chunking, libopus decodes their packets
// (ogg_opus_stream.h).
#include <ogg/ogg.h>
#include <opus.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "service/http/ogg_opus_stream.h"

namespace monologue {
namespace {

constexpr std::string_view kCapture = "OggS";
constexpr int kMaxFrame48k = 5760;  // 120 ms, the longest Opus packet

bool StartsWith(const ogg_packet& p, std::string_view magic) {
  return p.bytes >= static_cast<long>(magic.size()) && std::memcmp(p.packet, magic.data(), magic.size()) == 0;
}

uint32_t Le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

}  // namespace

struct OggOpusStreamDecoder::Impl {
  enum class Expect { kStreamStart, kHead, kTags, kAudio };

  OggOpusStreamDecoderOptions options;
  ogg_sync_state sync{};
  ogg_stream_state stream{};
  bool stream_ready = false;
  Expect expect = Expect::kStreamStart;
  bool stream_ended = false;
  OpusDecoder* opus = nullptr;
  absl::Status failure;  // sticky: once the input was bad, every later call reports it
  int64_t bytes_in = 0;
  int64_t page_bytes = 0;  // bytes of all pages taken out so far = the offset of the next page
  int64_t page_start = 0;  // offset of the page being handled (for error messages)
  int64_t samples_out = 0;
  int input_rate = 0;
  int channels = 0;
  int64_t pre_skip_left = 0;      // output samples still to drop (apply_pre_skip_and_end_trim)
  int64_t pre_skip_out = 0;       // OpusHead's pre-skip at the output rate
  int64_t stream_samples_out = 0;  // samples returned for the current logical stream (before trimming)
  std::vector<float> frame = std::vector<float>(kMaxFrame48k);

  ~Impl() {
    if (opus != nullptr) opus_decoder_destroy(opus);
    if (stream_ready) ogg_stream_clear(&stream);
    ogg_sync_clear(&sync);
  }

  absl::Status Fail(absl::Status status) {
    failure = status;
    return status;
  }
  absl::Status Bad(const std::string& what) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("Ogg/Opus input: ", what, " (page at byte ", page_start, ")")));
  }

  // libogg waits for 27 bytes before it looks at a page header; check the capture pattern as soon as the
  // first bytes are there so that a short non-Ogg message is refused at once instead of waiting forever.
  absl::Status CheckCapturePrefix() {
    const long pending = sync.fill - sync.returned;
    const size_t n = static_cast<size_t>(std::min<long>(pending, static_cast<long>(kCapture.size())));
    if (n > 0 && std::memcmp(sync.data + sync.returned, kCapture.data(), n) != 0) {
      page_start = page_bytes;
      return Bad("not an Ogg page (no \"OggS\" capture pattern)");
    }
    if (static_cast<size_t>(pending) > options.max_pending_bytes) {
      page_start = page_bytes;
      return Bad(absl::StrCat(pending, " bytes without a complete Ogg page (a page is at most 65307 bytes)"));
    }
    return absl::OkStatus();
  }

  absl::Status StartStream(const ogg_page& page) {
    if (stream_ready) ogg_stream_clear(&stream);
    ogg_stream_init(&stream, ogg_page_serialno(&page));
    stream_ready = true;
    stream_ended = false;
    expect = Expect::kHead;
    return absl::OkStatus();
  }

  absl::Status ReadHead(const ogg_packet& p) {
    if (!StartsWith(p, "OpusHead")) {
      return Bad(StartsWith(p, "\x01vorbis") ? "the stream is Ogg/Vorbis, not Opus"
                                            : "the stream's first packet is not an OpusHead (not Ogg/Opus)");
    }
    if (p.bytes < 19) return Bad(absl::StrCat("OpusHead of ", p.bytes, " bytes (at least 19)"));
    const unsigned char* h = p.packet;
    if ((h[8] & 0xf0) != 0) return Bad(absl::StrCat("OpusHead version ", static_cast<int>(h[8]), " (major 0 only)"));
    channels = h[9];
    const int mapping = h[18];
    if (channels < 1 || (mapping == 0 && channels > 2) || mapping != 0) {
      return Bad(absl::StrCat("OpusHead with ", channels, " channels, mapping family ", mapping,
                              " (mono or stereo, family 0, only)"));
    }
    const int pre_skip_48k = h[10] | h[11] << 8;
    input_rate = static_cast<int>(Le32(h + 12));
    pre_skip_out = static_cast<int64_t>(pre_skip_48k) * options.sample_rate / 48000;
    pre_skip_left = options.apply_pre_skip_and_end_trim ? pre_skip_out : 0;
    stream_samples_out = 0;
    if (opus != nullptr) opus_decoder_destroy(opus);
    int error = OPUS_OK;
    // A mono decoder: libopus mixes a stereo stream down itself.
    opus = opus_decoder_create(options.sample_rate, 1, &error);
    if (error != OPUS_OK || opus == nullptr) {
      return Fail(absl::InternalError(absl::StrCat("opus_decoder_create: ", opus_strerror(error))));
    }
    expect = Expect::kTags;
    return absl::OkStatus();
  }

  absl::Status DecodeAudio(const ogg_packet& p, std::vector<float>& out) {
    if (p.bytes == 0) return absl::OkStatus();  // an empty packet carries nothing (DTX)
    if (StartsWith(p, "OpusHead") || StartsWith(p, "OpusTags")) {
      return Bad("a second Opus header in the middle of the stream");
    }
    const int n = opus_decode_float(opus, p.packet, static_cast<opus_int32>(p.bytes), frame.data(),
                                    static_cast<int>(frame.size()), 0);
    if (n < 0) return Bad(absl::StrCat("Opus packet ", p.packetno, " rejected by libopus: ", opus_strerror(n)));
    int64_t begin = std::min<int64_t>(pre_skip_left, n);
    pre_skip_left -= begin;
    int64_t end = n;
    stream_samples_out += n;
    if (options.apply_pre_skip_and_end_trim && p.e_o_s && p.granulepos >= 0) {
      // The last page's granule position says how many samples (48 kHz, counting pre-skip) are real.
      const int64_t keep_total = p.granulepos * options.sample_rate / 48000;
      const int64_t excess = std::max<int64_t>(0, stream_samples_out - keep_total);
      end = std::max<int64_t>(begin, n - excess);
    }
    out.insert(out.end(), frame.begin() + begin, frame.begin() + end);
    return absl::OkStatus();
  }

  absl::Status HandlePacket(const ogg_packet& p, std::vector<float>& out) {
    switch (expect) {
      case Expect::kHead:
        return ReadHead(p);
      case Expect::kTags:
        if (!StartsWith(p, "OpusTags")) return Bad("the packet after OpusHead is not OpusTags");
        expect = Expect::kAudio;
        return absl::OkStatus();
      case Expect::kAudio:
        return DecodeAudio(p, out);
      case Expect::kStreamStart:
        break;
    }
    return Bad("a packet before the stream started");
  }

  absl::Status HandlePage(ogg_page& page, std::vector<float>& out) {
    if (ogg_page_bos(&page)) {
      // A new beginning-of-stream page: a chained stream, or a client that restarted its recorder.
      if (absl::Status st = StartStream(page); !st.ok()) return st;
    } else if (!stream_ready) {
      return Bad("the first page is not a beginning-of-stream page (the stream's start is missing)");
    } else if (ogg_page_serialno(&page) != stream.serialno) {
      return Bad(absl::StrCat("a page of stream serial ", static_cast<uint32_t>(ogg_page_serialno(&page)),
                              " inside stream ", static_cast<uint32_t>(stream.serialno),
                              " (multiplexed Ogg streams are not supported)"));
    } else if (stream_ended) {
      return Bad("a page after the end-of-stream page");
    }
    if (ogg_stream_pagein(&stream, &page) != 0) return Bad("libogg refused the page");
    ogg_packet packet;
    for (;;) {
      const int r = ogg_stream_packetout(&stream, &packet);
      if (r == 0) break;
      if (r < 0) return Bad("a gap in the page sequence (a page is missing before this one)");
      if (absl::Status st = HandlePacket(packet, out); !st.ok()) return st;
    }
    if (ogg_page_eos(&page)) stream_ended = true;
    return absl::OkStatus();
  }
};

OggOpusStreamDecoder::OggOpusStreamDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OggOpusStreamDecoder::~OggOpusStreamDecoder() = default;

absl::StatusOr<std::unique_ptr<OggOpusStreamDecoder>> OggOpusStreamDecoder::Create(
    const OggOpusStreamDecoderOptions& options) {
  const int r = options.sample_rate;
  if (r != 8000 && r != 12000 && r != 16000 && r != 24000 && r != 48000) {
    return absl::InvalidArgumentError(absl::StrCat("Ogg/Opus decoder: output rate ", r,
                                                   " Hz is not one Opus decodes to (8000/12000/16000/24000/48000)"));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  ogg_sync_init(&impl->sync);
  return std::unique_ptr<OggOpusStreamDecoder>(new OggOpusStreamDecoder(std::move(impl)));
}

absl::StatusOr<std::vector<float>> OggOpusStreamDecoder::Decode(std::span<const uint8_t> bytes) {
  Impl& s = *impl_;
  if (!s.failure.ok()) return s.failure;
  std::vector<float> out;
  if (!bytes.empty()) {
    char* buffer = ogg_sync_buffer(&s.sync, static_cast<long>(bytes.size()));
    if (buffer == nullptr) return s.Fail(absl::ResourceExhaustedError("Ogg/Opus input: out of memory"));
    std::memcpy(buffer, bytes.data(), bytes.size());
    ogg_sync_wrote(&s.sync, static_cast<long>(bytes.size()));
    s.bytes_in += static_cast<int64_t>(bytes.size());
  }
  for (;;) {
    if (absl::Status st = s.CheckCapturePrefix(); !st.ok()) return st;
    ogg_page page;
    const int r = ogg_sync_pageout(&s.sync, &page);
    if (r == 0) break;
    s.page_start = s.page_bytes;
    if (r < 0) return s.Bad("bytes that are not a valid Ogg page (a damaged page: bad checksum or header)");
    s.page_bytes += page.header_len + page.body_len;
    if (absl::Status st = s.HandlePage(page, out); !st.ok()) return st;
  }
  s.samples_out += static_cast<int64_t>(out.size());
  return out;
}

int64_t OggOpusStreamDecoder::bytes_consumed() const { return impl_->bytes_in; }
int64_t OggOpusStreamDecoder::samples_decoded() const { return impl_->samples_out; }
int OggOpusStreamDecoder::input_sample_rate() const { return impl_->input_rate; }
int OggOpusStreamDecoder::channels() const { return impl_->channels; }

}  // namespace monologue
