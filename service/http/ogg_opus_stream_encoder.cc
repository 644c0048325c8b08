// OggOpusStreamEncoder: libopus frames, each flushed into its own Ogg page by libogg (ogg_opus_stream.h).
#include <ogg/ogg.h>
#include <opus.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "service/http/ogg_opus_stream.h"

namespace monologue {
namespace {

void AppendLe16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}

void AppendLe32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// RFC 7845 section 5.1, channel mapping family 0 (mono).
std::string OpusHeadPacket(int pre_skip_48k, int input_sample_rate) {
  std::string head = "OpusHead";
  head.push_back(1);  // version
  head.push_back(1);  // channels
  AppendLe16(head, static_cast<uint16_t>(pre_skip_48k));
  AppendLe32(head, static_cast<uint32_t>(input_sample_rate));
  AppendLe16(head, 0);  // output gain
  head.push_back(0);    // mapping family
  return head;
}

// RFC 7845 section 5.2: vendor string, no user comments.
std::string OpusTagsPacket() {
  const std::string vendor = absl::StrCat("monologue ", opus_get_version_string());
  std::string tags = "OpusTags";
  AppendLe32(tags, static_cast<uint32_t>(vendor.size()));
  tags += vendor;
  AppendLe32(tags, 0);
  return tags;
}

bool IsOpusRate(int rate) {
  return rate == 8000 || rate == 12000 || rate == 16000 || rate == 24000 || rate == 48000;
}

}  // namespace

struct OggOpusStreamEncoder::Impl {
  OggOpusStreamEncoderOptions options;
  OpusEncoder* opus = nullptr;
  ogg_stream_state ogg{};
  bool ogg_ready = false;
  int frame = 0;      // samples per frame at options.sample_rate
  int lookahead = 0;  // encoder delay, samples at options.sample_rate
  bool headers_sent = false;
  bool finished = false;
  std::vector<float> pending;  // samples waiting for a whole frame
  int64_t samples_in = 0;      // real samples given to Encode
  int64_t frames_coded = 0;
  int packets_in_page = 0;
  int64_t pages = 0;
  std::vector<unsigned char> packet_buffer = std::vector<unsigned char>(4000);  // > max Opus packet (1275 B)

  ~Impl() {
    if (opus != nullptr) opus_encoder_destroy(opus);
    if (ogg_ready) ogg_stream_clear(&ogg);
  }

  int RateTo48k() const { return 48000 / options.sample_rate; }

  void TakePages(std::string& out, bool flush) {
    ogg_page page;
    while (flush ? ogg_stream_flush(&ogg, &page) : ogg_stream_pageout(&ogg, &page)) {
      out.append(reinterpret_cast<const char*>(page.header), static_cast<size_t>(page.header_len));
      out.append(reinterpret_cast<const char*>(page.body), static_cast<size_t>(page.body_len));
      ++pages;
    }
  }

  void PutPacket(std::string_view bytes, bool bos, bool eos, int64_t granule) {
    ogg_packet packet{};
    packet.packet = reinterpret_cast<unsigned char*>(const_cast<char*>(bytes.data()));
    packet.bytes = static_cast<long>(bytes.size());
    packet.b_o_s = bos ? 1 : 0;
    packet.e_o_s = eos ? 1 : 0;
    packet.granulepos = granule;
    packet.packetno = ogg.packetno;
    ogg_stream_packetin(&ogg, &packet);
  }

  void SendHeadersOnce(std::string& out) {
    if (headers_sent) return;
    headers_sent = true;
    // Each header on its own page, as RFC 7845 requires and every reader expects.
    PutPacket(OpusHeadPacket(lookahead * RateTo48k(), options.sample_rate), true, false, 0);
    TakePages(out, true);
    PutPacket(OpusTagsPacket(), false, false, 0);
    TakePages(out, true);
  }

  // Codes one frame of `pcm` (frame samples) into the stream; `final_granule` >= 0 marks the last packet.
  absl::Status CodeFrame(const float* pcm, int64_t final_granule, std::string& out) {
    const opus_int32 n = opus_encode_float(opus, pcm, frame, packet_buffer.data(),
                                           static_cast<opus_int32>(packet_buffer.size()));
    if (n < 0) return absl::InternalError(absl::StrCat("opus_encode_float: ", opus_strerror(n)));
    ++frames_coded;
    const bool last = final_granule >= 0;
    const int64_t granule = last ? final_granule : frames_coded * frame * RateTo48k();
    PutPacket(std::string_view(reinterpret_cast<const char*>(packet_buffer.data()), static_cast<size_t>(n)),
              false, last, granule);
    if (++packets_in_page >= options.packets_per_page || last) {
      packets_in_page = 0;
      TakePages(out, true);
    }
    return absl::OkStatus();
  }
};

OggOpusStreamEncoder::OggOpusStreamEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OggOpusStreamEncoder::~OggOpusStreamEncoder() = default;

