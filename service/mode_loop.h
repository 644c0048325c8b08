// One mode's scheduler in the server: the thread that owns the mode's engine and runs one batched model step
// per frame whenever any stream has work, the set of live streams it pumps after each step, the mode's
// metrics, and the drain flag. The same class serves Transcription, Synthesis and Dialogue; a mode brings
// its engine's Step (as a function) and its stream reactors (LiveStream).
//
// Locking: streams_mu_ (the set of live streams) is taken before a stream's own mutex, never after.
//
// Waking: the loop sleeps in its engine's own WaitForWork (the slot table's work-pending signal, which pushes,
// closes and new sessions raise), and Notify raises the same signal (ModeEngine::wake): one mechanism, so
// that the engine's step clearing the signal and the server's wake-ups cannot miss each other.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "service/metrics.h"
#include "service/server.h"

namespace monologue {

using ServiceClock = std::chrono::steady_clock;

// What the scheduler needs of a stream.
class LiveStream {
 public:
  virtual ~LiveStream() = default;
  // After each model step (scheduler thread, under the loop's streams_mu_): forward events, resume reads,
  // enforce timeouts.
  virtual void Pump(ServiceClock::time_point now) = 0;
  // Ends the stream with `status` if it is still live; true when it was.
  virtual bool Abort(const grpc::Status& status) = 0;
};

struct ModeEngine {
  std::function<absl::StatusOr<int>()> step;  // one batched step; how many slots advanced
  std::function<double()> step_seconds;       // total time spent in steps
  // The engine's WaitForWork (up to the timeout; true when work is pending) and Wake (raises the same
  // signal from any thread). A step clears the signal as it starts, so a wake after that is never lost.
  std::function<bool(std::chrono::milliseconds)> wait_for_work;
  std::function<void()> wake;
  double frame_seconds = 0.08;
};

// The ModeEngine of an engine with Step, step_seconds, WaitForWork and Wake (AsrEngine, TtsEngine,
// DialogueEngine), one frame lasting `frame_seconds`.
template <typename Engine>
ModeEngine BindModeEngine(Engine* e, double frame_seconds) {
  return ModeEngine{[e] { return e->Step(); }, [e] { return e->step_seconds(); },
                    [e](std::chrono::milliseconds timeout) { return e->WaitForWork(timeout); },
                    [e] { e->Wake(); }, frame_seconds};
}

class ModeLoop {
 public:
  ModeLoop(std::string name, const ServerOptions& options, int slots, std::string metrics_prefix,
           std::string metrics_noun, ModeEngine engine);
  ~ModeLoop();

  const std::string& name() const { return name_; }  // the gRPC service, e.g. "monologue.v1.Synthesis"
  const ServerOptions& options() const { return options_; }
  int slots() const { return slots_; }
  ServiceMetrics& metrics() { return metrics_; }
  double frame_seconds() const { return engine_.frame_seconds; }

  void Start();
  void Stop();
  // Wakes the scheduler (new input, a close, a new stream, a write finished): the engine's wake.
  void Notify();

  void Register(LiveStream* s);
  void Unregister(LiveStream* s);
  // Waits until no stream is live or the deadline passes; true when none is left.
  bool WaitNoStreams(ServiceClock::time_point deadline);
  int AbortAll(const grpc::Status& status);

  std::atomic<bool> draining{false};

 private:
  void Loop();
  void PumpAll();

  std::string name_;
  ServerOptions options_;
  int slots_;
  ServiceMetrics metrics_;
  ModeEngine engine_;

  std::mutex streams_mu_;
  std::condition_variable streams_cv_;
  std::set<LiveStream*> streams_;

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

grpc::Status ToGrpc(const absl::Status& st);
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace monologue
