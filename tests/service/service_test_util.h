// Helpers for the service tests: a `monologue serve` child process on loopback, a streaming client, and
// the words the engine gives for the same audio in-process.
#pragma once

#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "asr/asr_engine.h"
#include "core/audio/audio_decoder.h"
#include "monologue/v1/transcription.grpc.pb.h"
#include "tests/common/process.h"

namespace monologue::service_test {

namespace v1 = ::monologue::v1;

inline std::string AsrData() { return std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr"; }
inline std::string TinyModel() { return AsrData() + "/tiny-stt"; }

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// This test process's scratch folder (tests/common/test_main.cc).
inline std::filesystem::path ScratchDir() {
  const char* tmp = std::getenv("MONOLOGUE_TEST_TMP");
  return std::filesystem::path(tmp != nullptr ? tmp : ".");
}

// A tiny full-duplex Moshi model directory (the dialogue fixtures' preset, f32, seed 0), made once per test
// process by monologue-make-model.
inline const std::string& TinyMoshiModel() {
  static const std::string dir = [] {
    const std::filesystem::path out = ScratchDir() / "tiny_moshi";
    if (!std::filesystem::exists(out / "config.json")) {
      const test_process::RunResult made = test_process::RunShell(
          std::string(MONOLOGUE_BINARY_DIR) + "/monologue-make-model --preset tiny-moshi-8 --dtype f32 --seed 0 " +
          "--tokenizer " + MONOLOGUE_TEST_DATA_DIR + "/tokenizers/tiny_en_fr_400.model --out " + out.string());
      EXPECT_EQ(made.exit_code, 0) << made.err;
    }
    return out.string();
  }();
  return dir;
}

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

// The words the engine gives for `audio` alone in a batch of one (what `monologue transcribe` prints), with
// the LM in `dtype` ("": the default).
inline std::vector<Word> EngineWords(const std::vector<float>& audio, const std::string& dtype = "") {
  AsrEngineOptions options;
  options.dtype = dtype;
  auto engine = AsrEngine::Load(TinyModel(), options);
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
  explicit ServerProcess(std::vector<std::string> extra_args, bool with_stt = true)
      : child_(ServeArgs(std::move(extra_args), with_stt)) {
    // Its first line says where it listens (bounded: 60 s of model loading).
    const std::string line = child_.ReadLine(60);
    const std::string key = "listening on ";
    if (const size_t at = line.find(key); at != std::string::npos) address_ = line.substr(at + key.size());
  }
  // The next line the server prints on stdout after the "listening on" one (e.g. "http on HOST:PORT" with
  // --http), without its newline; "" after `seconds`.
  std::string NextLine(double seconds = 30) { return child_.ReadLine(seconds); }
  // With --http: the HOST:PORT of the "http on HOST:PORT" line printed after the "listening on" one; "" when
  // that line does not come.
  std::string HttpAddress() {
    const std::string line = NextLine();
    const std::string key = "http on ";
    const size_t at = line.find(key);
    return at == std::string::npos ? "" : line.substr(at + key.size());
  }
  bool ok() const { return !address_.empty(); }
  const std::string& address() const { return address_; }
  pid_t pid() const { return child_.pid(); }
  void Signal(int sig) { child_.Signal(sig); }
  // Exit status (or -1 on timeout / signal).
  int Wait(double seconds) { return child_.Wait(seconds); }
  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }

 private:
  static std::vector<std::string> ServeArgs(std::vector<std::string> extra_args, bool with_stt) {
    std::vector<std::string> args = {test_process::MonologueBinary(), "serve", "--listen", "127.0.0.1:0"};
    if (with_stt) {
      args.push_back("--model");
      args.push_back(TinyModel());
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    return args;
  }

  test_process::ChildProcess child_;
  std::string address_;
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
// A mono 16-bit WAV file of `audio` whose header says `sample_rate`.
inline std::string MakeWav(const std::vector<float>& audio, uint32_t sample_rate) {
  auto u32 = [](uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [](uint16_t v) { return std::string(reinterpret_cast<const char*>(&v), 2); };
  const std::string data = Pcm16Bytes(audio);
  return "RIFF" + u32(36 + static_cast<uint32_t>(data.size())) + "WAVEfmt " + u32(16) + u16(1) + u16(1) +
         u32(sample_rate) + u32(sample_rate * 2) + u16(2) + u16(16) + "data" +
         u32(static_cast<uint32_t>(data.size())) + data;
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
