// Helpers for the service tests: a `monologue serve` child process on loopback, a streaming client, and
// the words the engine gives for the same audio in-process.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "asr/asr_engine.h"
#include "core/audio/audio_decoder.h"
#include "monologue/v1/transcription.grpc.pb.h"

namespace monologue::service_test {

namespace v1 = ::monologue::v1;

inline std::string AsrData() { return std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr"; }
inline std::string TinyModel() { return AsrData() + "/tiny-stt"; }

inline std::vector<float> Clip(const std::string& name) {
  auto decoded = DecodeAudioFile(AsrData() + "/" + name + ".wav");
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return decoded.ok() ? decoded->samples : std::vector<float>{};
}

struct Word {
  std::string text;
  double start = 0, end = 0;
  bool operator==(const Word& o) const { return text == o.text && start == o.start && end == o.end; }
};
inline std::ostream& operator<<(std::ostream& os, const Word& w) {
  return os << "'" << w.text << "' [" << w.start << ", " << w.end << "]";
}

// The words the engine gives for `audio` alone in a batch of one (what `monologue transcribe` prints).
inline std::vector<Word> EngineWords(const std::vector<float>& audio) {
  auto engine = AsrEngine::Load(TinyModel());
  EXPECT_TRUE(engine.ok()) << engine.status();
  if (!engine.ok()) return {};
  auto session = (*engine)->OpenSession();
  EXPECT_TRUE(session.ok());
  EXPECT_TRUE((*session)->PushAudio(audio).ok());
  EXPECT_TRUE((*session)->Close().ok());
  EXPECT_TRUE((*engine)->RunUntilIdle().ok());
  std::vector<Word> words;
  for (const AsrEvent& e : (*session)->PollEvents()) {
    if (e.kind == AsrEvent::Kind::kWord) words.push_back({e.word.text, e.word.start_s, e.word.end_s});
  }
  return words;
}

// `monologue serve` as a child process; the port comes from its "listening on" line.
class ServerProcess {
 public:
  // `with_stt`: serve the tiny STT model (--model); false: only what extra_args names (--tts, --dialogue).
  explicit ServerProcess(std::vector<std::string> extra_args, bool with_stt = true) {
    std::vector<std::string> args = {std::string(MONOLOGUE_BINARY_DIR) + "/monologue", "serve", "--listen",
                                     "127.0.0.1:0"};
    if (with_stt) {
      args.push_back("--model");
      args.push_back(TinyModel());
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    // Read the ready line (bounded: 60 s).
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    while (std::chrono::steady_clock::now() < deadline && line.find('\n') == std::string::npos) {
      char buf[256];
      const ssize_t n = read(out[0], buf, sizeof(buf));
      if (n > 0) {
        line.append(buf, static_cast<size_t>(n));
      } else if (n == 0) {
        break;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    out_fd_ = out[0];
    const std::string key = "listening on ";
    const size_t at = line.find(key);
    if (at != std::string::npos) {
      address_ = line.substr(at + key.size());
      address_ = address_.substr(0, address_.find('\n'));
    }
    if (const size_t nl = line.find('\n'); nl != std::string::npos) stdout_rest_ = line.substr(nl + 1);
  }
  // The next line the server prints on stdout after the "listening on" one (e.g. "http on HOST:PORT" with
  // --http), without its newline; "" after `seconds`.
  std::string NextLine(double seconds = 30) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(int(seconds * 1000));
    while (stdout_rest_.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      char buf[256];
      const ssize_t n = read(out_fd_, buf, sizeof(buf));
      if (n > 0) {
        stdout_rest_.append(buf, static_cast<size_t>(n));
      } else if (n == 0) {
        break;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    const size_t nl = stdout_rest_.find('\n');
    if (nl == std::string::npos) return "";
    std::string l = stdout_rest_.substr(0, nl);
    stdout_rest_.erase(0, nl + 1);
    return l;
  }
  ~ServerProcess() {
    if (pid_ > 0 && !waited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
  }
  bool ok() const { return !address_.empty(); }
  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  void Signal(int sig) { kill(pid_, sig); }
  // Exit status (or -1 on timeout / signal).
  int Wait(double seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(int(seconds * 1000));
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        waited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  bool waited_ = false;
  std::string address_;
  std::string stdout_rest_;
};

struct StreamResult {
  grpc::Status status;
  bool started = false;
  std::vector<Word> words;
  int end_messages = 0;
  int end_words = -1;
  int end_of_turns = 0;
  int vad_events = 0;
};

inline std::string Pcm16Bytes(const std::vector<float>& audio) {
  std::string bytes(audio.size() * 2, '\0');
  for (size_t i = 0; i < audio.size(); ++i) {
    const int16_t s = static_cast<int16_t>(std::lrint(audio[i] * 32768.0f));
    std::memcpy(bytes.data() + 2 * i, &s, 2);
  }
  return bytes;
}
inline std::string Float32Bytes(const std::vector<float>& audio) {
  return std::string(reinterpret_cast<const char*>(audio.data()), audio.size() * 4);
}

inline v1::TranscribeRequest ConfigRequest(v1::AudioEncoding encoding, int rate = 24000, bool vad = false) {
  v1::TranscribeRequest r;
  r.mutable_config()->mutable_audio_format()->set_encoding(encoding);
  r.mutable_config()->mutable_audio_format()->set_sample_rate_hz(rate);
  r.mutable_config()->set_enable_vad_events(vad);
  return r;
}

struct StreamOptions {
  v1::AudioEncoding encoding = v1::LINEAR_PCM_S16LE;
  size_t chunk_bytes = 3840;  // 80 ms of PCM16
  bool vad = false;
  // Cancel after sending this many bytes (0: never).
  size_t cancel_after_bytes = 0;
  // Called once the first `started` response arrived (e.g. to start another stream).
  std::function<void()> on_started;
  // Sleep between chunks (0: as fast as flow control allows).
  int chunk_sleep_ms = 0;
  bool half_close = true;
  int deadline_ms = 60000;
};

// One Transcribe stream: sends config + `bytes` in chunks, half-closes, reads everything.
inline StreamResult RunStream(grpc::Channel* channel, const std::string& bytes, const StreamOptions& o = {}) {
  auto stub = v1::Transcription::NewStub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));
  auto stream = stub->Transcribe(&ctx);
  StreamResult result;
  std::atomic<bool> cancelled{false};
  std::thread writer([&] {
    if (!stream->Write(ConfigRequest(o.encoding, 24000, o.vad))) return;
    for (size_t pos = 0; pos < bytes.size(); pos += o.chunk_bytes) {
      if (o.cancel_after_bytes > 0 && pos >= o.cancel_after_bytes) {
        cancelled = true;
        ctx.TryCancel();
        return;
      }
      v1::TranscribeRequest r;
      r.set_audio(bytes.substr(pos, o.chunk_bytes));
      if (!stream->Write(r)) return;
      if (o.chunk_sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.chunk_sleep_ms));
    }
    if (o.half_close) stream->WritesDone();
  });
  v1::TranscribeResponse response;
  while (stream->Read(&response)) {
    switch (response.event_case()) {
      case v1::TranscribeResponse::kStarted:
        result.started = true;
        if (o.on_started) o.on_started();
        break;
      case v1::TranscribeResponse::kWord:
        result.words.push_back(
            {response.word().text(), response.word().start_seconds(), response.word().end_seconds()});
        break;
      case v1::TranscribeResponse::kEnd:
        result.end_messages++;
        result.end_words = response.end().words();
        break;
      case v1::TranscribeResponse::kEndOfTurn:
        result.end_of_turns++;
        break;
      case v1::TranscribeResponse::kVad:
        result.vad_events++;
        break;
      default:
        break;
    }
  }
  writer.join();
  result.status = stream->Finish();
  return result;
}

// grpc.health.v1.Health/Check through a generic call (request: {service}, response: {status}).
inline int HealthStatus(grpc::Channel* channel, const std::string& service) {
  grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  std::string request;
  if (!service.empty()) {
    request.push_back(0x0a);
    request.push_back(static_cast<char>(service.size()));
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1), resp;
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", req, &cq);
  call->StartCall();
  grpc::Status status;
  call->Finish(&resp, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return -100 - status.error_code();
  std::vector<grpc::Slice> slices;
  resp.Dump(&slices);
  std::string bytes;
  for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes.empty()) return 0;  // UNKNOWN (default value)
  return bytes.size() == 2 && bytes[0] == 0x08 ? bytes[1] : -1;
}

inline std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req = "GET " + path + " HTTP/1.0\r\n\r\n";
    (void)!write(fd, req.data(), req.size());
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

// The value of one series in a Prometheus text exposition, or -1 when it is absent.
inline double MetricValue(const std::string& exposition, const std::string& series) {
  const size_t at = exposition.find("\n" + series + " ");
  return at == std::string::npos ? -1.0 : std::stod(exposition.substr(at + series.size() + 2));
}

// Polls /metrics until `series` reads `want` (the server learns of a client's cancel a moment after the
// client does, so a freed slot shows there first). Returns whether it did within `timeout_ms`.
inline bool WaitForMetric(int port, const std::string& series, double want, int timeout_ms = 10000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (MetricValue(HttpGet(port, "/metrics"), series) == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace monologue::service_test
