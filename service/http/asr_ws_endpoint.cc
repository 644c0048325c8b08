// /api/asr-streaming: the speech-to-text protocol of Kyutai's Rust moshi-server (rust/moshi-server/src/asr.rs
// and batched_asr.rs; clients: DSM scripts/stt_from_file_rust_server.py and stt_from_mic_rust_server.py,
// Unmute). MessagePack maps tagged by "type":
//   in:  {type: "Audio", pcm: [f32 at 24 kHz, any length]}, {type: "OggOpus", data: Ogg/Opus bytes, any split},
//        {type: "Marker", id: i64}, {type: "Init"} (no-op)
//   out: {type: "Ready"} once the slot is granted, {type: "Word", text, start_time} and
//        {type: "EndWord", stop_time}, {type: "Step", step_idx, prs, buffered_pcm} per model step of a model
//        with VAD heads, {type: "Marker", id} once the audio sent before it has been transcribed,
//        {type: "Error", message} then the close.
// Words and times are the engine's (asr/word_aligner.h: the same as `transcribe` and the gRPC service): a word
// is decided when the next word boundary arrives, so Word is followed at once by its EndWord. A Marker is
// returned when the model has consumed the audio sent before it plus the model's delay; the words of the
// segment still open at that point (the last words before a pause) are sent first as Word messages, their
// EndWord following when the boundary arrives: a client that stops at the Marker, as the DSM script does, has
// every word of its audio.
#include <algorithm>
#include <cmath>
#include <deque>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "asr/asr_engine.h"
#include "service/audio_input.h"
#include "service/http/msgpack_messages.h"
#include "service/http/ogg_opus_stream.h"
#include "service/http/ws_endpoints.h"

namespace monologue {
namespace {

class AsrWsConnection final : public WsConnection {
 public:
  AsrWsConnection(WsSocket ws, ModeLoop* loop, AsrEngine* engine) : WsConnection(std::move(ws), loop), engine_(engine) {}

 private:
  void OpenLocked() override {
    auto session = engine_->OpenSession();
    if (!session.ok()) {
      // The Rust server's words for a full server.
      RefuseLocked("no_free_slot", "no free channels", "RESOURCE_EXHAUSTED");
      return;
    }
    session_ = std::move(*session);
    CountOpenLocked();
    SendLocked(TaggedWriter("Ready", 0).bytes());
  }

