#include "service/http/ws_connection.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace monologue {

namespace net = boost::asio;

WsConnection::WsConnection(WsSocket ws, ModeLoop* loop) : loop_(loop), ws_(std::move(ws)) {}

WsConnection::~WsConnection() = default;

void WsConnection::Run(HttpRequest request, std::string refusal) {
  self_ = shared_from_this();
  beast::get_lowest_layer(ws_).expires_never();  // the WebSocket timeouts below take over
  websocket::stream_base::timeout timeouts;
  timeouts.handshake_timeout = std::chrono::seconds(30);
  // A client that neither sends nor answers the keep-alive pings for this long has vanished.
  timeouts.idle_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(loop_->options().idle_timeout_seconds * 1000));
  timeouts.keep_alive_pings = true;
  ws_.set_option(timeouts);
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(beast::http::field::server, "monologue"); }));
  ws_.read_message_max(2 * static_cast<size_t>(loop_->options().http_max_message_bytes) + 64 * 1024);
  ws_.auto_fragment(false);
  ws_.async_accept(request, [self = shared_from_this(), refusal = std::move(refusal)](beast::error_code ec) {
    if (ec) {
      self->Terminate();
      return;
    }
    self->loop_->Register(self.get());
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->accepted_ = true;
      self->last_input_ = ServiceClock::now();
      if (refusal.empty()) {
        self->OpenLocked();
      } else {
        self->RefuseLocked("bad_config", refusal, "INVALID_ARGUMENT");
      }
    }
    self->loop_->Notify();
    self->DoWrite();
    self->DoRead();
  });
}

void WsConnection::Post(void (WsConnection::*method)()) {
  net::post(ws_.get_executor(), [self = shared_from_this(), method] { ((*self).*method)(); });
}

void WsConnection::SendLocked(std::string bytes, bool text) {
  if (finished_) return;
  out_.push_back(Outgoing{std::move(bytes), text});
  Post(&WsConnection::DoWrite);
}

void WsConnection::FinishLocked(const char* metric) {
  if (finished_) return;
  finished_ = true;
  if (!accepted_) return;  // the handshake failed: there was no session
  ReleaseLocked();
  if (counted_open_) {
    loop_->metrics().streams_open--;
    counted_open_ = false;
  }
  loop_->metrics().Finished(metric);
}

void WsConnection::FailLocked(const std::string& message, const char* metric, websocket::close_code code) {
  if (finished_) return;
  out_.clear();
  EndWithErrorLocked(message, metric, code);
}

void WsConnection::EndWithErrorLocked(const std::string& message, const char* metric,
                                      websocket::close_code code) {
  if (finished_) return;
  std::string error = ErrorMessageLocked(message);
  if (!error.empty()) out_.push_back(Outgoing{std::move(error), false});
  FinishLocked(metric);
  close_pending_ = true;
  // A close reason is at most 123 bytes, of valid UTF-8: cut before a continuation byte.
  size_t cut = std::min<size_t>(message.size(), 120);
  while (cut > 0 && cut < message.size() && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
  close_reason_ = websocket::close_reason(code, message.substr(0, cut));
  Post(&WsConnection::DoWrite);
}

void WsConnection::RefuseLocked(const char* reason, const std::string& message, const char* metric) {
  loop_->metrics().Refused(reason);
  // 1013 (try again later) only when trying again can help: a full server; a bad request is 1008 (policy).
  FailLocked(message, metric,
             std::string_view(reason) == "no_free_slot" ? websocket::close_code::try_again_later
                                                        : websocket::close_code::policy_error);
}

bool WsConnection::NumberParamLocked(const QueryParams& query, const char* key,
                                     absl::FunctionRef<void(double)> set, double max, bool whole) {
  auto it = query.find(key);
  if (it == query.end()) return true;
  double x = 0;
  if (!absl::SimpleAtod(it->second, &x) || !(x >= 0 && x <= max) || (whole && x != std::floor(x))) {
    RefuseLocked("bad_config",
                 absl::StrCat(key, "=", it->second.substr(0, 64), ": expected a ", whole ? "whole " : "",
                              "number from 0 to ", max),
                 "INVALID_ARGUMENT");
    return false;
  }
  set(x);
  return true;
}

bool WsConnection::SeedParamLocked(const QueryParams& query, const char* key,
                                   absl::FunctionRef<void(uint64_t)> set) {
  auto it = query.find(key);
  if (it == query.end()) return true;
  uint64_t seed = 0;
  // Digits only: SimpleAtoi would take a sign or spaces, and a double would round seeds past 2^53.
  if (it->second.empty() || it->second.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(it->second, &seed)) {
    RefuseLocked("bad_config",
                 absl::StrCat(key, "=", it->second.substr(0, 64),
                              ": expected a whole number from 0 to 18446744073709551615"),
                 "INVALID_ARGUMENT");
    return false;
  }
  set(seed);
  return true;
}

void WsConnection::EndLocked() {
  if (finished_) return;
  FinishLocked("OK");
  close_pending_ = true;
  close_reason_ = websocket::close_reason(websocket::close_code::normal);
  Post(&WsConnection::DoWrite);
}

void WsConnection::CountOpenLocked() {
  counted_open_ = true;
  loop_->metrics().streams_open++;
  loop_->metrics().streams_started++;
}

bool WsConnection::OutputBacklogLocked() const {
  return out_.size() > static_cast<size_t>(loop_->options().max_pending_responses / 2);
}

void WsConnection::Pump(ServiceClock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  PumpLocked(now);
  if (finished_) return;
  if (out_.size() > static_cast<size_t>(loop_->options().max_pending_responses)) {
    FailLocked(absl::StrCat("the client reads its messages too slowly: more than ",
                            loop_->options().max_pending_responses, " are waiting"),
               "RESOURCE_EXHAUSTED");
    return;
  }
  if (read_paused_ && !InputFullLocked()) {
    read_paused_ = false;
    Post(&WsConnection::DoRead);
  }
  // A client that keeps the connection open (it answers pings) but sends nothing would hold its slot for
  // good: closed after --idle-timeout, as the gRPC streams are (and the Rust server's receive timeout).
  if (read_paused_ || !AwaitsInputLocked()) {
    last_input_ = now;  // not waiting on the client
  } else if (std::chrono::duration<double>(now - last_input_).count() >
             loop_->options().idle_timeout_seconds) {
    FailLocked(absl::StrCat("no message for ", loop_->options().idle_timeout_seconds,
                            " s: keep sending, or end the stream"),
               "OUT_OF_RANGE");
  }
}

bool WsConnection::Abort(const grpc::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return false;
  FailLocked(status.error_message(), GrpcCodeName(status.error_code()),
             status.error_code() == grpc::StatusCode::UNAVAILABLE ? websocket::close_code::going_away
                                                                   : websocket::close_code::internal_error);
  return true;
}

void WsConnection::DoRead() {
  if (read_stopped_ || terminated_) return;
  // Message by pieces, so that an oversized one is refused with the protocol's error (Beast's own limit
  // below is only the backstop: it closes with 1009 and no message).
  ws_.async_read_some(buffer_, 64 * 1024, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->OnRead(ec);
  });
}

