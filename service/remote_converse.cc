#include "service/remote_converse.h"

#include <grpcpp/grpcpp.h>

#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "monologue/v1/dialogue.grpc.pb.h"
#include "service/remote_status.h"

namespace monologue {

namespace v1 = ::monologue::v1;

absl::StatusOr<RemoteConversation> RemoteConverse(const RemoteConverseOptions& options,
                                                  std::span<const float> input, RemoteConversation* partial) {
  auto channel = grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials());
  auto stub = v1::Dialogue::NewStub(channel);
  grpc::ClientContext ctx;
  if (options.timeout_seconds > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(options.timeout_seconds * 1000)));
  }
  auto stream = stub->Converse(&ctx);
  std::thread writer([&] {
    v1::ConverseRequest config;
    v1::ConverseConfig* c = config.mutable_config();
    c->mutable_input_format()->set_encoding(v1::FLOAT32_LE);
    c->mutable_input_format()->set_sample_rate_hz(24000);
    c->set_output_encoding(v1::FLOAT32_LE);
    if (options.seed.has_value()) c->set_seed(*options.seed);
    c->set_request_id(options.request_id);
    if (!stream->Write(config)) return;
    const auto start = std::chrono::steady_clock::now();
    constexpr size_t kChunk = 1920;  // 80 ms
    for (size_t pos = 0; pos < input.size(); pos += kChunk) {
      if (options.speed > 0) {
        const double due = static_cast<double>(pos) / 24000.0 / options.speed;
        std::this_thread::sleep_until(start + std::chrono::microseconds(static_cast<int64_t>(due * 1e6)));
      }
      const size_t n = std::min(kChunk, input.size() - pos);
      v1::ConverseRequest r;
      r.set_audio(std::string(reinterpret_cast<const char*>(input.data() + pos), n * sizeof(float)));
      if (!stream->Write(r)) return;
    }
    stream->WritesDone();
  });
  RemoteConversation result;
  v1::ConverseResponse response;
  while (stream->Read(&response)) {
    switch (response.event_case()) {
      case v1::ConverseResponse::kStarted:
        result.model = response.started().model();
        break;
      case v1::ConverseResponse::kAudio: {
        const std::string& d = response.audio().data();
        const size_t at = result.audio.size();
        result.audio.resize(at + d.size() / sizeof(float));
        std::memcpy(result.audio.data() + at, d.data(), d.size() / sizeof(float) * sizeof(float));
        break;
      }
      case v1::ConverseResponse::kText:
        result.pieces.push_back({response.text().text(), response.text().audio_seconds()});
        break;
      case v1::ConverseResponse::kEnd:
        result.frames = response.end().frames();
        break;
      default:
        break;
    }
  }
  writer.join();
  grpc::Status status = stream->Finish();
  if (!status.ok()) {
    if (partial != nullptr) *partial = std::move(result);
    return RemoteStatus(status, options.server, "dialogue (monologue.v1.Dialogue)", "--dialogue");
  }
  return result;
}

}  // namespace monologue