absl::StatusOr<std::unique_ptr<OggOpusStreamEncoder>> OggOpusStreamEncoder::Create(
    const OggOpusStreamEncoderOptions& options) {
  if (!IsOpusRate(options.sample_rate)) {
    return absl::InvalidArgumentError(absl::StrCat("Ogg/Opus encoder: sample rate ", options.sample_rate,
                                                   " Hz is not one Opus codes (8000/12000/16000/24000/48000)"));
  }
  if (options.frame_ms != 10 && options.frame_ms != 20 && options.frame_ms != 40 && options.frame_ms != 60) {
    return absl::InvalidArgumentError(
        absl::StrCat("Ogg/Opus encoder: frame of ", options.frame_ms, " ms (10, 20, 40 or 60)"));
  }
  if (options.packets_per_page < 1 || options.packets_per_page > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("Ogg/Opus encoder: packets_per_page ", options.packets_per_page, " (1..100)"));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->frame = options.sample_rate / 1000 * options.frame_ms;
  int error = OPUS_OK;
  impl->opus = opus_encoder_create(options.sample_rate, 1, OPUS_APPLICATION_VOIP, &error);
  if (error != OPUS_OK || impl->opus == nullptr) {
    return absl::InternalError(absl::StrCat("opus_encoder_create: ", opus_strerror(error)));
  }
  if (options.bitrate > 0) {
    const int r = opus_encoder_ctl(impl->opus, OPUS_SET_BITRATE(options.bitrate));
    if (r != OPUS_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("Ogg/Opus encoder: bitrate ", options.bitrate, ": ", opus_strerror(r)));
    }
  }
  opus_int32 lookahead = 0;
  opus_encoder_ctl(impl->opus, OPUS_GET_LOOKAHEAD(&lookahead));
  impl->lookahead = static_cast<int>(lookahead);
  if (ogg_stream_init(&impl->ogg, static_cast<int>(options.serial)) != 0) {
    return absl::InternalError("ogg_stream_init failed");
  }
  impl->ogg_ready = true;
  return std::unique_ptr<OggOpusStreamEncoder>(new OggOpusStreamEncoder(std::move(impl)));
}

absl::StatusOr<std::string> OggOpusStreamEncoder::Encode(std::span<const float> pcm) {
  Impl& s = *impl_;
  if (s.finished) return absl::FailedPreconditionError("Ogg/Opus encoder: Encode after Finish");
  std::string out;
  s.SendHeadersOnce(out);
  s.samples_in += static_cast<int64_t>(pcm.size());
  size_t used = 0;
  // Top up a partial frame left from the previous call first, then code whole frames straight from `pcm`.
  if (!s.pending.empty()) {
    used = std::min(pcm.size(), static_cast<size_t>(s.frame) - s.pending.size());
    s.pending.insert(s.pending.end(), pcm.begin(), pcm.begin() + static_cast<std::ptrdiff_t>(used));
    if (s.pending.size() < static_cast<size_t>(s.frame)) return out;
    if (absl::Status st = s.CodeFrame(s.pending.data(), -1, out); !st.ok()) return st;
    s.pending.clear();
  }
  while (pcm.size() - used >= static_cast<size_t>(s.frame)) {
    if (absl::Status st = s.CodeFrame(pcm.data() + used, -1, out); !st.ok()) return st;
    used += static_cast<size_t>(s.frame);
  }
  s.pending.assign(pcm.begin() + static_cast<std::ptrdiff_t>(used), pcm.end());
  return out;
}

absl::StatusOr<std::string> OggOpusStreamEncoder::Finish() {
  Impl& s = *impl_;
  if (s.finished) return absl::FailedPreconditionError("Ogg/Opus encoder: Finish called twice");
  s.finished = true;
  std::string out;
  s.SendHeadersOnce(out);
  // Frames until the encoder's look-ahead has passed the last real sample; at least one so the stream ends
  // with an end-of-stream page.
  const int64_t needed = s.samples_in + s.lookahead;
  const int64_t total_frames = std::max<int64_t>((needed + s.frame - 1) / s.frame, s.frames_coded + 1);
  const int64_t final_granule = (static_cast<int64_t>(s.lookahead) + s.samples_in) * s.RateTo48k();
  std::vector<float> frame(static_cast<size_t>(s.frame), 0.0f);
  std::copy(s.pending.begin(), s.pending.end(), frame.begin());
  s.pending.clear();
  while (s.frames_coded < total_frames) {
    const bool last = s.frames_coded + 1 == total_frames;
    if (absl::Status st = s.CodeFrame(frame.data(), last ? final_granule : -1, out); !st.ok()) return st;
    std::fill(frame.begin(), frame.end(), 0.0f);
  }
  return out;
}

int OggOpusStreamEncoder::frame_samples() const { return impl_->frame; }
int OggOpusStreamEncoder::pre_skip_48k() const { return impl_->lookahead * impl_->RateTo48k(); }
int64_t OggOpusStreamEncoder::pages_written() const { return impl_->pages; }

}  // namespace monologue
