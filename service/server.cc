// gRPC side of the service: the Transcribe reactor (one per stream, callback API), the scheduler thread
// that owns the engine, health, reflection, keepalive and message limits.
//
// Locking: Core::streams_mu_ (the set of live streams) is taken before a stream's mu_, never after.
// gRPC reactions (OnReadDone, ...) take only their stream's mu_; the scheduler takes streams_mu_ and then
// each stream's mu_ in turn. StartRead/StartWrite/Finish never run a reaction inline on the server side.
#include "service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "asr/asr_engine.h"
#include "monologue/v1/transcription.grpc.pb.h"
#include "service/audio_input.h"
#include "service/metrics.h"

namespace monologue {

namespace {

namespace v1 = ::monologue::v1;
using Clock = std::chrono::steady_clock;
constexpr const char* kServiceName = "monologue.v1.Transcription";

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    default:
      return "OTHER";
  }
}

grpc::Status ToGrpc(const absl::Status& st) {
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(st.code())), std::string(st.message()));
}

class TranscribeStream;

// Everything the streams share: the engine, the scheduler thread, the set of live streams, metrics.
class Core {
 public:
  Core(const ServerOptions& options, std::unique_ptr<AsrEngine> engine)
      : options(options), engine(std::move(engine)), metrics(options.max_streams) {
    const AsrModelInfo& info = this->engine->info();
    frame_seconds = static_cast<double>(info.frame_size) / info.sample_rate;
  }

