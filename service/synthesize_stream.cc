// monologue.v1.Synthesis/Synthesize: config, then text chunks (and turn ends); audio chunks and words as the
// TTS engine decodes them.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/bidi_stream.h"
#include "service/mode_streams.h"
#include "service/stream_audio.h"
#include "tts/tts_engine.h"

namespace monologue {
namespace {

namespace v1 = ::monologue::v1;

// Text a stream may send in all (the model speaks ~3 words a second: this is hours of speech).
constexpr size_t kMaxTextBytes = 1 << 20;

class SynthesizeStream final : public BidiStream<v1::SynthesizeRequest, v1::SynthesizeResponse> {
 public:
  SynthesizeStream(ModeLoop* loop, grpc::CallbackServerContext* context, TtsEngine* engine,
                   const SynthesisDefaults* defaults)
      : BidiStream(loop, context), engine_(engine), defaults_(defaults) {
    Begin();
  }

 private:
  void HandleRequestLocked(const v1::SynthesizeRequest& request) override {
    if (!configured_) {
      if (!request.has_config()) {
        RefuseLocked("bad_config", grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                                "the first request of a stream must carry `config`"));
        return;
      }
      ConfigureLocked(request.config());
      return;
    }
    absl::Status st;
    switch (request.request_case()) {
      case v1::SynthesizeRequest::kConfig:
        FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  "`config` may only be sent once, in the first request"));
        return;
      case v1::SynthesizeRequest::kText:
        text_bytes_ += request.text().size();
        if (text_bytes_ > kMaxTextBytes) {
          FinishLocked(
              grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           absl::StrCat("more than ", kMaxTextBytes, " bytes of text in one stream")));
          return;
        }
        if (!first_text_.has_value() && !request.text().empty()) first_text_ = ServiceClock::now();
        st = session_->PushText(request.text());
        break;
      case v1::SynthesizeRequest::kEndTurn:
        if (request.end_turn()) st = session_->EndTurn();
        break;
      default:
        return;  // an empty message is allowed (no-op)
    }
    if (!st.ok()) FinishLocked(ToGrpc(st));
  }

  void ConfigureLocked(const v1::SynthesizeConfig& config) {
    const TtsModelInfo& info = engine_->info();
    auto encoder = StreamAudioEncoder::Create(config.output_encoding(), "config.output_encoding");
    if (!encoder.ok()) {
      RefuseLocked("bad_config", ToGrpc(encoder.status()));
      return;
    }
    TtsSessionOptions o;
    std::vector<std::string> names(config.voices().begin(), config.voices().end());
    if (names.empty() && !defaults_->default_voice.empty()) names.push_back(defaults_->default_voice);
    for (const std::string& name : names) {
      // Names only (never server-side paths a client could probe): resolved under the voices folder.
      if (name.find("..") != std::string::npos || (!name.empty() && name.front() == '/')) {
        RefuseLocked("bad_config",
                     grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  absl::StrCat("config.voices: '", name, "' is not a voice name")));
        return;
      }
      auto path = ResolveVoice(name, defaults_->voices_dir, info.voice_suffix);
      if (!path.ok()) {
        RefuseLocked("bad_config", grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                                absl::StrCat("config.voices: ", path.status().message())));
        return;
      }
      o.voices.push_back(*path);
    }
    if (config.has_temperature()) o.temp = config.temperature();
    if (config.has_seed()) o.seed = config.seed();
    if (config.has_cfg_coef()) o.cfg_coef = config.cfg_coef();
    if (config.has_padding_between()) o.padding_between = config.padding_between();
    if (config.has_padding_bonus()) o.padding_bonus = config.padding_bonus();
    auto session = engine_->OpenSession(o);
    if (!session.ok()) {
      if (absl::IsResourceExhausted(session.status())) {
        RefuseLocked(
            "no_free_slot",
            grpc::Status(
                grpc::StatusCode::RESOURCE_EXHAUSTED,
                absl::StrCat("no free synthesis slot: all ", loop_->slots(),
                             " streams of this server are busy; retry later or on another replica")));
      } else {
        RefuseLocked("bad_config", grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                                absl::StrCat("config: ", session.status().message())));
      }
      return;
    }
    session_ = std::move(*session);
    encoder_ = std::move(*encoder);
    configured_ = true;
    CountOpenLocked();
    v1::SynthesizeResponse r;
    v1::SynthesisStarted* started = r.mutable_started();
    started->set_request_id(config.request_id());
    started->set_model(info.model_dir);
    started->set_sample_rate_hz(info.sample_rate);
    started->set_frame_seconds(loop_->frame_seconds());
    for (const std::string& name : names) started->add_voices(name);
    started->set_output_encoding(encoder_->encoding());
    Queue(std::move(r));
    WriteNextLocked();
  }

  void HalfClosedLocked() override {
    if (!configured_) {
      FinishLocked(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the stream ended before its `config` message"));
      return;
    }
    absl::Status st = session_->Close();
    if (!st.ok()) FinishLocked(ToGrpc(st));
  }

  void PumpLocked(ServiceClock::time_point now) override {
    if (session_ == nullptr) return;
    const TtsModelInfo& info = engine_->info();
    for (TtsEvent& e : session_->PollEvents()) {
      v1::SynthesizeResponse r;
      switch (e.kind) {
        case TtsEvent::Kind::kAudio: {
          auto chunk = encoder_->NextChunk(e.audio);
          if (!chunk.ok()) {
            FinishLocked(grpc::Status(grpc::StatusCode::INTERNAL, std::string(chunk.status().message())));
            return;
          }
          if (!first_audio_sent_) {
            first_audio_sent_ = true;
            if (first_text_.has_value()) {
              loop_->metrics().first_audio_seconds.Observe(
                  std::chrono::duration<double>(now - *first_text_).count());
            }
          }
          loop_->metrics().AddAudioSeconds(static_cast<double>(e.audio.size()) / info.sample_rate);
          if (!chunk->has_value()) continue;  // Ogg: no page completed yet
          *r.mutable_audio() = std::move(**chunk);
          if (encoder_->seconds() > loop_->options().max_stream_seconds) {
            FinishLocked(grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                                      absl::StrCat("the stream exceeded the maximum duration of ",
                                                   loop_->options().max_stream_seconds, " s of audio")));
            return;
          }
          break;
        }
        case TtsEvent::Kind::kWord: {
          v1::Word* w = r.mutable_word();
          w->set_text(e.word.text);
          w->set_start_seconds(e.word.start_s);
          w->set_end_seconds(e.word.end_s);
          words_++;
          loop_->metrics().words++;
          break;
        }
        case TtsEvent::Kind::kEnd: {
          auto tail = encoder_->LastChunk();
          if (tail.ok() && tail->has_value()) {
            v1::SynthesizeResponse last;
            *last.mutable_audio() = std::move(**tail);
            Queue(std::move(last));
          }
          r.mutable_end()->set_words(words_);
          r.mutable_end()->set_audio_seconds(encoder_->seconds());
          r.mutable_end()->set_frames(session_->steps_done());
          r.mutable_end()->set_truncated(e.truncated);
          ended_ = true;
          break;
        }
      }
      Queue(std::move(r));
    }
    // Flow control: a client that reads slower than the model speaks holds its session (never its output).
    session_->Hold(out_.size() > static_cast<size_t>(loop_->options().max_pending_responses / 4));
  }

  void ReleaseLocked() override {
    session_.reset();
    encoder_.reset();
  }

  TtsEngine* engine_;
  const SynthesisDefaults* defaults_;
  std::unique_ptr<TtsSession> session_;
  std::unique_ptr<StreamAudioEncoder> encoder_;
  size_t text_bytes_ = 0;
  int words_ = 0;
  bool first_audio_sent_ = false;
  std::optional<ServiceClock::time_point> first_text_;
};

}  // namespace

grpc::ServerBidiReactor<v1::SynthesizeRequest, v1::SynthesizeResponse>* NewSynthesizeStream(
    ModeLoop* loop, grpc::CallbackServerContext* context, TtsEngine* engine,
    const SynthesisDefaults* defaults) {
  return new SynthesizeStream(loop, context, engine, defaults);
}

}  // namespace monologue
