// One mode's scheduler in the server: the thread that owns the mode's engine and runs one batched model step
// per frame whenever any stream has work, the set of live streams it pumps after each step, the mode's
// metrics, and the drain flag. The same class serves Transcription, Synthesis and Dialogue; a mode brings
// its engine's Step (as a function) and its stream reactors (LiveStream).
//
// Locking: streams_mu_ (the set of live streams) is taken before a stream's own mutex, never after.
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
  double frame_seconds = 0.08;
};

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
  // Wakes the scheduler (new input, a close, a new stream, a write finished).
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

  std::mutex work_mu_;
  std::condition_variable work_cv_;
  bool work_pending_ = false;
  bool stop_ = false;
  std::thread thread_;
};

grpc::Status ToGrpc(const absl::Status& st);
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace monologue