  void StartScheduler() {
    scheduler_ = std::thread([this] { Loop(); });
  }
  void StopScheduler() {
    {
      std::lock_guard<std::mutex> lock(work_mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    if (scheduler_.joinable()) scheduler_.join();
  }

  // Wakes the scheduler (new audio, a close, a new stream, a write finished).
  void Notify() {
    {
      std::lock_guard<std::mutex> lock(work_mu_);
      work_pending_ = true;
    }
    work_cv_.notify_all();
  }

  void Register(TranscribeStream* s) {
    std::lock_guard<std::mutex> lock(streams_mu_);
    streams_.insert(s);
  }
  void Unregister(TranscribeStream* s) {
    {
      std::lock_guard<std::mutex> lock(streams_mu_);
      streams_.erase(s);
    }
    streams_cv_.notify_all();
  }
  // Waits until no stream is live or the deadline passes; true when none is left.
  bool WaitNoStreams(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(streams_mu_);
    return streams_cv_.wait_until(lock, deadline, [&] { return streams_.empty(); });
  }
  int AbortAll(const grpc::Status& status);
  void PumpAll();

  const ServerOptions options;
  std::unique_ptr<AsrEngine> engine;
  ServiceMetrics metrics;
  double frame_seconds = 0.08;
  std::atomic<bool> draining{false};

 private:
  void Loop();

  std::mutex streams_mu_;
  std::condition_variable streams_cv_;
  std::set<TranscribeStream*> streams_;

  std::mutex work_mu_;
  std::condition_variable work_cv_;
  bool work_pending_ = false;
  bool stop_ = false;
  std::thread scheduler_;
};

class TranscribeStream final : public grpc::ServerBidiReactor<v1::TranscribeRequest, v1::TranscribeResponse> {
 public:
  TranscribeStream(Core* core, grpc::CallbackServerContext* ctx) : core_(core), ctx_(ctx) {
    core_->Register(this);
    std::lock_guard<std::mutex> lock(mu_);
    last_request_ = Clock::now();
    if (core_->draining) {
      core_->metrics.Refused("shutting_down");
      FinishLocked(
          grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       "the server is shutting down and accepts no new streams; use another replica"));
      return;
    }
    read_in_flight_ = true;
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      read_in_flight_ = false;
      if (finished_) return;
      if (!ok) {
        HalfClosedLocked();
      } else {
        last_request_ = Clock::now();
        HandleRequestLocked();
        if (!finished_ && !half_closed_) {
          if (InputFullLocked()) {
            read_paused_ = true;
          } else {
            read_in_flight_ = true;
            StartRead(&request_);
          }
        }
      }
    }
    core_->Notify();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      write_in_flight_ = false;
      if (finish_pending_) {
        finish_pending_ = false;
        Finish(pending_status_);
        return;
      }
      if (!ok) {
        // The client is gone (or cancelled): nothing more can be written.
        FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
        return;
      }
      WriteNextLocked();
      ResumeReadLocked();
    }
    core_->Notify();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    // Deadline or client cancel: the slot is freed at once; Finish must still be called.
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
  }

  void OnDone() override {
    core_->Unregister(this);
    delete this;
  }

  // Scheduler thread, under Core::streams_mu_: forwards the session's events, resumes paused reads,
  // enforces the idle timeout.
  void Pump(Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    if (session_ != nullptr) {
      std::vector<AsrEvent> events = session_->PollEvents();
      if (!events.empty()) {
        const AsrModelInfo& info = core_->engine->info();
        const double processed = std::max(
            0.0, static_cast<double>(session_->frames_done() * info.frame_size - info.pad_left_samples) /
                     info.sample_rate);
        for (AsrEvent& e : events) ForwardLocked(e, processed, now);
      }
      if (out_.size() > static_cast<size_t>(core_->options.max_pending_responses)) {
        FinishLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                  absl::StrCat("the client reads its responses too slowly: more than ",
                                               core_->options.max_pending_responses, " are waiting")));
        return;
      }
      WriteNextLocked();
      ResumeReadLocked();
    }
    if (!finished_ && read_in_flight_ && !half_closed_ &&
        std::chrono::duration<double>(now - last_request_).count() > core_->options.idle_timeout_seconds) {
      FinishLocked(grpc::Status(
          grpc::StatusCode::OUT_OF_RANGE,
          absl::StrCat("no request for ", core_->options.idle_timeout_seconds,
                       " s: send audio close to real time, or half-close the stream to end it")));
    }
  }

  // Under Core::streams_mu_. True when the stream was still live.
  bool Abort(const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return false;
    FinishLocked(status);
    return true;
  }

 private:
  void HandleRequestLocked() {
    if (!configured_) {
      if (!request_.has_config()) {
        core_->metrics.Refused("bad_config");
        FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  "the first request of a stream must carry `config` (got audio first)"));
        return;
      }
      ConfigureLocked(request_.config());
      return;
    }
    if (request_.has_config()) {
      FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "`config` may only be sent once, in the first request"));
      return;
    }
    if (request_.audio().empty()) return;  // an empty message is allowed (no-op)
    const std::string& bytes = request_.audio();
    std::vector<float> samples;
    absl::Status st = input_->Push(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), samples);
    if (!st.ok()) {
      FinishLocked(ToGrpc(st));
      return;
    }
    PushSamplesLocked(samples);
  }

  void PushSamplesLocked(const std::vector<float>& samples) {
    if (samples.empty()) return;
    const AsrModelInfo& info = core_->engine->info();
    if (static_cast<double>(samples_in_ + static_cast<int64_t>(samples.size())) / info.sample_rate >
        core_->options.max_stream_seconds) {
      FinishLocked(grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                                absl::StrCat("the stream exceeded the maximum duration of ",
                                             core_->options.max_stream_seconds, " s of audio")));
      return;
    }
    absl::Status st = session_->PushAudio(samples);
    if (!st.ok()) {
      FinishLocked(ToGrpc(st));
      return;
    }
    samples_in_ += static_cast<int64_t>(samples.size());
    arrivals_.emplace_back(samples_in_, Clock::now());
    core_->metrics.audio_seconds =
        core_->metrics.audio_seconds.load() + static_cast<double>(samples.size()) / info.sample_rate;
  }

  void ConfigureLocked(const v1::TranscribeConfig& config) {
    config_ = config;
    AudioInputFormat format;
    const v1::AudioFormat& af = config.audio_format();
    switch (af.encoding()) {
      case v1::LINEAR_PCM_S16LE:
        format.encoding = AudioInputFormat::Encoding::kPcm16;
        break;
      case v1::FLOAT32_LE:
        format.encoding = AudioInputFormat::Encoding::kFloat32;
        break;
      case v1::OGG_OPUS:
        format.encoding = AudioInputFormat::Encoding::kOggOpus;
        break;
      case v1::CONTAINER_AUTO:
        format.encoding = AudioInputFormat::Encoding::kContainerAuto;
        break;
      default:
        core_->metrics.Refused("bad_config");
        FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  "config.audio_format.encoding is required (LINEAR_PCM_S16LE, FLOAT32_LE, "
                                  "OGG_OPUS or CONTAINER_AUTO)"));
        return;
    }
    format.sample_rate = af.sample_rate_hz();
    format.channels = af.channels() == 0 ? 1 : af.channels();
    const AsrModelInfo& info = core_->engine->info();
    auto input = AudioInput::Create(format, "config.audio_format", info.sample_rate);
    if (!input.ok()) {
      core_->metrics.Refused("bad_config");
      FinishLocked(ToGrpc(input.status()));
      return;
    }
    if (config.enable_vad_events() && info.num_vad_heads == 0) {
      core_->metrics.Refused("bad_config");
      FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "config.enable_vad_events: the served model has no VAD heads"));
      return;
    }
    auto session = core_->engine->OpenSession();
    if (!session.ok()) {
      core_->metrics.Refused("no_free_slot");
      FinishLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                absl::StrCat("no free transcription slot: all ", core_->options.max_streams,
                                             " streams of this server are busy; retry later or on another "
                                             "replica")));
      return;
    }
    input_ = std::move(*input);
    session_ = std::move(*session);
    configured_ = true;
    counted_open_ = true;
    core_->metrics.streams_open++;
    core_->metrics.streams_started++;
    v1::TranscribeResponse r;
    v1::StreamStarted* started = r.mutable_started();
    started->set_request_id(config.request_id());
    started->set_model(info.model_dir);
    started->set_sample_rate_hz(info.sample_rate);
    started->set_frame_seconds(core_->frame_seconds);
    started->set_delay_seconds(info.audio_delay_seconds);
    started->set_has_vad(info.num_vad_heads > 0);
    out_.push_back(std::move(r));
    WriteNextLocked();
  }

  void HalfClosedLocked() {
    if (!configured_) {
      FinishLocked(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the stream ended before its `config` message"));
      return;
    }
    half_closed_ = true;
    close_time_ = Clock::now();
    std::vector<float> samples;
    absl::Status st = input_->Finish(samples);
    if (!st.ok()) {
      FinishLocked(ToGrpc(st));
      return;
    }
    PushSamplesLocked(samples);
    if (finished_) return;
    st = session_->Close();
    if (!st.ok()) FinishLocked(ToGrpc(st));
  }

  void ForwardLocked(AsrEvent& e, double processed, Clock::time_point now) {
    v1::TranscribeResponse r;
    r.set_audio_processed_seconds(processed);
    switch (e.kind) {
      case AsrEvent::Kind::kWord: {
        v1::Word* w = r.mutable_word();
        w->set_text(e.word.text);
        w->set_start_seconds(e.word.start_s);
        w->set_end_seconds(e.word.end_s);
        words_++;
        core_->metrics.words++;
        // Latency: from the arrival of the audio that ends the word (or the half-close) to now.
        const int64_t end_sample = static_cast<int64_t>(e.word.end_s * core_->engine->info().sample_rate);
        while (!arrivals_.empty() && arrivals_.front().first < end_sample) arrivals_.pop_front();
        Clock::time_point from = arrivals_.empty() ? close_time_ : arrivals_.front().second;
        if (arrivals_.empty() && !half_closed_) from = now;
        core_->metrics.audio_to_word_seconds.Observe(std::chrono::duration<double>(now - from).count());
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
        r.mutable_end()->set_audio_seconds(static_cast<double>(samples_in_) /
                                           core_->engine->info().sample_rate);
        r.mutable_end()->set_frames(session_->frames_done());
        ended_ = true;
        break;
    }
    out_.push_back(std::move(r));
  }

  void WriteNextLocked() {
    if (finished_ || write_in_flight_) return;
    if (!out_.empty()) {
      writing_ = std::move(out_.front());
      out_.pop_front();
      write_in_flight_ = true;
      StartWrite(&writing_);
      return;
    }
    if (ended_) FinishLocked(grpc::Status::OK);
  }

  bool InputFullLocked() const {
    if (out_.size() > static_cast<size_t>(core_->options.max_pending_responses / 2)) return true;
    if (session_ == nullptr) return false;
    const AsrModelInfo& info = core_->engine->info();
    const int64_t ahead = info.pad_left_samples + session_->samples_pushed() -
                          session_->frames_done() * static_cast<int64_t>(info.frame_size);
    return static_cast<double>(ahead) / info.sample_rate > core_->options.max_ahead_seconds;
  }

  void ResumeReadLocked() {
    if (finished_ || !read_paused_ || InputFullLocked()) return;
    read_paused_ = false;
    read_in_flight_ = true;
    last_request_ = Clock::now();
    StartRead(&request_);
  }

  void FinishLocked(grpc::Status status) {
    if (finished_) return;
    finished_ = true;
    out_.clear();
    session_.reset();  // frees the batch slot now
    input_.reset();
    if (counted_open_) {
      core_->metrics.streams_open--;
      counted_open_ = false;
    }
    core_->metrics.Finished(CodeName(status.error_code()));
    if (write_in_flight_) {
      finish_pending_ = true;
      pending_status_ = std::move(status);
    } else {
      Finish(std::move(status));
    }
  }

  Core* core_;
  grpc::CallbackServerContext* ctx_;
  std::mutex mu_;
  v1::TranscribeRequest request_;
  v1::TranscribeResponse writing_;
  std::deque<v1::TranscribeResponse> out_;
  v1::TranscribeConfig config_;
  std::unique_ptr<AsrSession> session_;
  std::unique_ptr<AudioInput> input_;
  bool read_in_flight_ = false;
  bool read_paused_ = false;
  bool write_in_flight_ = false;
  bool configured_ = false;
  bool half_closed_ = false;
  bool ended_ = false;
  bool finished_ = false;
  bool finish_pending_ = false;
  bool counted_open_ = false;
  grpc::Status pending_status_;
  int words_ = 0;
  int64_t samples_in_ = 0;
  std::deque<std::pair<int64_t, Clock::time_point>> arrivals_;  // (samples received so far, when)
  Clock::time_point last_request_;
  Clock::time_point close_time_;
};

int Core::AbortAll(const grpc::Status& status) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  int n = 0;
  for (TranscribeStream* s : streams_) n += s->Abort(status) ? 1 : 0;
  return n;
}

