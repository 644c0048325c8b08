// /api/tts_streaming: the text-to-speech protocol of Kyutai's Rust moshi-server (rust/moshi-server/src/
// py_module.rs and tts.rs; clients: DSM scripts/tts_rust_server.py, Unmute).
//   query: voice=NAME (resolved like the gRPC Synthesis service: under --voices, kyutai/tts-voices naming),
//          format=PcmMessagePack|OggOpusMessagePack|OggOpus|Pcm (default OggOpus, as the Rust server),
//          and, where the Rust server's TtsStreamingQuery has them, seed, temperature, cfg_alpha.
//   in:    {type: "Text", text} (each message one or more words), {type: "Eos"}; a WebSocket text frame is
//          Text, the binary frame "\0" is Eos (as the Rust server).
//   out:   MessagePack formats: {type: "Ready"} when the slot is granted, {type: "Audio", pcm: [1920 f32]} or
//          {type: "OggOpus", data}, {type: "Text", text, start_s, stop_s} per word, {type: "Error", message}
//          then the close (also after the audio when the stream stopped at `--tts-max-steps` with text left);
//          raw formats: only the audio bytes (f32 LE, or the Ogg/Opus stream). The server closes the
//          WebSocket after the last audio.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/http/msgpack_messages.h"
#include "service/http/ws_endpoints.h"
#include "service/http/ogg_opus_stream.h"
#include "tts/tts_engine.h"
#include "tts/tts_voices.h"

namespace monologue {
namespace {

constexpr size_t kMaxTextBytes = 1 << 20;  // text a stream may send in all (hours of speech)

enum class TtsFormat { kPcmMessagePack, kOggOpusMessagePack, kOggOpus, kPcm };

class TtsWsConnection final : public WsConnection {
 public:
  TtsWsConnection(WsSocket ws, ModeLoop* loop, TtsEngine* engine, const SynthesisDefaults* defaults,
                  QueryParams query)
      : WsConnection(std::move(ws), loop),
        engine_(engine),
        defaults_(defaults),
        query_(std::move(query)),
        format_(FormatOf(query_).value_or(TtsFormat::kPcmMessagePack)) {
  }  // a bad format: errors in MessagePack

 private:
  bool MessagePack() const { return format_ == TtsFormat::kPcmMessagePack || format_ == TtsFormat::kOggOpusMessagePack; }
  bool Ogg() const { return format_ == TtsFormat::kOggOpus || format_ == TtsFormat::kOggOpusMessagePack; }

  // The `format` query parameter; nullopt when it names none. Read in the constructor: it decides how every
  // error is sent, a refusal of the query before OpenLocked included.
  static std::optional<TtsFormat> FormatOf(const QueryParams& query) {
    auto f = query.find("format");
    if (f == query.end()) return TtsFormat::kOggOpus;  // the Rust server's default
    if (f->second == "PcmMessagePack") return TtsFormat::kPcmMessagePack;
    if (f->second == "OggOpusMessagePack") return TtsFormat::kOggOpusMessagePack;
    if (f->second == "OggOpus") return TtsFormat::kOggOpus;
    if (f->second == "Pcm") return TtsFormat::kPcm;
    return std::nullopt;
  }

