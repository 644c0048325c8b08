// monologue.v1.Transcription/Transcribe: config, then audio chunks; words (and text pieces, VAD, end of turn)
// as the ASR engine decides them.
#include <algorithm>
#include <deque>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "asr/asr_engine.h"
#include "service/audio_request_stream.h"
#include "service/mode_streams.h"
#include "service/stream_audio.h"

namespace monologue {
namespace {

namespace v1 = ::monologue::v1;

class TranscribeStream final
    : public AudioRequestStream<v1::TranscribeRequest, v1::TranscribeResponse, AsrSession> {
 public:
  TranscribeStream(ModeLoop* loop, grpc::CallbackServerContext* context, AsrEngine* engine)
      : AudioRequestStream(loop, context), engine_(engine) {
    Begin();
  }

 private:
  int sample_rate() const override { return engine_->info().sample_rate; }
  int frame_size() const override { return engine_->info().frame_size; }
  int64_t leading_samples() const override { return engine_->info().pad_left_samples; }
  // Words still to come end a few seconds at most behind the audio the model consumed: older arrival times
  // are dropped, so that long silence (no words) cannot grow the queue.
  int64_t ArrivalHorizonLocked() const override {
    const AsrModelInfo& info = engine_->info();
    const int64_t consumed = session_->frames_done() * info.frame_size - info.pad_left_samples;
    return consumed - static_cast<int64_t>((info.audio_delay_seconds + 10.0) * info.sample_rate);
  }

  void ConfigureLocked(const v1::TranscribeConfig& config) override {
    config_ = config;
    auto format = InputFormatFromProto(config.audio_format(), "config.audio_format");
    if (!format.ok()) {
      RefuseLocked("bad_config", ToGrpc(format.status()));
      return;
    }
    const AsrModelInfo& info = engine_->info();
    auto input = AudioInput::Create(*format, "config.audio_format", info.sample_rate);
    if (!input.ok()) {
      RefuseLocked("bad_config", ToGrpc(input.status()));
      return;
    }
    if (config.enable_vad_events() && info.num_vad_heads == 0) {
      RefuseLocked("bad_config", grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                              "config.enable_vad_events: the served model has no VAD heads"));
      return;
    }
    auto session = engine_->OpenSession();
    if (!session.ok()) {
      RefuseLocked(
          "no_free_slot",
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                       absl::StrCat("no free transcription slot: all ", loop_->slots(),
                                    " streams of this server are busy; retry later or on another replica")));
      return;
    }
    input_ = std::move(*input);
    session_ = std::move(*session);
    configured_ = true;
    CountOpenLocked();
    v1::TranscribeResponse r;
    v1::StreamStarted* started = r.mutable_started();
    started->set_request_id(config.request_id());
    started->set_model(info.model_dir);
    started->set_sample_rate_hz(info.sample_rate);
    started->set_frame_seconds(loop_->frame_seconds());
    started->set_delay_seconds(info.audio_delay_seconds);
    started->set_has_vad(info.num_vad_heads > 0);
    Queue(std::move(r));
    WriteNextLocked();
  }

  void PumpLocked(ServiceClock::time_point now) override {
    if (session_ == nullptr) return;
    std::vector<AsrEvent> events = session_->PollEvents();
    if (events.empty()) return;
    const AsrModelInfo& info = engine_->info();
    const double processed =
        std::max(0.0, static_cast<double>(session_->frames_done() * info.frame_size - info.pad_left_samples) /
                          info.sample_rate);
    for (AsrEvent& e : events) ForwardLocked(e, processed, now);
  }

  void ForwardLocked(AsrEvent& e, double processed, ServiceClock::time_point now) {
    v1::TranscribeResponse r;
    r.set_audio_processed_seconds(processed);
    switch (e.kind) {
      case AsrEvent::Kind::kWord: {
        v1::Word* w = r.mutable_word();
        w->set_text(e.word.text);
        w->set_start_seconds(e.word.start_s);
        w->set_end_seconds(e.word.end_s);
        words_++;
        loop_->metrics().words++;
        // Latency: from the arrival of the audio that ends the word (or the half-close) to now.
        const int64_t end_sample = static_cast<int64_t>(e.word.end_s * engine_->info().sample_rate);
        while (!arrivals_.empty() && arrivals_.front().first < end_sample) arrivals_.pop_front();
        ServiceClock::time_point from = arrivals_.empty() ? close_time_ : arrivals_.front().second;
        if (arrivals_.empty() && !half_closed_) from = now;
        loop_->metrics().audio_to_word_seconds.Observe(std::chrono::duration<double>(now - from).count());
        break;
      }
      case AsrEvent::Kind::kText:
        if (!config_.enable_text_pieces()) return;
        r.mutable_text()->set_text(e.text);
        r.mutable_text()->set_audio_seconds(processed);
        break;
      case AsrEvent::Kind::kVad:
        if (!config_.enable_vad_events()) return;
        r.mutable_vad()->set_time_seconds(e.time_s);
        for (float p : e.vad) r.mutable_vad()->add_no_voice_probability(p);
        break;
      case AsrEvent::Kind::kEndOfTurn:
        r.mutable_end_of_turn()->set_time_seconds(e.time_s);
        break;
      case AsrEvent::Kind::kEnd:
        r.mutable_end()->set_words(words_);
        r.mutable_end()->set_audio_seconds(static_cast<double>(samples_in_) / engine_->info().sample_rate);
        r.mutable_end()->set_frames(session_->frames_done());
        ended_ = true;
        break;
    }
    Queue(std::move(r));
  }

  AsrEngine* engine_;
  v1::TranscribeConfig config_;
  int words_ = 0;
};

}  // namespace

grpc::ServerBidiReactor<v1::TranscribeRequest, v1::TranscribeResponse>* NewTranscribeStream(
    ModeLoop* loop, grpc::CallbackServerContext* context, AsrEngine* engine) {
  return new TranscribeStream(loop, context, engine);
}

}  // namespace monologue