void Core::PumpAll() {
  const auto now = Clock::now();
  std::lock_guard<std::mutex> lock(streams_mu_);
  for (TranscribeStream* s : streams_) s->Pump(now);
}

void Core::Loop() {
  double seconds_before = engine->step_seconds();
  while (true) {
    {
      std::lock_guard<std::mutex> lock(work_mu_);
      if (stop_) return;
      work_pending_ = false;
    }
    absl::StatusOr<int> advanced = engine->Step();
    if (!advanced.ok()) {
      std::fprintf(stderr, "monologue serve: model step failed: %s\n", advanced.status().ToString().c_str());
      AbortAll(grpc::Status(grpc::StatusCode::INTERNAL,
                            absl::StrCat("model step failed: ", advanced.status().message())));
      advanced = 0;
    }
    if (*advanced > 0) {
      const double seconds_now = engine->step_seconds();
      metrics.RecordStep(*advanced, seconds_now - seconds_before, frame_seconds);
      seconds_before = seconds_now;
    }
    PumpAll();
    if (*advanced == 0) {
      std::unique_lock<std::mutex> lock(work_mu_);
      work_cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return work_pending_ || stop_; });
    }
  }
}

class TranscriptionService final : public v1::Transcription::CallbackService {
 public:
  explicit TranscriptionService(Core* core) : core_(core) {}
  grpc::ServerBidiReactor<v1::TranscribeRequest, v1::TranscribeResponse>* Transcribe(
      grpc::CallbackServerContext* context) override {
    return new TranscribeStream(core_, context);
  }

