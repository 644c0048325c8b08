// One WebSocket connection of `serve --http` as a LiveStream of a mode's scheduler (service/mode_loop.h): the
// same ModeLoop that steps the gRPC streams of that mode pumps it after every batched model step, so gRPC and
// WebSocket sessions share the engine's batch slots, limits, drain and metrics.
//
// The I/O (Boost.Beast) runs on the listener's threads, serialized per connection by a strand; a protocol
// (asr/tts/chat endpoint) derives from it and supplies what a message means and how its session's events
// become messages. Mechanics shared by the protocols, as BidiStream does them for gRPC:
//   - one read in flight, paused while the protocol says its input is full (TCP flow control then slows the
//     client), resumed by Pump;
//   - one write in flight, the rest queued and bounded (max_pending_responses: a client that does not read
//     ends with the protocol's error);
//   - the protocol's error message, then a WebSocket close, on any failure; the batch slot is freed at once;
//   - a client that vanishes (read error, Beast's idle timeout with keep-alive pings) ends the session.
//
// Locking: mu_ guards the protocol's state and the output queue; the scheduler calls Pump/Abort under the
// loop's streams_mu_ and then takes mu_ (never the other way round: Unregister is called without mu_).
#pragma once

#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "service/mode_loop.h"

namespace monologue {

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using WsSocket = websocket::stream<beast::tcp_stream>;
using HttpRequest = beast::http::request<beast::http::string_body>;
using QueryParams = std::map<std::string, std::string>;

class WsConnection : public LiveStream, public std::enable_shared_from_this<WsConnection> {
 public:
  WsConnection(WsSocket ws, ModeLoop* loop);
  ~WsConnection() override;

  // Completes the WebSocket handshake for `request` and opens the protocol's session (OpenLocked), or, when
  // `refusal` is not empty (a malformed request the endpoint cannot serve), refuses with it as bad
  // parameters are refused. Keeps the connection alive until it has ended.
  void Run(HttpRequest request, std::string refusal = "");

  void Pump(ServiceClock::time_point now) override;
  bool Abort(const grpc::Status& status) override;

 protected:
  // After the handshake: take the slot and queue the greeting, or FailLocked.
  virtual void OpenLocked() = 0;
  // A complete message from the client.
  virtual void OnMessageLocked(std::string_view data, bool binary) = 0;
  // After a model step: queue the session's events; EndLocked after the last one.
  virtual void PumpLocked(ServiceClock::time_point now) = 0;
  // True while the server should stop reading (the session has enough input ahead).
  virtual bool InputFullLocked() const { return OutputBacklogLocked(); }
  // True while the protocol expects more messages from the client (false once it has said it is done, e.g.
  // TTS's Eos): a client that sends none for --idle-timeout is then closed, freeing its slot.
  virtual bool AwaitsInputLocked() const { return true; }
  // Frees the session (its batch slot).
  virtual void ReleaseLocked() = 0;
  // The protocol's error message carrying `text` ("" = the protocol has none: only the close reason).
  virtual std::string ErrorMessageLocked(const std::string& text) = 0;

  // Queues a message (binary unless `text`).
  void SendLocked(std::string bytes, bool text = false);
  // Ends the connection with the protocol's error: the output queue is dropped, the error is sent, then the
  // close (`code`); the session is released now. `metric` names the outcome in the mode's metrics.
  void FailLocked(const std::string& message, const char* metric = "INVALID_ARGUMENT",
                  websocket::close_code code = websocket::close_code::policy_error);
  // The same, after everything already queued: what the stream produced still reaches the client.
  void EndWithErrorLocked(const std::string& message, const char* metric,
                          websocket::close_code code = websocket::close_code::policy_error);
  // A refusal before any session (no free slot: close 1013, try again later; bad parameters: 1008): counted
  // as refused, then FailLocked.
  void RefuseLocked(const char* reason, const std::string& message, const char* metric);
  // The query parameter `key` of `query` as a finite number from 0 to `max` (a whole one when `whole`),
  // passed to `set` when present; false (after RefuseLocked: bad_config) when it is not one.
  bool NumberParamLocked(const QueryParams& query, const char* key, absl::FunctionRef<void(double)> set,
                         double max = 1e6, bool whole = false);
  // The same for a sampling seed: a whole number that fits 64 bits, read exactly.
  bool SeedParamLocked(const QueryParams& query, const char* key, absl::FunctionRef<void(uint64_t)> set);
  // Ends normally once every queued message is written.
  void EndLocked();
  void CountOpenLocked();
  bool OutputBacklogLocked() const;
  size_t QueuedLocked() const { return out_.size(); }

  ModeLoop* loop_;
  std::mutex mu_;
  bool finished_ = false;  // no more input is processed; the output queue drains, then the close

 private:
  struct Outgoing {
    std::string bytes;
    bool text = false;
  };
  void FinishLocked(const char* metric);
  void Post(void (WsConnection::*method)());
  void DoRead();
  void OnRead(beast::error_code ec);
  void DoWrite();
  void Terminate();

  WsSocket ws_;
  beast::flat_buffer buffer_;
  std::deque<Outgoing> out_;
  Outgoing writing_;
  bool write_in_flight_ = false;
  bool read_paused_ = false;
  bool read_stopped_ = false;
  bool close_pending_ = false;  // close once the queue is written
  bool close_started_ = false;
  websocket::close_reason close_reason_;
  bool counted_open_ = false;
  bool accepted_ = false;  // the handshake completed
  ServiceClock::time_point last_input_;  // the last complete message from the client (or the handshake)
  std::atomic<bool> terminated_{false};
  std::shared_ptr<WsConnection> self_;  // held while registered with the loop
};

// "a=1&b=x%20y" -> {a: "1", b: "x y"} (percent-decoding, '+' as space); the part after '?' of a target.
// A parameter given more than once is named in `*repeated` (the first such, decoded; "" when none): which
// value was meant cannot be known (the Rust server, through axum's Query, refuses a duplicate field too).
QueryParams ParseQuery(std::string_view target, std::string* repeated);

}  // namespace monologue
