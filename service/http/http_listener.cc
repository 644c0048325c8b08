#include "service/http/http_listener.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/http/web_files.h"
#include "service/http/ws_endpoints.h"
#include "service/metrics.h"

namespace monologue {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

struct HttpListener::Impl {
  HttpListenerOptions options;
  HttpModes modes;
  net::io_context ioc;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  int port = 0;
  bool stopped = false;

  void Accept();
};

namespace {

constexpr size_t kMaxRequestBody = 16 * 1024;

// One HTTP connection: requests until an upgrade (handed to an endpoint) or the end of the connection.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, HttpListener::Impl* listener)
      : stream_(std::move(socket)), listener_(listener) {}

  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->DoRead(); });
  }

 private:
  void DoRead() {
    parser_.emplace();
    parser_->body_limit(kMaxRequestBody);
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec == http::error::header_limit || ec == http::error::body_limit) {
        // Say why before closing (a 9000-character target used to get the connection closed, no status).
        HttpRequest req;
        req.version(11);
        req.keep_alive(false);
        return ec == http::error::header_limit
                   ? self->Respond(req, http::status::request_header_fields_too_large,
                                   "the request line and headers exceed 8 KB\n")
                   : self->Respond(req, http::status::payload_too_large,
                                   absl::StrCat("the request body exceeds ", kMaxRequestBody, " bytes\n"));
      }
      if (ec) {
        beast::error_code ignored;
        self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        return;
      }
      self->Handle(self->parser_->release());
    });
  }

  void Handle(HttpRequest req) {
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    const bool api = path.rfind("/api/", 0) == 0;
    if (api) {
      if (!websocket::is_upgrade(req)) {
        return Respond(req, http::status::upgrade_required, "this endpoint speaks WebSocket\n");
      }
      std::string repeated;
      QueryParams query = ParseQuery(target, &repeated);
      return Upgrade(std::move(req), path, query, repeated);
    }
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      return Respond(req, http::status::method_not_allowed, "only GET\n");
    }
    auto file = FindWebFile(listener_->options.web_root, path);
    if (!file.has_value()) return Respond(req, http::status::not_found, "not found\n");
    Respond(req, http::status::ok, std::move(file->bytes), file->content_type);
  }

  // `repeated`: a query parameter given more than once (refused after the handshake, as other bad
  // parameters are, so that a browser's WebSocket sees the reason).
  void Upgrade(HttpRequest req, const std::string& path, const QueryParams& query,
               const std::string& repeated) {
    const HttpModes& m = listener_->modes;
    ModeLoop* loop = nullptr;
    const char* missing = nullptr;
    if (path == "/api/asr-streaming") {
      loop = m.asr_loop;
      missing = "speech recognition (start the server with --stt)";
    } else if (path == "/api/tts_streaming") {
      loop = m.tts_loop;
      missing = "speech synthesis (start the server with --tts)";
    } else if (path == "/api/chat") {
      loop = m.chat_loop;
      missing = "dialogue (start the server with --dialogue)";
    } else {
      return Respond(req, http::status::not_found,
                     "no such endpoint: use /api/asr-streaming, /api/tts_streaming or /api/chat\n");
    }
    const std::string& key = listener_->options.api_key;
    if (!key.empty()) {
      // As the Rust server: the header when present, else the query parameter.
      std::string given;
      if (auto h = req.find("kyutai-api-key"); h != req.end()) {
        given = std::string(h->value());
      } else if (auto q = query.find("auth_id"); q != query.end()) {
        given = q->second;
      }
      if (given != key) {
        return Respond(req, http::status::unauthorized,
                       "missing or wrong API key (header kyutai-api-key or query parameter auth_id)\n");
      }
    }
    if (loop == nullptr) return Respond(req, http::status::not_found, absl::StrCat("this server has no ", missing, "\n"));
    if (loop->draining) {
      loop->metrics().Refused("shutting_down");
      return Respond(req, http::status::service_unavailable,
                     "the server is shutting down and accepts no new streams; use another replica\n");
    }
    stream_.expires_never();
    WsSocket ws(std::move(stream_));
    std::shared_ptr<WsConnection> conn;
    if (loop == m.asr_loop) {
      conn = NewAsrWsConnection(std::move(ws), loop, m.asr, query);
    } else if (loop == m.tts_loop) {
      conn = NewTtsWsConnection(std::move(ws), loop, m.tts, m.tts_defaults, query);
    } else {
      conn = NewChatWsConnection(std::move(ws), loop, m.dialogue, query);
    }
    std::string refusal;
    if (!repeated.empty()) {
      refusal = absl::StrCat("query parameter ", repeated.substr(0, 64),
                             " is given more than once: give each parameter once");
    }
    conn->Run(std::move(req), std::move(refusal));
  }

  void Respond(const HttpRequest& req, http::status status, std::string body,
               const std::string& content_type = "text/plain; charset=utf-8") {
    auto res = std::make_shared<http::response<http::string_body>>(status, req.version());
    res->set(http::field::server, "monologue");
    res->set(http::field::content_type, content_type);
    res->keep_alive(req.keep_alive() && status == http::status::ok);
    if (req.method() != http::verb::head) res->body() = std::move(body);
    res->prepare_payload();
    if (req.method() == http::verb::head) res->body().clear();
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec || !res->keep_alive()) {
        beast::error_code ignored;
        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        return;
      }
      self->DoRead();
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpListener::Impl* listener_;
};

}  // namespace

void HttpListener::Impl::Accept() {
  acceptor->async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<HttpSession>(std::move(socket), this)->Run();
    }
    Accept();
  });
}

HttpListener::HttpListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpListener::~HttpListener() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpListener>> HttpListener::Start(const HttpListenerOptions& options,
                                                                  const HttpModes& modes) {
  std::string host;
  int port = 0;
  if (absl::Status st = SplitHostPort(options.address, "--http", host, port); !st.ok()) return st;
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->modes = modes;
  beast::error_code ec;
  tcp::resolver resolver(impl->ioc);
  auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (ec || endpoints.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--http ", options.address, ": cannot resolve '", host, "'"));
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  impl->acceptor.emplace(impl->ioc);
  impl->acceptor->open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor->bind(endpoint, ec);
  if (!ec) impl->acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("--http ", options.address, ": cannot listen there (", ec.message(), ")"));
  }
  impl->port = impl->acceptor->local_endpoint().port();
  impl->Accept();
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    impl->threads.emplace_back([ioc = &impl->ioc] { ioc->run(); });
  }
  return std::unique_ptr<HttpListener>(new HttpListener(std::move(impl)));
}

int HttpListener::port() const { return impl_->port; }

void HttpListener::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  net::post(impl_->ioc, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor->close(ignored);
  });
  impl_->ioc.stop();
  for (std::thread& t : impl_->threads) t.join();
}

}  // namespace monologue