  void OpenLocked() override {
    if (!FormatOf(query_).has_value()) {
      RefuseLocked("bad_config",
                   absl::StrCat("format=", query_.at("format"),
                                ": use PcmMessagePack, OggOpusMessagePack, OggOpus or Pcm"),
                   "INVALID_ARGUMENT");
      return;
    }
    const TtsModelInfo& info = engine_->info();
    TtsSessionOptions o;
    std::string voice = defaults_->default_voice;
    if (auto v = query_.find("voice"); v != query_.end() && !v->second.empty()) voice = v->second;
    if (!voice.empty()) {
      // Names only (never server-side paths a client could probe): resolved under the voices folder.
      if (voice.find("..") != std::string::npos || voice.front() == '/') {
        RefuseLocked("bad_config", absl::StrCat("voice=", voice, ": not a voice name"), "INVALID_ARGUMENT");
        return;
      }
      auto path = ResolveVoice(voice, defaults_->voices_dir, info.voice_suffix);
      if (!path.ok()) {
        RefuseLocked("bad_config", absl::StrCat("voice=", voice, ": ", path.status().message()), "INVALID_ARGUMENT");
        return;
      }
      o.voices.push_back(*path);
    }
    if (!SeedParamLocked(query_, "seed", [&](uint64_t x) { o.seed = x; }) ||
        !NumberParamLocked(query_, "temperature", [&](double x) { o.temp = x; }) ||
        !NumberParamLocked(query_, "cfg_alpha", [&](double x) { o.cfg_coef = x; })) {
      return;
    }
    auto session = engine_->OpenSession(o);
    if (!session.ok()) {
      if (absl::IsResourceExhausted(session.status())) {
        RefuseLocked("no_free_slot", "no free channels", "RESOURCE_EXHAUSTED");  // the Rust server's words
      } else {
        RefuseLocked("bad_config", std::string(session.status().message()), "INVALID_ARGUMENT");
      }
      return;
    }
    if (Ogg()) {
      auto encoder = OggOpusStreamEncoder::Create();
      if (!encoder.ok()) {
        FailLocked(std::string(encoder.status().message()), "INTERNAL");
        return;
      }
      encoder_ = std::move(*encoder);
    }
    session_ = std::move(*session);
    CountOpenLocked();
    if (MessagePack()) SendLocked(TaggedWriter("Ready", 0).bytes());
    if (encoder_ != nullptr) {
      // The Ogg stream's header pages right away, as the Rust server sends them with Ready.
      auto header = encoder_->Encode({});
      if (!header.ok()) return FailLocked(std::string(header.status().message()), "INTERNAL");
      SendOggLocked(*header);
    }
  }

  void OnMessageLocked(std::string_view data, bool binary) override {
    if (!binary) return PushTextLocked(data);
    if (data == std::string_view("\0", 1)) return EosLocked();
    auto message = TaggedMessage::Parse(data);
    if (!message.ok()) return FailLocked(std::string(message.status().message()));
    const std::string& type = message->type();
    if (type == "Text") {
      auto text = message->String("text");
      if (!text.ok()) return FailLocked(std::string(text.status().message()));
      PushTextLocked(*text);
    } else if (type == "Eos") {
      EosLocked();
    } else if (type == "Voice") {
      FailLocked("Voice embedding messages are not supported by this server: use the voice query parameter");
    } else {
      FailLocked(absl::StrCat("unknown message type \"", type, "\" (expected Text or Eos)"));
    }
  }

  void PushTextLocked(std::string_view text) {
    if (closed_) return FailLocked("Text after Eos");
    text_bytes_ += text.size();
    if (text_bytes_ > kMaxTextBytes) {
      return FailLocked(absl::StrCat("more than ", kMaxTextBytes, " bytes of text in one stream"), "RESOURCE_EXHAUSTED");
    }
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return;
    if (!first_text_.has_value()) first_text_ = ServiceClock::now();
    // Each message holds whole words (the Rust server splits every message into words): keep them apart.
    absl::Status st = session_->PushText(any_text_ ? absl::StrCat(" ", std::string(text)) : std::string(text));
    any_text_ = true;
    if (!st.ok()) FailLocked(std::string(st.message()));
  }

  void EosLocked() {
    if (closed_) return;
    closed_ = true;
    absl::Status st = session_->Close();
    if (!st.ok()) FailLocked(std::string(st.message()));
  }

