#include "service/remote_client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
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
  // Everything the sending thread touches is shared with it: when the server ends the stream while that
  // thread waits for live input (stdin from a microphone), the call returns without waiting for the next
  // bytes, and the thread, once they come, finds the stream finished and stops (it used to hold the client
  // until stdin closed).
  struct Call {
    std::unique_ptr<AudioDecoder> decoder;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::Transcription::Stub> stub;
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<v1::TranscribeRequest, v1::TranscribeResponse>> stream;
    std::mutex mu;
    bool finished = false;      // under mu: no Write after Finish
    absl::Status input_status;  // under mu
    std::atomic<bool> writer_done{false};
  };
  auto call = std::make_shared<Call>();
  call->decoder = std::move(*decoder);
  call->channel = grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials());
  call->stub = v1::Transcription::NewStub(call->channel);
  if (options.timeout_seconds > 0) {
    call->ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(static_cast<int64_t>(options.timeout_seconds * 1000)));
  }
  call->stream = call->stub->Transcribe(&call->ctx);
  const double speed = options.speed;
  const std::string request_id = options.request_id;
  std::thread writer([call, speed, request_id] {
    struct Done {
      Call* c;
      ~Done() { c->writer_done = true; }
    } done{call.get()};
    auto write = [&](const v1::TranscribeRequest& r) {
      std::lock_guard<std::mutex> lock(call->mu);
      return !call->finished && call->stream->Write(r);
    };
    v1::TranscribeRequest config;
    config.mutable_config()->mutable_audio_format()->set_encoding(v1::FLOAT32_LE);
    config.mutable_config()->mutable_audio_format()->set_sample_rate_hz(24000);
    config.mutable_config()->set_request_id(request_id);
    if (!write(config)) return;
    const auto start = std::chrono::steady_clock::now();
    int64_t sent = 0;
    while (true) {
      auto chunk = call->decoder->Read(1920);
      if (!chunk.ok()) {
        std::lock_guard<std::mutex> lock(call->mu);
        call->input_status = chunk.status();
        if (!call->finished) call->ctx.TryCancel();
        return;
      }
      if (chunk->empty()) break;
      if (speed > 0) {  // pace: this chunk may leave once the audio before it has "played"
        const double due = static_cast<double>(sent) / 24000.0 / speed;
        std::this_thread::sleep_until(start + std::chrono::microseconds(static_cast<int64_t>(due * 1e6)));
      }
      v1::TranscribeRequest r;
      r.set_audio(std::string(reinterpret_cast<const char*>(chunk->data()), chunk->size() * sizeof(float)));
      if (!write(r)) return;
      sent += static_cast<int64_t>(chunk->size());
    }
    std::lock_guard<std::mutex> lock(call->mu);
    if (!call->finished) call->stream->WritesDone();
  });
  auto& stream = call->stream;
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
  // The server has ended the stream. The sender has too, or is waiting for input that no longer matters.
  for (int i = 0; i < 20 && !call->writer_done; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  absl::Status input_status;
  grpc::Status status;
  {
    std::lock_guard<std::mutex> lock(call->mu);
    call->finished = true;
    input_status = call->input_status;
    status = stream->Finish();
  }
  if (call->writer_done) {
    writer.join();
  } else {
    writer.detach();  // it holds `call`; it stops at its next read
  }
  if (!input_status.ok()) return input_status;
  if (!status.ok()) {
    return RemoteStatus(status, options.server, "speech recognition (monologue.v1.Transcription)", "--stt");
  }
  return transcript;
}

}  // namespace monologue
