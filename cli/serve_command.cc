// `monologue serve --model DIR | --hf-repo REPO [--listen ADDR] [--max-streams N] [--metrics-listen ADDR]`:
// the gRPC transcription server (service/server.h; API in service/proto/monologue/v1/transcription.proto).
//
// Listens on loopback (127.0.0.1:50051) unless told otherwise. Prints one line
// "monologue serve: listening on HOST:PORT" on stdout once it accepts streams (port 0 picks a free port; the
// line gives the real one). SIGTERM / SIGINT: stop accepting (health NOT_SERVING, new streams UNAVAILABLE),
// let live streams finish for up to --drain-seconds, end the rest with UNAVAILABLE, exit 0.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <string>

#include "cli/command.h"

#ifdef MONOLOGUE_HAVE_SERVICE
#include <pthread.h>

#include "asr/asr_engine.h"
#include "service/server.h"
#endif

namespace monologue::cli {
namespace {

struct ServeFlags {
  std::string model_dir;
  std::string hf_repo;
  double drain_seconds = 30;
#ifdef MONOLOGUE_HAVE_SERVICE
  ServerOptions options;
#endif
};

void Error(const std::string& message) { std::fprintf(stderr, "monologue serve: %s\n", message.c_str()); }

#ifdef MONOLOGUE_HAVE_SERVICE
int RunServe(ServeFlags f) {
  if (f.model_dir.empty() == f.hf_repo.empty()) {
    Error("pass exactly one of --model DIR or --hf-repo OWNER/NAME");
    return 2;
  }
  if (!f.hf_repo.empty()) {
    auto dir = ResolveHfRepoSnapshot(f.hf_repo);
    if (!dir.ok()) {
      Error(std::string(dir.status().message()));
      return 1;
    }
    f.model_dir = *dir;
  }
  f.options.model_dir = f.model_dir;
  // Every thread the server starts inherits this mask: only sigwait below sees SIGTERM / SIGINT.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto server = TranscriptionServer::Start(f.options);
  if (!server.ok()) {
    Error(std::string(server.status().message()));
    return 1;
  }
  std::fprintf(stderr, "monologue serve: model %s\n", (*server)->model_description().c_str());
  if ((*server)->metrics_port() != 0) {
    std::fprintf(stderr, "monologue serve: metrics on port %d (GET /metrics)\n", (*server)->metrics_port());
  }
  const std::string host = f.options.listen.substr(0, f.options.listen.rfind(':'));
  std::printf("monologue serve: listening on %s:%d\n", host.c_str(), (*server)->port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "monologue serve: %s: draining live streams (up to %g s)\n",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", f.drain_seconds);
  const int cut = (*server)->Shutdown(f.drain_seconds);
  std::fprintf(stderr, "monologue serve: stopped (%d stream%s cut at the drain deadline)\n", cut,
               cut == 1 ? "" : "s");
  return 0;
}
#endif

}  // namespace

void RegisterServeCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* cmd =
      app.add_subcommand("serve", "gRPC streaming transcription server (monologue.v1.Transcription)");
  cmd->add_option("--model", flags->model_dir, "STT model directory (config.json + weights + tokenizer)");
  cmd->add_option("--hf-repo", flags->hf_repo,
                  "STT model from the local Hugging Face cache, e.g. kyutai/stt-1b-en_fr");
#ifdef MONOLOGUE_HAVE_SERVICE
  ServerOptions& o = flags->options;
  cmd->add_option("--listen", o.listen, "gRPC address HOST:PORT (port 0: any free port)")
      ->capture_default_str();
  cmd->add_option("--max-streams", o.max_streams, "concurrent streams = batch slots")->capture_default_str();
  cmd->add_option("--metrics-listen", o.metrics_listen,
                  "Prometheus metrics address HOST:PORT (GET /metrics)");
  cmd->add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dtype", o.dtype, "LM dtype: f32, bf16, f16 (default: f32 on CPU, bf16 on CUDA)");
  cmd->add_option("--max-message-bytes", o.max_message_bytes, "largest request message")
      ->capture_default_str();
  cmd->add_option("--max-ahead-seconds", o.max_ahead_seconds,
                  "audio a stream may send ahead of the model before the server stops reading")
      ->capture_default_str();
  cmd->add_option("--idle-timeout", o.idle_timeout_seconds, "seconds without a request before OUT_OF_RANGE")
      ->capture_default_str();
  cmd->add_option("--max-stream-seconds", o.max_stream_seconds, "audio per stream before OUT_OF_RANGE")
      ->capture_default_str();
  cmd->add_option("--drain-seconds", flags->drain_seconds, "on SIGTERM, how long live streams may finish")
      ->capture_default_str();
  cmd->callback([flags, &exit_code] { exit_code = RunServe(*flags); });
#else
  cmd->callback([&exit_code] {
    Error(
        "this build has no gRPC service (configure with -DMONOLOGUE_WITH_GRPC=ON, sentencepiece and FFmpeg)");
    exit_code = 2;
  });
#endif
}

}  // namespace monologue::cli