  void OnMessageLocked(std::string_view data, bool binary) override {
    if (!binary) return;  // the Rust server ignores text frames
    auto message = TaggedMessage::Parse(data);
    if (!message.ok()) {
      FailLocked(std::string(message.status().message()));
      return;
    }
    const std::string& type = message->type();
    if (type == "Audio") {
      auto pcm = message->Floats("pcm");
      if (!pcm.ok()) {
        FailLocked(std::string(pcm.status().message()));
        return;
      }
      for (size_t i = 0; i < pcm->size(); ++i) {
        if (std::fabs((*pcm)[i]) > kMaxFloatSample) {
          FailLocked(absl::StrCat("Audio message: \"pcm\"[", i, "] is ", (*pcm)[i],
                                  ": samples are in [-1, 1] (16-bit values must be divided by 32768)"));
          return;
        }
      }
      PushLocked(*pcm);
    } else if (type == "Marker") {
      auto id = message->Int("id");
      if (!id.ok()) {
        FailLocked(std::string(id.status().message()));
        return;
      }
      const AsrModelInfo& info = engine_->info();
      const int64_t samples = info.pad_left_samples + session_->samples_pushed();
      const int64_t frames = (samples + info.frame_size - 1) / info.frame_size;
      const int64_t delay_frames = static_cast<int64_t>(std::ceil(info.audio_delay_seconds * info.frame_rate)) + 1;
      markers_.push_back({frames + delay_frames, *id});
    } else if (type == "Init") {
      // The Rust server's internal "new channel" message: the stream is already initialised.
    } else if (type == "OggOpus") {
      auto data = message->Binary("data");
      if (!data.ok()) return FailLocked(std::string(data.status().message()));
      if (decoder_ == nullptr) {
        auto decoder = OggOpusStreamDecoder::Create();
        if (!decoder.ok()) return FailLocked(std::string(decoder.status().message()), "INTERNAL");
        decoder_ = std::move(*decoder);
      }
      auto pcm = decoder_->Decode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data->data()), data->size()));
      if (!pcm.ok()) return FailLocked(absl::StrCat("bad Ogg/Opus audio: ", pcm.status().message()));
      PushLocked(*pcm);
    } else {
      FailLocked(absl::StrCat("unknown message type \"", type, "\" (expected Audio or Marker)"));
    }
  }

  void PushLocked(const std::vector<float>& samples) {
    if (samples.empty()) return;
    const AsrModelInfo& info = engine_->info();
    if (static_cast<double>(session_->samples_pushed() + static_cast<int64_t>(samples.size())) / info.sample_rate >
        loop_->options().max_stream_seconds) {
      FailLocked(absl::StrCat("the stream exceeded the maximum duration of ", loop_->options().max_stream_seconds,
                              " s of audio"),
                 "OUT_OF_RANGE");
      return;
    }
    absl::Status st = session_->PushAudio(samples);
    if (!st.ok()) {
      FailLocked(std::string(st.message()), "INTERNAL");
      return;
    }
    loop_->metrics().AddAudioSeconds(static_cast<double>(samples.size()) / info.sample_rate);
  }

  double Time(int64_t token_index) const {
    const AsrModelInfo& info = engine_->info();
    return std::max(0.0, static_cast<double>(token_index) / info.frame_rate - info.audio_silence_prefix_seconds -
                             info.audio_delay_seconds);
  }

  void PumpLocked(ServiceClock::time_point) override {
    if (session_ == nullptr) return;
    const AsrModelInfo& info = engine_->info();
    for (AsrEvent& e : session_->PollEvents()) {
      switch (e.kind) {
        case AsrEvent::Kind::kText:
          pending_.push_back(std::move(e));
          break;
        case AsrEvent::Kind::kWord:
          pending_.clear();
          if (flushed_) {  // the words of this boundary were sent at a marker: only their ends were missing
            flushed_ = false;
            flushed_step_ = e.step;
          }
          if (e.step != flushed_step_) {
            SendLocked(TaggedWriter("Word", 2).Str("text", e.word.text).F64("start_time", e.word.start_s).bytes());
            loop_->metrics().words++;
          }
          SendLocked(TaggedWriter("EndWord", 1).F64("stop_time", e.word.end_s).bytes());
          break;
        case AsrEvent::Kind::kVad: {
          const int64_t buffered = std::max<int64_t>(
              0, info.pad_left_samples + session_->samples_pushed() - session_->frames_done() * info.frame_size);
          SendLocked(TaggedWriter("Step", 3)
                         .U64("step_idx", static_cast<uint64_t>(e.step))
                         .F32Array("prs", e.vad)
                         .U64("buffered_pcm", static_cast<uint64_t>(buffered))
                         .bytes());
          break;
        }
        case AsrEvent::Kind::kEndOfTurn:
        case AsrEvent::Kind::kEnd:
          break;  // no such message in this protocol (clients read the end of turn from Step's prs)
      }
    }
    while (!markers_.empty() && session_->frames_done() >= markers_.front().frames) {
      FlushPendingLocked();
      SendLocked(TaggedWriter("Marker", 1).I64("id", markers_.front().id).bytes());
      markers_.pop_front();
    }
  }

  // The text of the segment still open (no boundary after it yet), as words starting at its first piece.
  void FlushPendingLocked() {
    if (pending_.empty()) return;
    std::string text;
    for (const AsrEvent& piece : pending_) text += piece.text;
    const double start = Time(pending_.front().step);
    size_t at = 0;
    while (at < text.size()) {
      const size_t begin = text.find_first_not_of(" \t\n", at);
      if (begin == std::string::npos) break;
      const size_t end = std::min(text.find_first_of(" \t\n", begin), text.size());
      SendLocked(TaggedWriter("Word", 2).Str("text", text.substr(begin, end - begin)).F64("start_time", start).bytes());
      loop_->metrics().words++;
      flushed_ = true;
      at = end;
    }
    pending_.clear();
  }

  bool InputFullLocked() const override {
    if (OutputBacklogLocked()) return true;
    if (session_ == nullptr) return false;
    const AsrModelInfo& info = engine_->info();
    const int64_t ahead =
        info.pad_left_samples + session_->samples_pushed() - session_->frames_done() * static_cast<int64_t>(info.frame_size);
    return static_cast<double>(ahead) / info.sample_rate > loop_->options().max_ahead_seconds;
  }

  void ReleaseLocked() override {
    session_.reset();
    decoder_.reset();
  }

  std::string ErrorMessageLocked(const std::string& text) override { return MsgpackError(text); }

  struct Marker {
    int64_t frames;  // returned once the engine has stepped this many frames
    int64_t id;
  };
  AsrEngine* engine_;
  std::unique_ptr<AsrSession> session_;
  std::unique_ptr<OggOpusStreamDecoder> decoder_;  // for OggOpus messages (created on the first)
  std::deque<Marker> markers_;
  std::vector<AsrEvent> pending_;  // text pieces after the last word boundary
  bool flushed_ = false;           // words were sent at a marker; their kWord events are still to come
  int64_t flushed_step_ = -1;      // the step whose kWord events were sent at a marker
};

}  // namespace

std::shared_ptr<WsConnection> NewAsrWsConnection(WsSocket ws, ModeLoop* loop, AsrEngine* engine,
                                                 const QueryParams&) {
  return std::make_shared<AsrWsConnection>(std::move(ws), loop, engine);
}

}  // namespace monologue
