// monologue.v1.Transcription/Transcribe: config, then audio chunks; words (and text pieces, VAD, end of turn)
// as the ASR engine decides them.
#include <algorithm>
#include <deque>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "asr/asr_engine.h"
#include "service/bidi_stream.h"
#include "service/mode_streams.h"
#include "service/stream_audio.h"

namespace monologue {
namespace {

namespace v1 = ::monologue::v1;

class TranscribeStream final : public BidiStream<v1::TranscribeRequest, v1::TranscribeResponse> {
 public:
  TranscribeStream(ModeLoop* loop, grpc::CallbackServerContext* context, AsrEngine* engine)
      : BidiStream(loop, context), engine_(engine) {
    Begin();
  }

 private:
  void HandleRequestLocked(const v1::TranscribeRequest& request) override {
    if (!configured_) {
      if (!request.has_config()) {
        RefuseLocked("bad_config",
                     grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  "the first request of a stream must carry `config` (got audio first)"));
        return;
      }
      ConfigureLocked(request.config());
      return;
    }
    if (request.has_config()) {
      FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "`config` may only be sent once, in the first request"));
      return;
    }
    if (request.audio().empty() || !decoded_.ready) return;  // empty: a no-op; decoded in PrepareRead
    if (!decoded_.status.ok()) {
      FinishLocked(ToGrpc(decoded_.status));
      return;
    }
    PushSamplesLocked(decoded_.samples);
  }

  void PrepareRead(bool ok, const v1::TranscribeRequest& request) override {
    decoded_ = {};
    if (ok && !request.has_config() && !request.audio().empty()) {
      decoded_ = DecodeOutsideLock(mu_, input_, request.audio(), /*finish=*/false);
    } else if (!ok && (context_ == nullptr || !context_->IsCancelled())) {
      decoded_ = DecodeOutsideLock(mu_, input_, {}, /*finish=*/true);  // the half-close flushes the decoder
    }
  }

  void PushSamplesLocked(const std::vector<float>& samples) {
    if (samples.empty()) return;
    const AsrModelInfo& info = engine_->info();
    if (static_cast<double>(samples_in_ + static_cast<int64_t>(samples.size())) / info.sample_rate >
        loop_->options().max_stream_seconds) {
      FinishLocked(grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                                absl::StrCat("the stream exceeded the maximum duration of ",
                                             loop_->options().max_stream_seconds, " s of audio")));
      return;
    }
    absl::Status st = session_->PushAudio(samples);
    if (!st.ok()) {
      FinishLocked(ToGrpc(st));
      return;
    }
    samples_in_ += static_cast<int64_t>(samples.size());
    arrivals_.emplace_back(samples_in_, ServiceClock::now());
    // Arrival times matter only for words still to come, which end a few seconds at most behind the audio
    // the model consumed: drop older ones, so that long silence (no words) cannot grow the queue.
    const int64_t consumed = session_->frames_done() * info.frame_size - info.pad_left_samples;
    const int64_t horizon = consumed - static_cast<int64_t>((info.audio_delay_seconds + 10.0) * info.sample_rate);
    while (arrivals_.size() > 1 && arrivals_.front().first < horizon) arrivals_.pop_front();
    loop_->metrics().AddAudioSeconds(static_cast<double>(samples.size()) / info.sample_rate);
  }

  void ConfigureLocked(const v1::TranscribeConfig& config) {
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

  void HalfClosedLocked() override {
    if (!configured_) {
      FinishLocked(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the stream ended before its `config` message"));
      return;
    }
    close_time_ = ServiceClock::now();
    if (!decoded_.ready) return;  // released meanwhile
    if (!decoded_.status.ok()) {
      FinishLocked(ToGrpc(decoded_.status));
      return;
    }
    PushSamplesLocked(decoded_.samples);
    if (finished_) return;
    absl::Status st = session_->Close();
    if (!st.ok()) FinishLocked(ToGrpc(st));
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

  bool InputFullLocked() const override {
    if (OutputBacklogLocked()) return true;
    if (session_ == nullptr) return false;
    const AsrModelInfo& info = engine_->info();
    const int64_t ahead = info.pad_left_samples + session_->samples_pushed() -
                          session_->frames_done() * static_cast<int64_t>(info.frame_size);
    return static_cast<double>(ahead) / info.sample_rate > loop_->options().max_ahead_seconds;
  }

  void ReleaseLocked() override {
    session_.reset();  // frees the batch slot now
    input_.reset();
  }

  AsrEngine* engine_;
  v1::TranscribeConfig config_;
  std::unique_ptr<AsrSession> session_;
  std::shared_ptr<AudioInput> input_;  // shared with a decode in flight outside mu_ (PrepareRead)
  DecodedChunk decoded_;               // the request being handled, decoded
  int words_ = 0;
  int64_t samples_in_ = 0;
  std::deque<std::pair<int64_t, ServiceClock::time_point>> arrivals_;  // (samples received so far, when)
  ServiceClock::time_point close_time_;
};

}  // namespace

grpc::ServerBidiReactor<v1::TranscribeRequest, v1::TranscribeResponse>* NewTranscribeStream(
    ModeLoop* loop, grpc::CallbackServerContext* context, AsrEngine* engine) {
  return new TranscribeStream(loop, context, engine);
}

}  // namespace monologue
