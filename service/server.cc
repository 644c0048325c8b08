// Start-up and shutdown of the server: the engines of the served modes, one ModeLoop each, the gRPC services
// (Transcription, Synthesis with ListVoices, Dialogue), health, reflection, keepalive, message limits and the
// metrics side port. The streams themselves live in service/*_stream.cc.
#include "service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "asr/asr_engine.h"
#include "dialogue/dialogue_engine.h"
#include "service/http/http_listener.h"
#include "service/listen_probe.h"
#include "service/mode_loop.h"
#include "service/mode_streams.h"
#include "tts/tts_engine.h"

namespace monologue {

namespace {

namespace v1 = ::monologue::v1;
constexpr const char* kTranscription = "monologue.v1.Transcription";
constexpr const char* kSynthesis = "monologue.v1.Synthesis";
constexpr const char* kDialogue = "monologue.v1.Dialogue";

class TranscriptionService final : public v1::Transcription::CallbackService {
 public:
  TranscriptionService(ModeLoop* loop, AsrEngine* engine) : loop_(loop), engine_(engine) {}
  grpc::ServerBidiReactor<v1::TranscribeRequest, v1::TranscribeResponse>* Transcribe(
      grpc::CallbackServerContext* context) override {
    return NewTranscribeStream(loop_, context, engine_);
  }

 private:
  ModeLoop* loop_;
  AsrEngine* engine_;
};

class SynthesisService final : public v1::Synthesis::CallbackService {
 public:
  SynthesisService(ModeLoop* loop, TtsEngine* engine, SynthesisDefaults defaults)
      : loop_(loop), engine_(engine), defaults_(std::move(defaults)) {}
  grpc::ServerBidiReactor<v1::SynthesizeRequest, v1::SynthesizeResponse>* Synthesize(
      grpc::CallbackServerContext* context) override {
    return NewSynthesizeStream(loop_, context, engine_, &defaults_);
  }
  grpc::ServerUnaryReactor* ListVoices(grpc::CallbackServerContext* context, const v1::ListVoicesRequest*,
                                       v1::ListVoicesResponse* response) override {
    for (const std::string& name :
         ::monologue::ListVoices(defaults_.voices_dir, engine_->info().voice_suffix)) {
      response->add_voices(name);
    }
    response->set_default_voice(defaults_.default_voice);
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  ModeLoop* loop_;
  TtsEngine* engine_;
  SynthesisDefaults defaults_;
};

class DialogueService final : public v1::Dialogue::CallbackService {
 public:
  DialogueService(ModeLoop* loop, DialogueEngine* engine) : loop_(loop), engine_(engine) {}
  grpc::ServerBidiReactor<v1::ConverseRequest, v1::ConverseResponse>* Converse(
      grpc::CallbackServerContext* context) override {
    return NewConverseStream(loop_, context, engine_);
  }

