#include "service/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace monologue {

namespace {
std::string Num(double v) { return absl::StrFormat("%.9g", v); }
}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double v) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i]++;
  sum_ += v;
  count_++;
}

uint64_t Histogram::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

void Histogram::Render(const std::string& name, const std::string& help, std::string& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " histogram\n");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    absl::StrAppend(&out, name, "_bucket{le=\"", Num(bounds_[i]), "\"} ", cumulative, "\n");
  }
  cumulative += counts_.back();
  absl::StrAppend(&out, name, "_bucket{le=\"+Inf\"} ", cumulative, "\n", name, "_sum ", Num(sum_), "\n", name,
                  "_count ", count_, "\n");
}

namespace {
std::vector<double> OccupancyBounds(int slots) {
  std::vector<double> b;
  for (int i = 1; i <= slots; ++i) b.push_back(i);
  return b;
}
}  // namespace

ServiceMetrics::ServiceMetrics(int batch_slots, std::string prefix, std::string noun)
    : step_seconds({0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.15, 0.25, 0.5, 1}),
      batch_occupancy(OccupancyBounds(batch_slots)),
      audio_to_word_seconds({0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10}),
      first_audio_seconds({0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10}),
      frame_lag_seconds({0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5}),
      batch_slots_(batch_slots),
      prefix_(std::move(prefix)),
      noun_(std::move(noun)) {
  // Series with a label exist from the start (rate() works from zero).
  refusals_["no_free_slot"] = 0;
  refusals_["shutting_down"] = 0;
  refusals_["bad_config"] = 0;
}

void ServiceMetrics::AddAudioSeconds(double seconds) {
  double current = audio_seconds.load();
  while (!audio_seconds.compare_exchange_weak(current, current + seconds)) {
  }
}

void ServiceMetrics::Refused(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  refusals_[reason]++;
}

void ServiceMetrics::Finished(const std::string& code) {
  std::lock_guard<std::mutex> lock(mu_);
  finished_[code]++;
}

void ServiceMetrics::RecordStep(int active_slots, double seconds, double frame_seconds) {
  steps++;
  slot_steps += active_slots;
  step_seconds_total = step_seconds_total.load() + seconds;
  step_seconds.Observe(seconds);
  batch_occupancy.Observe(active_slots);
  std::lock_guard<std::mutex> lock(mu_);
  ewma_step_ = ewma_step_ < 0 ? seconds : 0.9 * ewma_step_ + 0.1 * seconds;
  realtime_factor = ewma_step_ / frame_seconds;
}

std::string ServiceMetrics::Render() const {
  std::string out;
  const std::string& p = prefix_;
  auto gauge = [&](const std::string& suffix, const std::string& help, const std::string& value) {
    const std::string name = p + suffix;
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " gauge\n", name, " ", value, "\n");
  };
  auto counter = [&](const std::string& suffix, const std::string& help, const std::string& value) {
    const std::string name = p + suffix;
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " counter\n", name, " ", value,
                    "\n");
  };
  gauge("streams_open", noun_ + " streams holding a batch slot.", absl::StrCat(streams_open.load()));
  gauge("batch_slots", "Batch slots (maximum concurrent streams).", absl::StrCat(batch_slots_));
  counter("streams_started_total", "Streams that got a batch slot.", absl::StrCat(streams_started.load()));
  counter("words_total", "Words sent to clients.", absl::StrCat(words.load()));
  counter("steps_total", "Batched model steps (one 80 ms frame each).", absl::StrCat(steps.load()));
  counter("slot_steps_total", "Sum over model steps of the slots that advanced.",
          absl::StrCat(slot_steps.load()));
  counter("audio_seconds_total", "Input audio received, in seconds.", Num(audio_seconds.load()));
  counter("step_seconds_total", "Time spent in model steps.", Num(step_seconds_total.load()));
  gauge("realtime_factor",
        "Recent model step time over the frame duration (below 1: every stream keeps up with real time).",
        Num(realtime_factor.load()));
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StrAppend(&out, "# HELP ", p, "stream_refusals_total Streams refused, by reason.\n", "# TYPE ", p,
                    "stream_refusals_total counter\n");
    for (const auto& [reason, n] : refusals_) {
      absl::StrAppend(&out, p, "stream_refusals_total{reason=\"", reason, "\"} ", n, "\n");
    }
    absl::StrAppend(&out, "# HELP ", p, "streams_finished_total Streams ended, by gRPC status code.\n",
                    "# TYPE ", p, "streams_finished_total counter\n");
    for (const auto& [code, n] : finished_) {
      absl::StrAppend(&out, p, "streams_finished_total{code=\"", code, "\"} ", n, "\n");
    }
  }
  step_seconds.Render(p + "step_seconds", "Duration of one batched model step.", out);
  batch_occupancy.Render(p + "batch_occupancy", "Slots that advanced in a model step.", out);
  audio_to_word_seconds.Render(p + "audio_to_word_seconds",
                               "Time from receiving the audio that ends a word to sending the word.", out);
  if (first_audio_seconds.count() > 0) {
    first_audio_seconds.Render(p + "first_audio_seconds",
                               "Time from a stream's first text to its first audio sent.", out);
  }
  if (frame_lag_seconds.count() > 0) {
    frame_lag_seconds.Render(
        p + "frame_lag_seconds",
        "Time from receiving a frame of the user's audio to sending Moshi's frame for it.", out);
  }
  return out;
}

absl::Status SplitHostPort(const std::string& address, const std::string& flag, std::string& host,
                           int& port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size() ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " '", address, "': expected HOST:PORT"));
  }
  host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, std::vector<const ServiceMetrics*> metrics) {
  std::string host;
  int port = 0;
  if (absl::Status st = SplitHostPort(address, "--metrics-listen", host, port); !st.ok()) return st;
  if (host == "localhost") host = "127.0.0.1";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-listen '", address, "': the host must be an IPv4 address (e.g. 127.0.0.1)"));
  }
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer());
  server->metrics_ = std::move(metrics);
  server->fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (server->fd_ < 0) return absl::InternalError(absl::StrCat("metrics socket: ", std::strerror(errno)));
  int one = 1;
  setsockopt(server->fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(server->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(server->fd_, 16) != 0) {
    return absl::UnavailableError(absl::StrCat("--metrics-listen ", address, ": ", std::strerror(errno)));
  }
  socklen_t len = sizeof(addr);
  getsockname(server->fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  server->port_ = ntohs(addr.sin_port);
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) close(fd_);
}

void MetricsHttpServer::Loop() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    const int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    timeval tv{2, 0};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    std::string request;
    char buf[2048];
    while (request.find("\r\n\r\n") == std::string::npos && request.find("\n\n") == std::string::npos &&
           request.size() < 16384) {
      const ssize_t n = recv(client, buf, sizeof(buf), 0);
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", body;
    if (request.rfind("GET /metrics", 0) == 0) {
      for (const ServiceMetrics* m : metrics_) body += m->Render();
    } else if (request.rfind("GET /healthz", 0) == 0) {
      body = "ok\n";
    } else {
      status = "404 Not Found";
      body = "try /metrics\n";
    }
    const std::string response =
        absl::StrCat("HTTP/1.0 ", status, "\r\nContent-Type: ", type, "\r\nContent-Length: ", body.size(),
                     "\r\nConnection: close\r\n\r\n", body);
    size_t sent = 0;
    while (sent < response.size()) {
      const ssize_t n = send(client, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    close(client);
  }
}

}  // namespace monologue
