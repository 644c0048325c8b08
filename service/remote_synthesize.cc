#include "service/remote_synthesize.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "monologue/v1/synthesis.grpc.pb.h"
#include "service/remote_status.h"

namespace monologue {

namespace v1 = ::monologue::v1;

namespace {
absl::Status FromGrpc(const grpc::Status& status, const std::string& server) {
  return RemoteStatus(status, server, "speech synthesis (monologue.v1.Synthesis)", "--tts");
}
}  // namespace

absl::StatusOr<RemoteSynthesis> RemoteSynthesize(
    const RemoteSynthesizeOptions& options, const std::function<std::optional<RemoteTextChunk>()>& next_text,
    const std::function<void(std::span<const float>)>& on_audio,
    const std::function<void(const std::string& text, double start, double end)>& on_word) {
  auto channel = grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials());
  auto stub = v1::Synthesis::NewStub(channel);
  grpc::ClientContext ctx;
  if (options.timeout_seconds > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(options.timeout_seconds * 1000)));
  }
  auto stream = stub->Synthesize(&ctx);
  std::atomic<bool> writer_done{false};
  std::thread writer([&] {
    struct Done {
      std::atomic<bool>& flag;
      ~Done() { flag = true; }
    } done{writer_done};
    v1::SynthesizeRequest config;
    v1::SynthesizeConfig* c = config.mutable_config();
    for (const std::string& v : options.voices) c->add_voices(v);
    c->set_output_encoding(v1::FLOAT32_LE);
    if (options.temperature.has_value()) c->set_temperature(*options.temperature);
    if (options.seed.has_value()) c->set_seed(*options.seed);
    if (options.cfg_coef.has_value()) c->set_cfg_coef(*options.cfg_coef);
    if (options.padding_between.has_value()) c->set_padding_between(*options.padding_between);
    if (options.padding_bonus.has_value()) c->set_padding_bonus(*options.padding_bonus);
    c->set_request_id(options.request_id);
    if (!stream->Write(config)) return;
    while (auto chunk = next_text()) {
      // Large texts go in pieces below the server's message limit (never splitting a UTF-8 sequence).
      size_t pos = 0;
      while (pos < chunk->text.size()) {
        size_t len = std::min<size_t>(chunk->text.size() - pos, 16 * 1024);
        while (pos + len < chunk->text.size() &&
               (static_cast<unsigned char>(chunk->text[pos + len]) >> 6) == 0x2)
          --len;
        v1::SynthesizeRequest r;
        r.set_text(chunk->text.substr(pos, len));
        if (!stream->Write(r)) return;
        pos += len;
      }
      if (chunk->end_turn) {
        v1::SynthesizeRequest r;
        r.set_end_turn(true);
        if (!stream->Write(r)) return;
      }
    }
    stream->WritesDone();
  });
  RemoteSynthesis result;
  v1::SynthesizeResponse response;
  while (stream->Read(&response)) {
    switch (response.event_case()) {
      case v1::SynthesizeResponse::kStarted:
        result.model = response.started().model();
        break;
      case v1::SynthesizeResponse::kAudio: {
        const std::string& data = response.audio().data();
        std::vector<float> samples(data.size() / sizeof(float));
        std::memcpy(samples.data(), data.data(), samples.size() * sizeof(float));
        if (on_audio) on_audio(samples);
        break;
      }
      case v1::SynthesizeResponse::kWord:
        if (on_word)
          on_word(response.word().text(), response.word().start_seconds(), response.word().end_seconds());
        break;
      case v1::SynthesizeResponse::kEnd:
        result.words = response.end().words();
        result.audio_seconds = response.end().audio_seconds();
        result.frames = response.end().frames();
        result.truncated = response.end().truncated();
        break;
      default:
        break;
    }
  }
  // A stream the server ended early may leave the writer waiting on its text source (stdin): give it a moment
  // to notice (its next Write fails), then cancel, which keeps the server's status when it already came.
  for (int i = 0; i < 50 && !writer_done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!writer_done) ctx.TryCancel();
  writer.join();
  grpc::Status status = stream->Finish();
  if (!status.ok()) return FromGrpc(status, options.server);
  return result;
}

absl::StatusOr<std::pair<std::vector<std::string>, std::string>> RemoteListVoices(const std::string& server) {
  auto channel = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
  auto stub = v1::Synthesis::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::ListVoicesResponse response;
  grpc::Status status = stub->ListVoices(&ctx, v1::ListVoicesRequest(), &response);
  if (!status.ok()) return FromGrpc(status, server);
  return std::make_pair(std::vector<std::string>(response.voices().begin(), response.voices().end()),
                        response.default_voice());
}

}  // namespace monologue
