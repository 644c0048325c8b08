#include "service/mode_loop.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace monologue {

const char* GrpcCodeName(grpc::StatusCode code) {
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

ModeLoop::ModeLoop(std::string name, const ServerOptions& options, int slots, std::string metrics_prefix,
                   std::string metrics_noun, ModeEngine engine)
    : name_(std::move(name)),
      options_(options),
      slots_(slots),
      metrics_(slots, std::move(metrics_prefix), std::move(metrics_noun)),
      engine_(std::move(engine)) {}

ModeLoop::~ModeLoop() { Stop(); }

void ModeLoop::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void ModeLoop::Stop() {
  stop_ = true;
  if (!thread_.joinable()) return;  // never started, or stopped already (the engine is not touched again)
  engine_.wake();  // after stop_: a loop past its stop_ check finds the work signal raised and looks again
  thread_.join();
}

void ModeLoop::Notify() { engine_.wake(); }

void ModeLoop::Register(LiveStream* s) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  streams_.insert(s);
}

void ModeLoop::Unregister(LiveStream* s) {
  {
    std::lock_guard<std::mutex> lock(streams_mu_);
    streams_.erase(s);
  }
  streams_cv_.notify_all();
}

bool ModeLoop::WaitNoStreams(ServiceClock::time_point deadline) {
  std::unique_lock<std::mutex> lock(streams_mu_);
  return streams_cv_.wait_until(lock, deadline, [&] { return streams_.empty(); });
}

int ModeLoop::AbortAll(const grpc::Status& status) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  int n = 0;
  for (LiveStream* s : streams_) n += s->Abort(status) ? 1 : 0;
  return n;
}

void ModeLoop::PumpAll() {
  const auto now = ServiceClock::now();
  std::lock_guard<std::mutex> lock(streams_mu_);
  for (LiveStream* s : streams_) s->Pump(now);
}

void ModeLoop::Loop() {
  double seconds_before = engine_.step_seconds();
  while (!stop_) {
    // The step clears the engine's work signal as it starts (under the slot table's lock): a Notify from
    // then on keeps the wait below from sleeping, and one before it is seen by this step and PumpAll.
    absl::StatusOr<int> advanced = engine_.step();
    if (!advanced.ok()) {
      std::fprintf(stderr, "monologue serve: %s: model step failed: %s\n", name_.c_str(),
                   advanced.status().ToString().c_str());
      AbortAll(grpc::Status(grpc::StatusCode::INTERNAL,
                            absl::StrCat("model step failed: ", advanced.status().message())));
      advanced = 0;
    }
    if (*advanced > 0) {
      const double seconds_now = engine_.step_seconds();
      metrics_.RecordStep(*advanced, seconds_now - seconds_before, engine_.frame_seconds);
      seconds_before = seconds_now;
    }
    PumpAll();
    // Stop sets stop_ before its wake: either this sees it, or the wake comes after the step's clear and the
    // wait returns at once.
    if (*advanced == 0 && !stop_) engine_.wait_for_work(std::chrono::milliseconds(50));
  }
}

}  // namespace monologue
