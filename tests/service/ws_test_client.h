// A WebSocket client for the `serve --http` tests (Boost.Beast, synchronous), speaking the protocols as
// Kyutai's clients do, plus MessagePack helpers. One thread may read while another writes (the server sends
// no pings to a client that keeps sending).
#pragma once


#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <msgpack.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace monologue::service_test {

namespace ws_beast = boost::beast;

struct WsMessage {
  std::string data;
  bool binary = true;
};

class WsClient {
 public:
  // Connects and upgrades; http_status is 101 on success, else the server's refusal (e.g. 401).
  WsClient(const std::string& host_port, const std::string& target,
           const std::map<std::string, std::string>& headers = {})
      : ws_(ioc_) {
    const size_t colon = host_port.rfind(':');
    const std::string host = host_port.substr(0, colon), port = host_port.substr(colon + 1);
    ws_beast::error_code ec;
    boost::asio::ip::tcp::resolver resolver(ioc_);
    auto endpoints = resolver.resolve(host, port, ec);
    if (ec) return;
    boost::asio::connect(ws_.next_layer(), endpoints, ec);
    if (ec) return;
    // A read that takes longer than read_timeout_ms (30 s) fails (the socket is shut down): a broken server fails the test
    // instead of hanging it.
    watchdog_ = std::thread([this] {
      while (!stop_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const int64_t since = read_since_ms_.load();
        if (since > 0 && NowMs() - since > read_timeout_ms) {
          ws_beast::error_code ec;
          ws_.next_layer().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
          timed_out = true;
        }
      }
    });
    ws_.set_option(ws_beast::websocket::stream_base::decorator([headers](ws_beast::websocket::request_type& req) {
      for (const auto& [k, v] : headers) req.set(k, v);
    }));
    ws_.read_message_max(64 << 20);
    ws_.auto_fragment(false);  // one frame per message, as the Python websockets client sends them
    ws_beast::websocket::response_type res;
    ws_.handshake(res, host, target, ec);
    http_status = static_cast<int>(res.result_int());
    connected = !ec;
  }

  ~WsClient() {
    stop_ = true;
    if (watchdog_.joinable()) watchdog_.join();
  }
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  static int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  bool Send(const std::string& bytes, bool binary = true) {
    ws_beast::error_code ec;
    ws_.binary(binary);
    ws_.write(boost::asio::buffer(bytes), ec);
    return !ec;
  }

  // The next message; nullopt on close (close_code set) or error/timeout.
  std::optional<WsMessage> Read() {
    ws_beast::flat_buffer buffer;
    ws_beast::error_code ec;
    read_since_ms_ = NowMs();
    ws_.read(buffer, ec);
    read_since_ms_ = 0;
    if (ec) {
      if (ec == ws_beast::websocket::error::closed) {
        closed = true;
        close_code = static_cast<int>(ws_.reason().code);
        close_reason = std::string(ws_.reason().reason.data(), ws_.reason().reason.size());
      }
      return std::nullopt;
    }
    return WsMessage{ws_beast::buffers_to_string(buffer.data()), ws_.got_binary()};
  }

  void Close() {
    ws_beast::error_code ec;
    ws_.close(ws_beast::websocket::close_code::normal, ec);
  }
  // Drops the TCP connection without a WebSocket close (a client that vanishes).
  void Drop() {
    ws_beast::error_code ec;
    ws_.next_layer().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    ws_.next_layer().close(ec);
  }

  bool connected = false;
  bool timed_out = false;
  std::atomic<int64_t> read_timeout_ms{30000};  // a read blocked longer shuts the connection down
  int http_status = 0;
  bool closed = false;
  int close_code = 0;
  std::string close_reason;

 private:
  boost::asio::io_context ioc_;
  ws_beast::websocket::stream<boost::asio::ip::tcp::socket> ws_;
  std::atomic<int64_t> read_since_ms_{0};
  std::atomic<bool> stop_{false};
  std::thread watchdog_;
};

// The HTTP status the server answers a WebSocket upgrade request for `target` with (101 when it upgrades).
inline int UpgradeStatus(const std::string& host_port, const std::string& target,
                         const std::map<std::string, std::string>& headers = {}) {
  namespace http = ws_beast::http;
  const size_t colon = host_port.rfind(':');
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket socket(ioc);
  ws_beast::error_code ec;
  boost::asio::ip::tcp::resolver resolver(ioc);
  boost::asio::connect(socket, resolver.resolve(host_port.substr(0, colon), host_port.substr(colon + 1), ec), ec);
  if (ec) return -1;
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, host_port);
  req.set(http::field::upgrade, "websocket");
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  req.set(http::field::sec_websocket_version, "13");
  for (const auto& [k, v] : headers) req.set(k, v);
  http::write(socket, req, ec);
  if (ec) return -1;
  ws_beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.skip(true);  // a 101 has no body
  http::read_header(socket, buffer, parser, ec);
  return ec ? -1 : static_cast<int>(parser.get().result_int());
}

// A decoded MessagePack map message.
struct Msg {
  msgpack::object_handle handle;
  std::map<std::string, msgpack::object> fields;
  std::string type() const { return Str("type"); }
  bool Has(const std::string& k) const { return fields.count(k) > 0; }
  std::string Str(const std::string& k) const {
    auto it = fields.find(k);
    return it == fields.end() || it->second.type != msgpack::type::STR ? "" : it->second.as<std::string>();
  }
  double F64(const std::string& k) const { return fields.at(k).as<double>(); }
  msgpack::type::object_type Type(const std::string& k) const { return fields.at(k).type; }
};

inline std::optional<Msg> Unpack(const std::string& bytes) {
  Msg m;
  try {
    m.handle = msgpack::unpack(bytes.data(), bytes.size());
    const msgpack::object& o = m.handle.get();
    if (o.type != msgpack::type::MAP) return std::nullopt;
    for (uint32_t i = 0; i < o.via.map.size; ++i) m.fields[o.via.map.ptr[i].key.as<std::string>()] = o.via.map.ptr[i].val;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return m;
}

// {"type": "Audio", "pcm": [...]} with float32 samples, as the DSM scripts pack it (use_single_float).
inline std::string AudioMessage(const float* pcm, size_t n) {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> p(b);
  p.pack_map(2);
  p.pack(std::string("type"));
  p.pack(std::string("Audio"));
  p.pack(std::string("pcm"));
  p.pack_array(static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) p.pack_float(pcm[i]);
  return std::string(b.data(), b.size());
}

// {"type": TYPE, key: value} with a string or integer value.
inline std::string TaggedStr(const std::string& type, const std::string& key, const std::string& value) {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> p(b);
  p.pack_map(2);
  p.pack(std::string("type"));
  p.pack(type);
  p.pack(key);
  p.pack(value);
  return std::string(b.data(), b.size());
}
inline std::string TaggedInt(const std::string& type, const std::string& key, int64_t value) {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> p(b);
  p.pack_map(2);
  p.pack(std::string("type"));
  p.pack(type);
  p.pack(key);
  p.pack(value);
  return std::string(b.data(), b.size());
}
inline std::string TaggedOnly(const std::string& type) {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> p(b);
  p.pack_map(1);
  p.pack(std::string("type"));
  p.pack(type);
  return std::string(b.data(), b.size());
}

}  // namespace monologue::service_test
