// `serve --http ADDR`: the HTTP/WebSocket listener beside the gRPC server (Boost.Beast). It routes
//   GET /api/asr-streaming, /api/tts_streaming, /api/chat (WebSocket upgrades) to the endpoints of
//       service/http/ws_endpoints.h, on the same ModeLoops (engines, slots, limits, drain, metrics) as gRPC;
//   GET /... any other path to the web page's static files (embedded, or from `web_root`).
// With an API key, the WebSocket endpoints require it where Kyutai's clients send it: the `kyutai-api-key`
// header, else the `auth_id` query parameter (rust/moshi-server/src/main.rs); HTTP 401 before the upgrade.
// Beast-free header.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "service/mode_loop.h"
#include "service/mode_streams.h"

namespace monologue {

class AsrEngine;
class TtsEngine;
class DialogueEngine;

// The served modes (null loop = not served).
struct HttpModes {
  ModeLoop* asr_loop = nullptr;
  AsrEngine* asr = nullptr;
  ModeLoop* tts_loop = nullptr;
  TtsEngine* tts = nullptr;
  const SynthesisDefaults* tts_defaults = nullptr;
  ModeLoop* chat_loop = nullptr;
  DialogueEngine* dialogue = nullptr;
};

struct HttpListenerOptions {
  std::string address;   // "127.0.0.1:8080"; port 0 = any free port (see port())
  std::string api_key;   // "" = no key required
  std::string web_root;  // "" = the embedded web page
  int threads = 2;       // I/O threads (the model work runs on the mode loops' threads)
};

class HttpListener {
 public:
  // Binds and starts accepting. UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpListener>> Start(const HttpListenerOptions& options,
                                                             const HttpModes& modes);
  ~HttpListener();  // Stop()
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  int port() const;
  // Stops accepting and ends the I/O threads (connections still open are dropped). Idempotent.
  void Stop();

  struct Impl;  // (public for the connection classes in the .cc)

 private:
  explicit HttpListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace monologue
