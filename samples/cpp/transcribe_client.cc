// Stream raw 16-bit 24 kHz mono PCM from stdin to `monologue serve`; print each word as it is decided.
//
//   ffmpeg -i talk.mp3 -f s16le -ac 1 -ar 24000 - | monologue_sample_client 127.0.0.1:50051
//
// Built with the project (target monologue_sample_client); the API is
// service/proto/monologue/v1/transcription.proto.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <thread>

#include "monologue/v1/transcription.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s HOST:PORT < audio.s16le (24 kHz mono)\n", argv[0]);
    return 2;
  }
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  auto stub = monologue::v1::Transcription::NewStub(channel);
  grpc::ClientContext context;
  auto stream = stub->Transcribe(&context);

  std::thread sender([&] {
    monologue::v1::TranscribeRequest config;  // first message: the configuration
    auto* format = config.mutable_config()->mutable_audio_format();
    format->set_encoding(monologue::v1::LINEAR_PCM_S16LE);
    format->set_sample_rate_hz(24000);
    if (!stream->Write(config)) return;
    char buffer[3840];  // 80 ms: one model frame
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof(buffer), stdin)) > 0) {
      monologue::v1::TranscribeRequest audio;
      audio.set_audio(buffer, n);
      if (!stream->Write(audio)) return;  // the server ended the stream (see the status below)
    }
    stream->WritesDone();  // end of audio: the server flushes the last words
  });

  monologue::v1::TranscribeResponse response;
  while (stream->Read(&response)) {
    if (response.has_word()) {
      std::printf("%7.2f %7.2f  %s\n", response.word().start_seconds(), response.word().end_seconds(),
                  response.word().text().c_str());
      std::fflush(stdout);
    } else if (response.has_end_of_turn()) {
      std::printf("%7.2f          <end of turn>\n", response.end_of_turn().time_seconds());
    }
  }
  sender.join();
  grpc::Status status = stream->Finish();
  if (!status.ok()) {  // e.g. RESOURCE_EXHAUSTED (no free slot), INVALID_ARGUMENT (bad config or audio)
    std::fprintf(stderr, "error %d: %s\n", static_cast<int>(status.error_code()),
                 status.error_message().c_str());
    return 1;
  }
  return 0;
}
