// The monologue gRPC server (monologue.v1.Transcription, grpc.health.v1, server reflection) and its
// scheduler: one thread owns the ASR engine and runs one batched model step per 80 ms frame whenever any
// stream has audio; every live stream holds one batch slot. Torch-free and gRPC-free header (the CLI, which
// sees torch's include path, includes it).
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace monologue {

struct ServerOptions {
  std::string model_dir;                   // an STT model directory (HF snapshot layout)
  std::string listen = "127.0.0.1:50051";  // gRPC address; port 0 = any free port (see port())
  std::string metrics_listen;              // Prometheus /metrics address ("" = none)
  int max_streams = 8;                     // batch slots = concurrent streams
  std::string device = "cpu";
  std::string dtype;                  // "" = the engine's default for the device
  int max_message_bytes = 64 * 1024;  // largest request message accepted
  double max_ahead_seconds = 2.0;     // audio a stream may send ahead of the model before reads pause
  int max_pending_responses = 1024;   // per-stream output queue bound (slow readers fail beyond it)
  double idle_timeout_seconds = 30;   // no request for this long -> OUT_OF_RANGE
  double max_stream_seconds = 3600;   // audio per stream -> OUT_OF_RANGE beyond
  double keepalive_seconds = 30;      // HTTP/2 keepalive pings
};

class TranscriptionServer {
 public:
  // Loads the model, starts the scheduler, the gRPC server and the metrics side port.
  static absl::StatusOr<std::unique_ptr<TranscriptionServer>> Start(const ServerOptions& options);
  ~TranscriptionServer();  // Shutdown(0) if still running
  TranscriptionServer(const TranscriptionServer&) = delete;
  TranscriptionServer& operator=(const TranscriptionServer&) = delete;

  int port() const;          // the bound gRPC port
  int metrics_port() const;  // 0 when no metrics port
  std::string model_description() const;

  // Graceful stop: health turns NOT_SERVING and new streams are refused with UNAVAILABLE; live streams
  // may finish for up to `drain_seconds`; those still running then end with UNAVAILABLE; the server stops.
  // Returns how many streams had to be cut. Idempotent.
  int Shutdown(double drain_seconds);

 private:
  struct Impl;
  explicit TranscriptionServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace monologue