  void PumpLocked(ServiceClock::time_point now) override {
    if (session_ == nullptr) return;
    const TtsModelInfo& info = engine_->info();
    for (TtsEvent& e : session_->PollEvents()) {
      switch (e.kind) {
        case TtsEvent::Kind::kAudio: {
          if (!first_audio_sent_ && first_text_.has_value()) {
            loop_->metrics().first_audio_seconds.Observe(std::chrono::duration<double>(now - *first_text_).count());
          }
          first_audio_sent_ = true;
          audio_seconds_ += static_cast<double>(e.audio.size()) / info.sample_rate;
          loop_->metrics().AddAudioSeconds(static_cast<double>(e.audio.size()) / info.sample_rate);
          if (audio_seconds_ > loop_->options().max_stream_seconds) {
            return FailLocked(absl::StrCat("the stream exceeded the maximum duration of ",
                                           loop_->options().max_stream_seconds, " s of audio"),
                              "OUT_OF_RANGE");
          }
          SendAudioLocked(e.audio);
          break;
        }
        case TtsEvent::Kind::kWord:
          loop_->metrics().words++;
          if (MessagePack()) {
            SendLocked(TaggedWriter("Text", 3)
                           .Str("text", e.word.text)
                           .F64("start_s", e.word.start_s)
                           .F64("stop_s", e.word.end_s)
                           .bytes());
          }
          break;
        case TtsEvent::Kind::kEnd:
          if (encoder_ != nullptr) {
            auto tail = encoder_->Finish();
            if (!tail.ok()) return FailLocked(std::string(tail.status().message()), "INTERNAL");
            SendOggLocked(*tail);
          }
          if (e.truncated) {
            // After the audio and words already queued: they stand, the rest of the text was not spoken.
            return EndWithErrorLocked(absl::StrCat("stopped at the server's ", e.step, "-step limit (",
                                                   audio_seconds_, " s of audio) with text left unspoken"),
                                      "OUT_OF_RANGE");
          }
          EndLocked();
          return;
      }
    }
    // Flow control: a client that reads slower than the model speaks holds its session (never its output).
    session_->Hold(QueuedLocked() > static_cast<size_t>(loop_->options().max_pending_responses / 4));
  }

  void SendAudioLocked(const std::vector<float>& pcm) {
    switch (format_) {
      case TtsFormat::kPcmMessagePack:
        SendLocked(TaggedWriter("Audio", 1).F32Array("pcm", pcm).bytes());
        break;
      case TtsFormat::kPcm:
        SendLocked(std::string(reinterpret_cast<const char*>(pcm.data()), pcm.size() * sizeof(float)));
        break;
      case TtsFormat::kOggOpus:
      case TtsFormat::kOggOpusMessagePack: {
        auto bytes = encoder_->Encode(pcm);
        if (!bytes.ok()) return FailLocked(std::string(bytes.status().message()), "INTERNAL");
        SendOggLocked(*bytes);
        break;
      }
    }
  }

  void SendOggLocked(const std::string& bytes) {
    if (bytes.empty()) return;
    if (format_ == TtsFormat::kOggOpusMessagePack) {
      SendLocked(TaggedWriter("OggOpus", 1).Bin("data", bytes).bytes());
    } else {
      SendLocked(bytes);
    }
  }

  void ReleaseLocked() override {
    session_.reset();
    encoder_.reset();
  }

  std::string ErrorMessageLocked(const std::string& text) override {
    return MessagePack() ? MsgpackError(text) : std::string();  // raw formats: the close reason only
  }

  bool AwaitsInputLocked() const override { return !closed_; }  // until Eos

  TtsEngine* engine_;
  const SynthesisDefaults* defaults_;
  QueryParams query_;
  TtsFormat format_;
  std::unique_ptr<TtsSession> session_;
  std::unique_ptr<OggOpusStreamEncoder> encoder_;
  size_t text_bytes_ = 0;
  bool any_text_ = false;
  bool closed_ = false;
  bool first_audio_sent_ = false;
  double audio_seconds_ = 0;
  std::optional<ServiceClock::time_point> first_text_;
};

}  // namespace

std::shared_ptr<WsConnection> NewTtsWsConnection(WsSocket ws, ModeLoop* loop, TtsEngine* engine,
                                                 const SynthesisDefaults* defaults, const QueryParams& query) {
  return std::make_shared<TtsWsConnection>(std::move(ws), loop, engine, defaults, query);
}

}  // namespace monologue
