// monologue.v1.Dialogue/Converse: config, then the user's audio; Moshi's audio frame for every user frame and
// its text pieces, as the dialogue engine produces them.
#include <algorithm>
#include <deque>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dialogue/dialogue_engine.h"
#include "service/audio_request_stream.h"
#include "service/mode_streams.h"
#include "service/stream_audio.h"

namespace monologue {
namespace {

namespace v1 = ::monologue::v1;

class ConverseStream final
    : public AudioRequestStream<v1::ConverseRequest, v1::ConverseResponse, DialogueSession> {
 public:
  ConverseStream(ModeLoop* loop, grpc::CallbackServerContext* context, DialogueEngine* engine)
      : AudioRequestStream(loop, context), engine_(engine) {
    Begin();
  }

 private:
  int sample_rate() const override { return engine_->info().sample_rate; }
  int frame_size() const override { return engine_->info().frame_size; }

  void ConfigureLocked(const v1::ConverseConfig& config) override {
    auto format = InputFormatFromProto(config.input_format(), "config.input_format");
    if (!format.ok()) {
      RefuseLocked("bad_config", ToGrpc(format.status()));
      return;
    }
    const DialogueModelInfo& info = engine_->info();
    auto input = AudioInput::Create(*format, "config.input_format", info.sample_rate);
    if (!input.ok()) {
      RefuseLocked("bad_config", ToGrpc(input.status()));
      return;
    }
    auto encoder = StreamAudioEncoder::Create(config.output_encoding(), "config.output_encoding");
    if (!encoder.ok()) {
      RefuseLocked("bad_config", ToGrpc(encoder.status()));
      return;
    }
    std::optional<uint64_t> seed;
    if (config.has_seed()) seed = config.seed();
    DialogueSampling sampling;
    if (config.has_temperature()) sampling.temp = config.temperature();
    if (config.has_text_temperature()) sampling.temp_text = config.text_temperature();
    if (config.has_top_k()) sampling.top_k = config.top_k();
    if (config.has_top_k_text()) sampling.top_k_text = config.top_k_text();
    auto session = engine_->OpenSession(seed, sampling);
    if (!session.ok() && absl::IsInvalidArgument(session.status())) {
      RefuseLocked("bad_config", grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                              absl::StrCat("config: ", session.status().message())));
      return;
    }
    if (!session.ok()) {
      RefuseLocked(
          "no_free_slot",
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                       absl::StrCat("no free dialogue slot: all ", loop_->slots(),
                                    " streams of this server are busy; retry later or on another replica")));
      return;
    }
    input_ = std::move(*input);
    encoder_ = std::move(*encoder);
    session_ = std::move(*session);
    configured_ = true;
    CountOpenLocked();
    v1::ConverseResponse r;
    v1::ConverseStarted* started = r.mutable_started();
    started->set_request_id(config.request_id());
    started->set_model(info.model_dir);
    started->set_sample_rate_hz(info.sample_rate);
    started->set_frame_seconds(loop_->frame_seconds());
    started->set_output_encoding(encoder_->encoding());
    Queue(std::move(r));
    WriteNextLocked();
  }

  void PumpLocked(ServiceClock::time_point now) override {
    if (session_ == nullptr) return;
    const DialogueModelInfo& info = engine_->info();
    for (DialogueEvent& e : session_->PollEvents()) {
      v1::ConverseResponse r;
      switch (e.kind) {
        case DialogueEvent::Kind::kAudio: {
          auto chunk = encoder_->NextChunk(e.audio);
          if (!chunk.ok()) {
            FinishLocked(grpc::Status(grpc::StatusCode::INTERNAL, std::string(chunk.status().message())));
            return;
          }
          // Real-time lag: from the arrival of the user's audio that completed this frame to now.
          const int64_t frame_end = (e.frame + 1) * static_cast<int64_t>(info.frame_size);
          while (!arrivals_.empty() && arrivals_.front().first < frame_end) arrivals_.pop_front();
          if (!arrivals_.empty() && !e.codes.empty()) {
            loop_->metrics().frame_lag_seconds.Observe(
                std::chrono::duration<double>(now - arrivals_.front().second).count());
          }
          if (!chunk->has_value()) continue;  // Ogg: no page completed yet
          *r.mutable_audio() = std::move(**chunk);
          break;
        }
        case DialogueEvent::Kind::kText:
          r.mutable_text()->set_text(e.text);
          r.mutable_text()->set_audio_seconds(e.time_s);
          pieces_++;
          loop_->metrics().words++;
          break;
        case DialogueEvent::Kind::kEnd: {
          auto tail = encoder_->LastChunk();
          if (tail.ok() && tail->has_value()) {
            v1::ConverseResponse last;
            *last.mutable_audio() = std::move(**tail);
            Queue(std::move(last));
          }
          r.mutable_end()->set_words(pieces_);
          r.mutable_end()->set_audio_seconds(static_cast<double>(samples_in_) / info.sample_rate);
          r.mutable_end()->set_frames(session_->frames_done());
          ended_ = true;
          break;
        }
      }
      Queue(std::move(r));
    }
  }

  void ReleaseLocked() override {
    AudioRequestStream::ReleaseLocked();
    encoder_.reset();
  }

  DialogueEngine* engine_;
  std::unique_ptr<StreamAudioEncoder> encoder_;
  int pieces_ = 0;
};

}  // namespace

grpc::ServerBidiReactor<v1::ConverseRequest, v1::ConverseResponse>* NewConverseStream(
    ModeLoop* loop, grpc::CallbackServerContext* context, DialogueEngine* engine) {
  return new ConverseStream(loop, context, engine);
}

}  // namespace monologue