 private:
  Core* core_;
};

}  // namespace

struct TranscriptionServer::Impl {
  std::unique_ptr<Core> core;
  std::unique_ptr<TranscriptionService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<MetricsHttpServer> metrics_http;
  int port = 0;
  std::mutex shutdown_mu;
  bool shut_down = false;
};

TranscriptionServer::TranscriptionServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TranscriptionServer::~TranscriptionServer() { Shutdown(0); }

absl::StatusOr<std::unique_ptr<TranscriptionServer>> TranscriptionServer::Start(
    const ServerOptions& options) {
  if (options.max_streams < 1 || options.max_streams > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-streams must be in 1..1024 (got ", options.max_streams, ")"));
  }
  if (options.max_message_bytes < 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-message-bytes must be >= 1024 (got ", options.max_message_bytes, ")"));
  }
  {
    std::string host;
    int port = 0;
    if (absl::Status st = SplitHostPort(options.listen, "--listen", host, port); !st.ok()) return st;
  }
  AsrEngineOptions engine_options;
  engine_options.batch_size = options.max_streams;
  engine_options.device = options.device;
  engine_options.dtype = options.dtype;
  auto engine = AsrEngine::Load(options.model_dir, engine_options);
  if (!engine.ok()) return engine.status();

  auto impl = std::make_unique<Impl>();
  impl->core = std::make_unique<Core>(options, std::move(*engine));
  impl->service = std::make_unique<TranscriptionService>(impl->core.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &impl->port);
  builder.RegisterService(impl->service.get());
  // A request carries at most one audio chunk: the limit keeps one message from holding much memory.
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(4 * 1024 * 1024);
  const int keepalive_ms = static_cast<int>(options.keepalive_seconds * 1000);
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
    auto http = MetricsHttpServer::Start(options.metrics_listen, &impl->core->metrics);
    if (!http.ok()) {
      impl->server->Shutdown(std::chrono::system_clock::now());
      return http.status();
    }
    impl->metrics_http = std::move(*http);
  }
  impl->core->StartScheduler();
  grpc::HealthCheckServiceInterface* health = impl->server->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus(true);
    health->SetServingStatus(kServiceName, true);
  }
  return std::unique_ptr<TranscriptionServer>(new TranscriptionServer(std::move(impl)));
}