void WsConnection::OnRead(beast::error_code ec) {
  if (ec) {
    read_stopped_ = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      FinishLocked(ec == websocket::error::message_too_big ? "RESOURCE_EXHAUSTED" : "CANCELLED");
    }
    Terminate();
    return;
  }
  const size_t limit = static_cast<size_t>(loop_->options().http_max_message_bytes);
  if (buffer_.size() > limit) {
    read_stopped_ = true;  // the close handshake discards the rest of the message
    {
      std::lock_guard<std::mutex> lock(mu_);
      FailLocked(absl::StrCat("message too big: more than ", limit, " bytes (--http-max-message-bytes)"),
                 "RESOURCE_EXHAUSTED", websocket::close_code::too_big);
    }
    return;
  }
  if (!ws_.is_message_done()) return DoRead();
  const std::string data = beast::buffers_to_string(buffer_.data());
  const bool binary = ws_.got_binary();
  buffer_.consume(buffer_.size());
  bool paused = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_input_ = ServiceClock::now();
    if (!finished_) {
      OnMessageLocked(data, binary);
      paused = !finished_ && InputFullLocked();
      read_paused_ = paused;
    }
  }
  loop_->Notify();
  // While closing, reads go on (and are ignored) until the client's close frame arrives.
  if (!paused) DoRead();
}

void WsConnection::DoWrite() {
  std::unique_lock<std::mutex> lock(mu_);
  if (write_in_flight_ || close_started_ || terminated_) return;
  if (!out_.empty()) {
    writing_ = std::move(out_.front());
    out_.pop_front();
    write_in_flight_ = true;
    lock.unlock();
    ws_.text(writing_.text);
    ws_.async_write(net::buffer(writing_.bytes), [self = shared_from_this()](beast::error_code ec, size_t) {
      {
        std::lock_guard<std::mutex> lock(self->mu_);
        self->write_in_flight_ = false;
        if (ec) self->FinishLocked("CANCELLED");
      }
      if (ec) {
        self->Terminate();
        return;
      }
      self->loop_->Notify();  // the queue shrank: reads may resume
      self->DoWrite();
    });
    return;
  }
  if (close_pending_) {
    close_started_ = true;
    const websocket::close_reason reason = close_reason_;
    lock.unlock();
    ws_.async_close(reason, [self = shared_from_this()](beast::error_code) { self->Terminate(); });
  }
}

void WsConnection::Terminate() {
  if (terminated_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    FinishLocked("CANCELLED");
  }
  loop_->Unregister(this);  // no Pump/Abort after this returns
  beast::error_code ignored;
  beast::get_lowest_layer(ws_).socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(ws_).close();
  self_.reset();  // the pending handlers hold the last references
}

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

QueryParams ParseQuery(std::string_view target, std::string* repeated) {
  repeated->clear();
  QueryParams params;
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return params;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::string key = PercentDecode(pair.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1));
    if (params.contains(key)) {
      if (repeated->empty()) *repeated = std::move(key);
      continue;
    }
    params.emplace(std::move(key), std::move(value));
  }
  return params;
}

}  // namespace monologue
