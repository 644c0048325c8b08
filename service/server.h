// The monologue gRPC server: one process hosting any subset of the three modes, each on its own engine,
// batch slots and scheduler thread (service/mode_loop.h):
//   monologue.v1.Transcription  (speech recognition, DSM STT) service/proto/monologue/v1/transcription.proto
//   monologue.v1.Synthesis      (speech synthesis, DSM TTS)       .../synthesis.proto
//   monologue.v1.Dialogue       (full-duplex dialogue, Moshi)     .../dialogue.proto
// plus grpc.health.v1 (overall and per service name), server reflection, Prometheus metrics per mode.
// Torch-free and gRPC-free header (the CLI, which sees torch's include path, includes it).
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace monologue {

struct ServerOptions {
  // Model directories (HF snapshot layout); empty = mode not served. At least one is required.
  std::string model_dir;                   // speech recognition (STT)
  std::string tts_model_dir;               // speech synthesis (TTS)
  std::string dialogue_model_dir;          // full-duplex dialogue (Moshi)
  std::string listen = "127.0.0.1:50051";  // gRPC address; port 0 = any free port (see port())
  std::string metrics_listen;              // Prometheus /metrics address ("" = none)
  int max_streams = 8;                     // STT batch slots = concurrent transcription streams
  int max_tts_streams = 8;                 // TTS batch slots
  int max_dialogue_streams = 4;            // dialogue batch slots
  std::string voices_dir;  // TTS voices (a kyutai/tts-voices-like tree; "" = that repo in the HF cache)
  std::string default_voice = "expresso/ex03-ex01_happy_001_channel1_334s.wav";
  double tts_temp = 0.6;      // TTS sampling temperature unless a stream sets its own
  double tts_cfg_coef = 2.0;  // TTS cfg (condition value of distilled models, real CFG otherwise)
  // A synthesis stream ends after this many model steps even with text left (its end says `truncated`).
  int tts_max_steps = 30000;
  std::string device = "cpu";
  std::string dtype;                  // "" = the engine's default for the device
  int threads = 0;                    // > 0: libtorch CPU threads
  int max_message_bytes = 64 * 1024;  // largest request message accepted
  double max_ahead_seconds = 2.0;     // audio a stream may send ahead of the model before reads pause
  int max_pending_responses = 1024;   // per-stream output queue bound (slow readers fail beyond it)
  double idle_timeout_seconds = 30;   // no request for this long -> OUT_OF_RANGE
  double max_stream_seconds = 3600;   // audio per stream -> OUT_OF_RANGE beyond
  double keepalive_seconds = 30;      // HTTP/2 keepalive pings
  // `--http`: the HTTP/WebSocket listener of Kyutai's client protocols (service/http, docs/websocket.md);
  // "" = none. Same engines, slots and limits as gRPC.
  std::string http_listen;
  std::string api_key;   // required on the WebSocket endpoints when set (kyutai-api-key header / auth_id)
  std::string web_root;  // the web page's files from this folder ("" = the copy embedded in the binary)
  int http_max_message_bytes = 1 << 20;  // largest WebSocket message accepted (1 s of f32 PCM is ~120 KB)
};

class MonologueServer {
 public:
  // Loads the models, starts one scheduler per mode, the gRPC server and the metrics side port.
  static absl::StatusOr<std::unique_ptr<MonologueServer>> Start(const ServerOptions& options);
  ~MonologueServer();  // Shutdown(0) if still running
  MonologueServer(const MonologueServer&) = delete;
  MonologueServer& operator=(const MonologueServer&) = delete;

  int port() const;          // the bound gRPC port
  int metrics_port() const;  // 0 when no metrics port
  int http_port() const;     // 0 when no --http listener
  // One line per served mode: service name, model, device, slots.
  std::string model_description() const;

  // Graceful stop: health turns NOT_SERVING and new streams are refused with UNAVAILABLE; live streams
  // may finish for up to `drain_seconds`; those still running then end with UNAVAILABLE; the server stops.
  // Returns how many streams had to be cut. Idempotent.
  int Shutdown(double drain_seconds);

 private:
  struct Impl;
  explicit MonologueServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace monologue
