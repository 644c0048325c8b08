// /api/chat: the dialogue protocol of the reference Moshi server (moshi/moshi/server.py) and its web client;
// Full-Duplex-Bench's v1.5 Moshi client (model_inference/moshi/inference.py) speaks it too.
//   server -> client: b"\x00" (the handshake) once the dialogue slot is granted; then b"\x01" + Ogg/Opus bytes
//                     of Moshi's voice (24 kHz mono, one page per coded Opus frame, the stream's header pages
//                     first) and b"\x02" + UTF-8 text pieces of Moshi's inner monologue (ids other than 0 / 3,
//                     '▁' as a space), as each 80 ms frame is produced.
//   client -> server: b"\x01" + Ogg/Opus bytes of the user's microphone (any split of the pages).
// One dialogue slot per connection, for as long as it stays open. Sampling: the query parameters the Moshi
// web client sends (text_temperature, text_topk, audio_temperature, audio_topk; the reference Python server
// ignores them, the Rust one honours them) and `seed`; unset: the model's lm_gen_config.
// Errors (a full server, bad Ogg/Opus, an unknown message kind) are sent as b"\x05" + message (the kind the
// Rust moshi-server uses for errors), then the close. Kinds 3 (control) and 6 (ping) are accepted and ignored,
// as are empty and text messages (the Python server logs and skips them).
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dialogue/dialogue_engine.h"
#include "service/http/ogg_opus_stream.h"
#include "service/http/ws_endpoints.h"

namespace monologue {
namespace {

constexpr char kHandshake = 0x00;
constexpr char kAudio = 0x01;
constexpr char kText = 0x02;
constexpr char kControl = 0x03;
constexpr char kError = 0x05;
constexpr char kPing = 0x06;

class ChatWsConnection final : public WsConnection {
 public:
  ChatWsConnection(WsSocket ws, ModeLoop* loop, DialogueEngine* engine, QueryParams query)
      : WsConnection(std::move(ws), loop), engine_(engine), query_(std::move(query)) {}

 private:
  void OpenLocked() override {
    std::optional<uint64_t> seed;
    DialogueSampling sampling;
    if (!SeedParamLocked(query_, "seed", [&](uint64_t x) { seed = x; }) ||
        !NumberParamLocked(query_, "audio_temperature", [&](double x) { sampling.temp = x; }) ||
        !NumberParamLocked(query_, "text_temperature", [&](double x) { sampling.temp_text = x; }) ||
        !NumberParamLocked(
            query_, "audio_topk", [&](double x) { sampling.top_k = static_cast<int>(x); }, 1e6,
            /*whole=*/true) ||
        !NumberParamLocked(
            query_, "text_topk", [&](double x) { sampling.top_k_text = static_cast<int>(x); }, 1e6,
            /*whole=*/true)) {
      return;
    }
    auto session = engine_->OpenSession(seed, sampling);
    if (!session.ok()) {
      if (absl::IsResourceExhausted(session.status())) {
        RefuseLocked("no_free_slot",
                     absl::StrCat("no free dialogue slot: all ", loop_->slots(), " are busy; retry later"),
                     "RESOURCE_EXHAUSTED");
      } else {
        RefuseLocked("bad_config", std::string(session.status().message()), "INVALID_ARGUMENT");
      }
      return;
    }
    auto decoder = OggOpusStreamDecoder::Create();
    auto encoder = OggOpusStreamEncoder::Create();
    if (!decoder.ok() || !encoder.ok()) {
      return FailLocked(std::string(!decoder.ok() ? decoder.status().message() : encoder.status().message()),
                        "INTERNAL");
    }
    session_ = std::move(*session);
    decoder_ = std::move(*decoder);
    encoder_ = std::move(*encoder);
    CountOpenLocked();
    SendLocked(std::string(1, kHandshake));
    // The Ogg stream's header pages (OpusHead, OpusTags) right away: the client's reader needs them first.
    auto header = encoder_->Encode({});
    if (!header.ok()) return FailLocked(std::string(header.status().message()), "INTERNAL");
    SendKindLocked(kAudio, *header);
  }

  void SendKindLocked(char kind, const std::string& payload) {
    if (payload.empty()) return;
    std::string message(1, kind);
    message += payload;
    SendLocked(std::move(message));
  }

  void OnMessageLocked(std::string_view data, bool binary) override {
    if (!binary || data.empty()) return;
    const char kind = data[0];
    if (kind == kControl || kind == kPing) return;
    if (kind != kAudio) {
      return FailLocked(absl::StrCat("unknown message kind ", static_cast<int>(static_cast<unsigned char>(kind)),
                                     " (expected 1: Ogg/Opus audio)"));
    }
    const std::string_view payload = data.substr(1);
    auto pcm = decoder_->Decode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
    if (!pcm.ok()) return FailLocked(absl::StrCat("bad Ogg/Opus audio: ", pcm.status().message()));
    if (pcm->empty()) return;
    const DialogueModelInfo& info = engine_->info();
    samples_in_ += static_cast<int64_t>(pcm->size());
    if (static_cast<double>(samples_in_) / info.sample_rate > loop_->options().max_stream_seconds) {
      return FailLocked(absl::StrCat("the stream exceeded the maximum duration of ",
                                     loop_->options().max_stream_seconds, " s of audio"),
                        "OUT_OF_RANGE");
    }
    absl::Status st = session_->PushAudio(*pcm);
    if (!st.ok()) return FailLocked(std::string(st.message()), "INTERNAL");
    loop_->metrics().AddAudioSeconds(static_cast<double>(pcm->size()) / info.sample_rate);
  }

  void PumpLocked(ServiceClock::time_point) override {
    if (session_ == nullptr) return;
    for (DialogueEvent& e : session_->PollEvents()) {
      switch (e.kind) {
        case DialogueEvent::Kind::kAudio: {
          auto pages = encoder_->Encode(e.audio);
          if (!pages.ok()) return FailLocked(std::string(pages.status().message()), "INTERNAL");
          SendKindLocked(kAudio, *pages);
          break;
        }
        case DialogueEvent::Kind::kText:
          loop_->metrics().words++;
          SendKindLocked(kText, e.text);
          break;
        case DialogueEvent::Kind::kEnd:
          break;  // the session is closed only with the connection
      }
    }
  }

  bool InputFullLocked() const override {
    if (OutputBacklogLocked()) return true;
    if (session_ == nullptr) return false;
    const DialogueModelInfo& info = engine_->info();
    const int64_t ahead = session_->samples_pushed() - session_->frames_done() * static_cast<int64_t>(info.frame_size);
    return static_cast<double>(ahead) / info.sample_rate > loop_->options().max_ahead_seconds;
  }

  void ReleaseLocked() override {
    session_.reset();
    decoder_.reset();
    encoder_.reset();
  }

  std::string ErrorMessageLocked(const std::string& text) override { return std::string(1, kError) + text; }

  DialogueEngine* engine_;
  QueryParams query_;
  std::unique_ptr<DialogueSession> session_;
  std::unique_ptr<OggOpusStreamDecoder> decoder_;
  std::unique_ptr<OggOpusStreamEncoder> encoder_;
  int64_t samples_in_ = 0;
};

}  // namespace

std::shared_ptr<WsConnection> NewChatWsConnection(WsSocket ws, ModeLoop* loop, DialogueEngine* engine,
                                                  const QueryParams& query) {
  return std::make_shared<ChatWsConnection>(std::move(ws), loop, engine, query);
}

}  // namespace monologue
