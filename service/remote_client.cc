#include "service/remote_client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/audio/audio_decoder.h"
#include "monologue/v1/transcription.grpc.pb.h"
#include "service/remote_status.h"

namespace monologue {

namespace v1 = ::monologue::v1;

absl::StatusOr<RemoteTranscript> RemoteTranscribe(const RemoteTranscribeOptions& options,
                                                  const std::function<void(const AsrWord&)>& on_word) {
  auto decoder = AudioDecoder::Open(options.input);
  if (!decoder.ok()) return decoder.status();
  auto channel = grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials());
  auto stub = v1::Transcription::NewStub(channel);
  grpc::ClientContext ctx;
  if (options.timeout_seconds > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(options.timeout_seconds * 1000)));
  }
  auto stream = stub->Transcribe(&ctx);
  absl::Status input_status;
  std::thread writer([&] {
    v1::TranscribeRequest config;
    config.mutable_config()->mutable_audio_format()->set_encoding(v1::FLOAT32_LE);
    config.mutable_config()->mutable_audio_format()->set_sample_rate_hz(24000);
    config.mutable_config()->set_request_id(options.request_id);
    if (!stream->Write(config)) return;
    const auto start = std::chrono::steady_clock::now();
    int64_t sent = 0;
    while (true) {
      auto chunk = (*decoder)->Read(1920);
      if (!chunk.ok()) {
        input_status = chunk.status();
        ctx.TryCancel();
        return;
      }
      if (chunk->empty()) break;
      if (options.speed > 0) {  // pace: this chunk may leave once the audio before it has "played"
        const double due = static_cast<double>(sent) / 24000.0 / options.speed;
        std::this_thread::sleep_until(start + std::chrono::microseconds(static_cast<int64_t>(due * 1e6)));
      }
      v1::TranscribeRequest r;
      r.set_audio(std::string(reinterpret_cast<const char*>(chunk->data()), chunk->size() * sizeof(float)));
      if (!stream->Write(r)) return;
      sent += static_cast<int64_t>(chunk->size());
    }
    stream->WritesDone();
  });
  RemoteTranscript transcript;
  v1::TranscribeResponse response;
  while (stream->Read(&response)) {
    switch (response.event_case()) {
      case v1::TranscribeResponse::kStarted:
        transcript.model = response.started().model();
        break;
      case v1::TranscribeResponse::kWord: {
        AsrWord w;
        w.text = response.word().text();
        w.start_s = response.word().start_seconds();
        w.end_s = response.word().end_seconds();
        if (on_word) on_word(w);
        transcript.words.push_back(std::move(w));
        break;
      }
      case v1::TranscribeResponse::kEndOfTurn:
        transcript.end_of_turn.push_back(response.end_of_turn().time_seconds());
        break;
      case v1::TranscribeResponse::kEnd:
        transcript.audio_seconds = response.end().audio_seconds();
        break;
      default:
        break;
    }
  }
  writer.join();
  grpc::Status status = stream->Finish();
  if (!input_status.ok()) return input_status;
  if (!status.ok()) {
    return RemoteStatus(status, options.server, "speech recognition (monologue.v1.Transcription)", "--stt");
  }
  return transcript;
}

}  // namespace monologue
