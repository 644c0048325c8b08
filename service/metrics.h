// Prometheus text-format metrics of the transcription service, and a tiny HTTP server (GET /metrics,
// GET /healthz) on a side port. gRPC-free.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace monologue {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Appends the _bucket/_sum/_count lines of `name`.
  void Render(const std::string& name, const std::string& help, std::string& out) const;
  uint64_t count() const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// The metrics of one mode's service. Series are named `prefix` + name: "monologue_" for Transcription (the
// first service, names kept), "monologue_synthesis_" and "monologue_dialogue_" for the others.
class ServiceMetrics {
 public:
  explicit ServiceMetrics(int batch_slots, std::string prefix = "monologue_",
                          std::string noun = "Transcription");

  std::atomic<int64_t> streams_open{0};
  std::atomic<int64_t> streams_started{0};
  std::atomic<int64_t> words{0};
  std::atomic<int64_t> steps{0};
  std::atomic<int64_t> slot_steps{0};  // sum over steps of the slots that advanced
  std::atomic<double> audio_seconds{0};
  std::atomic<double> step_seconds_total{0};
  std::atomic<double> realtime_factor{0};  // recent step time / frame duration (< 1: keeps up)
  Histogram step_seconds;
  Histogram batch_occupancy;
  Histogram audio_to_word_seconds;
  // Synthesis: first text received -> first audio sent. Dialogue: a user frame received -> Moshi's frame for
  // it sent (the real-time lag). Rendered when observed at least once.
  Histogram first_audio_seconds;
  Histogram frame_lag_seconds;

  // Atomic add (many stream threads): audio_seconds += seconds.
  void AddAudioSeconds(double seconds);
  void Refused(const std::string& reason);
  void Finished(const std::string& code);
  void RecordStep(int active_slots, double seconds, double frame_seconds);

  std::string Render() const;

 private:
  int batch_slots_;
  std::string prefix_;
  std::string noun_;
  mutable std::mutex mu_;
  std::map<std::string, int64_t> refusals_;
  std::map<std::string, int64_t> finished_;
  double ewma_step_ = -1;
};

// Serves `render()` at /metrics over plain HTTP/1.0 on `address` ("127.0.0.1:9100", port 0 = any).
class MetricsHttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& address,
                                                                  std::vector<const ServiceMetrics*> metrics);
  ~MetricsHttpServer();
  int port() const { return port_; }

 private:
  MetricsHttpServer() = default;
  void Loop();
  std::vector<const ServiceMetrics*> metrics_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Splits "host:port" (IPv4 or [IPv6]); INVALID_ARGUMENT naming `flag` otherwise.
absl::Status SplitHostPort(const std::string& address, const std::string& flag, std::string& host, int& port);

}  // namespace monologue
