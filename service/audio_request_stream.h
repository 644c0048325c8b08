// What the Transcribe and Converse streams share: the first request carries a config naming the input audio
// format, every later one a chunk of audio of any size in it. Each chunk is decoded outside the stream's lock
// (PrepareRead: the scheduler takes that lock after every model step), checked against --max-stream-seconds,
// pushed into the mode's session with its arrival time (for the latency metrics), and reading pauses while the
// session is more than --max-ahead-seconds ahead of the model. The half-close flushes the decoder and closes the
// session. A mode supplies its config handling (on success it sets input_, session_ and configured_) and how its
// session's events become responses.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/audio_input.h"
#include "service/bidi_stream.h"

namespace monologue {

template <typename Request, typename Response, typename Session>
class AudioRequestStream : public BidiStream<Request, Response> {
 protected:
  using Config = std::decay_t<decltype(std::declval<const Request&>().config())>;
  using BidiStream<Request, Response>::BidiStream;

  // The first request's config.
  virtual void ConfigureLocked(const Config& config) = 0;
  // The model's input rate and frame, and the samples the session holds before the first pushed one (a
  // silence prefix): what the pacing compares the pushed audio with.
  virtual int sample_rate() const = 0;
  virtual int frame_size() const = 0;
  virtual int64_t leading_samples() const { return 0; }
  // Arrival times of samples below this can be dropped: no event will ask for them (default: keep all).
  virtual int64_t ArrivalHorizonLocked() const { return std::numeric_limits<int64_t>::min(); }

  void HandleRequestLocked(const Request& request) override {
    if (!this->configured_) {
      if (!request.has_config()) {
        this->RefuseLocked(
            "bad_config",
            grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         request.audio().empty()
                             ? "the first request of a stream must carry `config` (it was empty)"
                             : "the first request of a stream must carry `config` (got audio first)"));
        return;
      }
      ConfigureLocked(request.config());
      return;
    }
    if (request.has_config()) {
      this->FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                      "`config` may only be sent once, in the first request"));
      return;
    }
    if (request.audio().empty() || !decoded_.ready) return;  // empty: a no-op; decoded in PrepareRead
    if (!decoded_.status.ok()) {
      this->FinishLocked(ToGrpc(decoded_.status));
      return;
    }
    PushSamplesLocked(decoded_.samples);
  }

  void PrepareRead(bool ok, const Request& request) override {
    decoded_ = {};
    if (ok && !request.has_config() && !request.audio().empty()) {
      decoded_ = DecodeOutsideLock(this->mu_, input_, request.audio(), /*finish=*/false);
    } else if (!ok && (this->context_ == nullptr || !this->context_->IsCancelled())) {
      decoded_ = DecodeOutsideLock(this->mu_, input_, {}, /*finish=*/true);  // the half-close flushes the decoder
    }
  }

  void HalfClosedLocked() override {
    if (!this->configured_) {
      this->FinishLocked(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the stream ended before its `config` message"));
      return;
    }
    close_time_ = ServiceClock::now();
    if (!decoded_.ready) return;  // released meanwhile
    if (!decoded_.status.ok()) {
      this->FinishLocked(ToGrpc(decoded_.status));
      return;
    }
    PushSamplesLocked(decoded_.samples);
    if (this->finished_) return;
    absl::Status st = session_->Close();
    if (!st.ok()) this->FinishLocked(ToGrpc(st));
  }

  bool InputFullLocked() const override {
    if (this->OutputBacklogLocked()) return true;
    if (session_ == nullptr) return false;
    const int64_t ahead = leading_samples() + session_->samples_pushed() -
                          session_->frames_done() * static_cast<int64_t>(frame_size());
    return static_cast<double>(ahead) / sample_rate() > this->loop_->options().max_ahead_seconds;
  }

  void ReleaseLocked() override {
    session_.reset();  // frees the batch slot now
    input_.reset();
  }

  std::unique_ptr<Session> session_;
  std::shared_ptr<AudioInput> input_;  // shared with a decode in flight outside mu_ (PrepareRead)
  DecodedChunk decoded_;               // the request being handled, decoded
  int64_t samples_in_ = 0;
  std::deque<std::pair<int64_t, ServiceClock::time_point>> arrivals_;  // (samples received so far, when)
  ServiceClock::time_point close_time_;

 private:
  void PushSamplesLocked(const std::vector<float>& samples) {
    if (samples.empty()) return;
    const double max_seconds = this->loop_->options().max_stream_seconds;
    if (static_cast<double>(samples_in_ + static_cast<int64_t>(samples.size())) / sample_rate() > max_seconds) {
      this->FinishLocked(grpc::Status(
          grpc::StatusCode::OUT_OF_RANGE,
          absl::StrCat("the stream exceeded the maximum duration of ", max_seconds, " s of audio")));
      return;
    }
    absl::Status st = session_->PushAudio(samples);
    if (!st.ok()) {
      this->FinishLocked(ToGrpc(st));
      return;
    }
    samples_in_ += static_cast<int64_t>(samples.size());
    arrivals_.emplace_back(samples_in_, ServiceClock::now());
    const int64_t horizon = ArrivalHorizonLocked();
    while (arrivals_.size() > 1 && arrivals_.front().first < horizon) arrivals_.pop_front();
    this->loop_->metrics().AddAudioSeconds(static_cast<double>(samples.size()) / sample_rate());
  }
};

}  // namespace monologue