int TranscriptionServer::port() const { return impl_->port; }
int TranscriptionServer::metrics_port() const {
  return impl_->metrics_http ? impl_->metrics_http->port() : 0;
}

std::string TranscriptionServer::model_description() const {
  const AsrModelInfo& info = impl_->core->engine->info();
  return absl::StrCat(info.model_dir, " (", info.device, ", ", info.dtype, ", ",
                      impl_->core->options.max_streams, " slots, delay ", info.audio_delay_seconds, " s",
                      info.num_vad_heads > 0 ? ", VAD" : "", ")");
}

int TranscriptionServer::Shutdown(double drain_seconds) {
  std::lock_guard<std::mutex> lock(impl_->shutdown_mu);
  if (impl_->shut_down) return 0;
  impl_->shut_down = true;
  Core& core = *impl_->core;
  core.draining = true;
  if (grpc::HealthCheckServiceInterface* health = impl_->server->GetHealthCheckService()) {
    health->SetServingStatus(false);  // Watchers and Check see NOT_SERVING during the drain
  }
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(std::max(0.0, drain_seconds) * 1000));
  int cut = 0;
  if (!core.WaitNoStreams(deadline)) {
    cut = core.AbortAll(
        grpc::Status(grpc::StatusCode::UNAVAILABLE,
                     absl::StrCat("the server is shutting down: the stream did not finish within the ",
                                  drain_seconds, " s drain period; reconnect to another replica")));
    core.WaitNoStreams(Clock::now() + std::chrono::seconds(5));
  }
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  impl_->server->Wait();
  core.StopScheduler();
  impl_->metrics_http.reset();
  return cut;
}

}  // namespace monologue