 private:
  ModeLoop* loop_;
  DialogueEngine* engine_;
};

}  // namespace

struct MonologueServer::Impl {
  ServerOptions options;
  std::unique_ptr<AsrEngine> asr;
  std::unique_ptr<TtsEngine> tts;
  std::unique_ptr<DialogueEngine> dialogue;
  std::vector<std::unique_ptr<ModeLoop>> loops;
  std::vector<std::unique_ptr<grpc::Service>> services;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<MetricsHttpServer> metrics_http;
  std::unique_ptr<HttpListener> http;
  HttpModes http_modes;
  SynthesisDefaults tts_defaults;
  std::vector<std::string> descriptions;
  int port = 0;
  std::mutex shutdown_mu;
  bool shut_down = false;
};

MonologueServer::MonologueServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MonologueServer::~MonologueServer() { Shutdown(0); }

absl::StatusOr<std::unique_ptr<MonologueServer>> MonologueServer::Start(const ServerOptions& options) {
  if (options.model_dir.empty() && options.tts_model_dir.empty() && options.dialogue_model_dir.empty()) {
    return absl::InvalidArgumentError("no model to serve: give --stt, --tts and/or --dialogue (or --model)");
  }
  for (auto [n, flag] : {std::pair{options.max_streams, "--max-streams"},
                         std::pair{options.max_tts_streams, "--max-tts-streams"},
                         std::pair{options.max_dialogue_streams, "--max-dialogue-streams"}}) {
    if (n < 1 || n > 1024)
      return absl::InvalidArgumentError(absl::StrCat(flag, " must be in 1..1024 (got ", n, ")"));
  }
  if (options.max_message_bytes < 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-message-bytes must be >= 1024 (got ", options.max_message_bytes, ")"));
  }
  // Every address is checked before the models load (minutes for a 7B one).
  if (absl::Status st = CheckCanListen(options.listen, "--listen"); !st.ok()) return st;
  if (!options.http_listen.empty()) {
    if (absl::Status st = CheckCanListen(options.http_listen, "--http"); !st.ok()) return st;
  }
  if (!options.metrics_listen.empty()) {
    if (absl::Status st = CheckCanListen(options.metrics_listen, "--metrics-listen"); !st.ok()) return st;
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  grpc::ServerBuilder builder;

  if (!options.model_dir.empty()) {
    AsrEngineOptions o;
    o.batch_size = options.max_streams;
    o.device = options.device;
    o.dtype = options.dtype;
    o.threads = options.threads;
    auto engine = AsrEngine::Load(options.model_dir, o);
    if (!engine.ok())
      return absl::Status(engine.status().code(), absl::StrCat("--stt: ", engine.status().message()));
    impl->asr = std::move(*engine);
    AsrEngine* e = impl->asr.get();
    const AsrModelInfo& info = e->info();
    ModeEngine me = BindModeEngine(e, static_cast<double>(info.frame_size) / info.sample_rate);
    impl->loops.push_back(std::make_unique<ModeLoop>(kTranscription, options, options.max_streams,
                                                     "monologue_", "Transcription", std::move(me)));
    impl->http_modes.asr_loop = impl->loops.back().get();
    impl->http_modes.asr = e;
    impl->services.push_back(std::make_unique<TranscriptionService>(impl->loops.back().get(), e));
    impl->descriptions.push_back(absl::StrCat(
        kTranscription, ": ", info.model_dir, " (", info.device, ", ", info.dtype, ", ", options.max_streams,
        " slots, delay ", info.audio_delay_seconds, " s", info.num_vad_heads > 0 ? ", VAD" : "", ")"));
  }
  if (!options.tts_model_dir.empty()) {
    TtsEngineOptions o;
    o.batch_size = options.max_tts_streams;
    o.device = options.device;
    o.dtype = options.dtype;
    o.threads = options.threads;
    o.temp = options.tts_temp;
    o.cfg_coef = options.tts_cfg_coef;
    o.max_steps = options.tts_max_steps;
    auto engine = TtsEngine::Load(options.tts_model_dir, o);
    if (!engine.ok())
      return absl::Status(engine.status().code(), absl::StrCat("--tts: ", engine.status().message()));
    impl->tts = std::move(*engine);
    TtsEngine* e = impl->tts.get();
    const TtsModelInfo& info = e->info();
    // A server that cannot serve its default stream fails at start, not per stream: the default voice must
    // exist and fit the model, and a stream with the server's defaults (voice, --tts-cfg-coef) must open.
    TtsSessionOptions probe;
    if (!options.default_voice.empty()) {
      auto voice = ResolveVoice(options.default_voice, options.voices_dir, info.voice_suffix);
      if (!voice.ok())
        return absl::Status(voice.status().code(),
                            absl::StrCat("--default-voice: ", voice.status().message()));
      probe.voices.push_back(*voice);
    }
    if (auto session = e->OpenSession(probe); !session.ok()) {
      return absl::Status(
          session.status().code(),
          absl::StrCat("--default-voice ", options.default_voice, " / --tts-cfg-coef ", options.tts_cfg_coef,
                       ": a stream with the server's defaults cannot open: ", session.status().message()));
    }
    ModeEngine me = BindModeEngine(e, static_cast<double>(info.frame_size) / info.sample_rate);
    impl->loops.push_back(std::make_unique<ModeLoop>(kSynthesis, options, options.max_tts_streams,
                                                     "monologue_synthesis_", "Synthesis", std::move(me)));
    impl->tts_defaults = SynthesisDefaults{options.voices_dir, options.default_voice};
    impl->http_modes.tts_loop = impl->loops.back().get();
    impl->http_modes.tts = e;
    impl->http_modes.tts_defaults = &impl->tts_defaults;
    impl->services.push_back(std::make_unique<SynthesisService>(
        impl->loops.back().get(), e, SynthesisDefaults{options.voices_dir, options.default_voice}));
    impl->descriptions.push_back(absl::StrCat(
        kSynthesis, ": ", info.model_dir, " (", info.device, ", ", info.dtype, ", ", options.max_tts_streams,
        " slots, ", info.num_codebooks, " codebooks, default voice ", options.default_voice, ")"));
  }
  if (!options.dialogue_model_dir.empty()) {
    DialogueEngineOptions o;
    o.batch_size = options.max_dialogue_streams;
    o.device = options.device;
    o.dtype = options.dtype;
    o.threads = options.threads;
    auto engine = DialogueEngine::Load(options.dialogue_model_dir, o);
    if (!engine.ok()) {
      return absl::Status(engine.status().code(), absl::StrCat("--dialogue: ", engine.status().message()));
    }
    impl->dialogue = std::move(*engine);
    DialogueEngine* e = impl->dialogue.get();
    const DialogueModelInfo& info = e->info();
    ModeEngine me = BindModeEngine(e, static_cast<double>(info.frame_size) / info.sample_rate);
    impl->loops.push_back(std::make_unique<ModeLoop>(kDialogue, options, options.max_dialogue_streams,
                                                     "monologue_dialogue_", "Dialogue", std::move(me)));
    impl->http_modes.chat_loop = impl->loops.back().get();
    impl->http_modes.dialogue = e;
    impl->services.push_back(std::make_unique<DialogueService>(impl->loops.back().get(), e));
    impl->descriptions.push_back(absl::StrCat(kDialogue, ": ", info.model_dir, " (", info.device, ", ",
                                              info.dtype, ", ", options.max_dialogue_streams, " slots)"));
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &impl->port);
  for (auto& service : impl->services) builder.RegisterService(service.get());
  // A request carries at most one audio or text chunk: the limit keeps one message from holding much memory.
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(4 * 1024 * 1024);
  const int keepalive_ms = static_cast<int>(options.keepalive_seconds * 1000);
  // A port another process listens on is refused: with gRPC's default SO_REUSEPORT a second `serve` on the
  // same port started and the kernel split the clients between two servers (of different modes, even).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_ms);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    return absl::UnavailableError(
        absl::StrCat("--listen ", options.listen, ": cannot listen there (address in use or not local?)"));
  }
  if (!options.metrics_listen.empty()) {
    std::vector<const ServiceMetrics*> metrics;
    for (auto& loop : impl->loops) metrics.push_back(&loop->metrics());
    auto http = MetricsHttpServer::Start(options.metrics_listen, std::move(metrics));
    if (!http.ok()) {
      impl->server->Shutdown(std::chrono::system_clock::now());
      return http.status();
    }
    impl->metrics_http = std::move(*http);
  }
  if (!options.http_listen.empty()) {
    HttpListenerOptions ho;
    ho.address = options.http_listen;
    ho.api_key = options.api_key;
    ho.web_root = options.web_root;
    auto http = HttpListener::Start(ho, impl->http_modes);
    if (!http.ok()) {
      impl->server->Shutdown(std::chrono::system_clock::now());
      return http.status();
    }
    impl->http = std::move(*http);
  }
  for (auto& loop : impl->loops) loop->Start();
  if (grpc::HealthCheckServiceInterface* health = impl->server->GetHealthCheckService()) {
    health->SetServingStatus(true);
    for (auto& loop : impl->loops) health->SetServingStatus(loop->name(), true);
  }
  return std::unique_ptr<MonologueServer>(new MonologueServer(std::move(impl)));
}

int MonologueServer::port() const { return impl_->port; }
int MonologueServer::metrics_port() const { return impl_->metrics_http ? impl_->metrics_http->port() : 0; }
int MonologueServer::http_port() const { return impl_->http ? impl_->http->port() : 0; }

std::string MonologueServer::model_description() const {
  std::string out;
  for (const std::string& d : impl_->descriptions) absl::StrAppend(&out, out.empty() ? "" : "\n", d);
  return out;
}

int MonologueServer::Shutdown(double drain_seconds) {
  std::lock_guard<std::mutex> lock(impl_->shutdown_mu);
  if (impl_->shut_down) return 0;
  impl_->shut_down = true;
  for (auto& loop : impl_->loops) loop->draining = true;
  if (grpc::HealthCheckServiceInterface* health = impl_->server->GetHealthCheckService()) {
    health->SetServingStatus(false);  // Watchers and Check see NOT_SERVING during the drain
  }
  const auto deadline = ServiceClock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(std::max(0.0, drain_seconds) * 1000));
  int cut = 0;
  for (auto& loop : impl_->loops) {
    if (!loop->WaitNoStreams(deadline)) {
      cut += loop->AbortAll(
          grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       absl::StrCat("the server is shutting down: the stream did not finish within the ",
                                    drain_seconds, " s drain period; reconnect to another replica")));
      loop->WaitNoStreams(ServiceClock::now() + std::chrono::seconds(5));
    }
  }
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  impl_->server->Wait();
  if (impl_->http) impl_->http->Stop();
  for (auto& loop : impl_->loops) loop->Stop();
  impl_->metrics_http.reset();
  return cut;
}

}  // namespace monologue
