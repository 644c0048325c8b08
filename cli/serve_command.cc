// `monologue serve [--stt DIR|REPO] [--tts DIR|REPO] [--dialogue DIR|REPO] [--listen ADDR] [--max-streams N]
//  [--max-tts-streams N] [--max-dialogue-streams N] [--metrics-listen ADDR] ...`: the gRPC server of the three
// modes (service/server.h; APIs in service/proto/monologue/v1/). `--model DIR` / `--hf-repo REPO` still name
// the STT model.
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
#include "cli/flag_checks.h"

#ifdef MONOLOGUE_HAVE_SERVICE
#include <pthread.h>

#include <cstdlib>
#include <filesystem>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "core/config/hf_cache.h"
#include "core/hub/hub.h"
#include "service/server.h"
#endif

namespace monologue::cli {
namespace {

struct ServeFlags {
  std::string model_dir;
  std::string hf_repo;
  std::string stt;
  std::string tts;
  std::string dialogue;
  double drain_seconds = 30;
  bool api_key_given = false;
  std::string orphan_flag;  // a mode's flag given without that mode
#ifdef MONOLOGUE_HAVE_SERVICE
  ServerOptions options;
#endif
};

void Error(const std::string& message) { std::fprintf(stderr, "monologue serve: %s\n", message.c_str()); }

#ifdef MONOLOGUE_HAVE_SERVICE
// A model given as a directory, or as OWNER/NAME of the Hugging Face Hub (fetched into the local cache).
absl::StatusOr<std::string> ModelDir(const std::string& value, const std::string& flag) {
  std::error_code ec;
  if (std::filesystem::is_directory(value, ec)) return value;
  if (value.find('/') != std::string::npos && value.find('/') == value.rfind('/') && value.front() != '.' &&
      value.front() != '/') {
    auto snapshot = FetchHfModel(value);  // the cache, else the Hub (core/hub; HF_HUB_OFFLINE=1: cache only)
    if (!snapshot.ok() && hub::IsCacheOnlyMiss(snapshot.status())) snapshot = FindHfSnapshot(value);
    if (!snapshot.ok()) return absl::Status(snapshot.status().code(), absl::StrCat(flag, ": ", snapshot.status().message()));
    return snapshot->string();
  }
  return absl::NotFoundError(absl::StrCat(flag, " ", value, ": no such directory (nor an OWNER/NAME repo)"));
}

int RunServe(ServeFlags f) {
  const int stt_given = (f.model_dir.empty() ? 0 : 1) + (f.hf_repo.empty() ? 0 : 1) + (f.stt.empty() ? 0 : 1);
  if (stt_given > 1) {
    Error("give the STT model once: --stt DIR|REPO (or --model DIR / --hf-repo REPO)");
    return 2;
  }
  if (stt_given == 0 && f.tts.empty() && f.dialogue.empty()) {
    Error("nothing to serve: give --stt, --tts and/or --dialogue (a model directory or OWNER/NAME)");
    return 2;
  }
  // Flags that would be silently without effect, or would silently open the server.
  if (!f.orphan_flag.empty()) {
    Error(f.orphan_flag + " (this server does not host that mode)");
    return 2;
  }
  if (f.options.http_listen.empty() && (!f.options.api_key.empty() || !f.options.web_root.empty())) {
    Error(
        "--api-key and --web-root go with --http (they guard and serve the WebSocket endpoints and the "
        "page)");
    return 2;
  }
  if (f.api_key_given && f.options.api_key.empty()) {
    Error(
        "--api-key is empty: that would leave the WebSocket endpoints open (give a key, or leave the flag "
        "out)");
    return 2;
  }
  if (!f.options.web_root.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(std::filesystem::path(f.options.web_root) / "index.html", ec)) {
      Error(absl::StrCat("--web-root ", f.options.web_root, ": no index.html there"));
      return 2;
    }
  }
  const std::string stt = !f.stt.empty() ? f.stt : !f.hf_repo.empty() ? f.hf_repo : f.model_dir;
  using Target = std::tuple<const std::string*, std::string*, const char*>;
  for (auto [value, target, flag] : {Target{&stt, &f.options.model_dir, "--stt"},
                                     Target{&f.tts, &f.options.tts_model_dir, "--tts"},
                                     Target{&f.dialogue, &f.options.dialogue_model_dir, "--dialogue"}}) {
    if (value->empty()) continue;
    auto dir = ModelDir(*value, flag);
    if (!dir.ok()) {
      Error(std::string(dir.status().message()));
      return 1;
    }
    *target = *dir;
  }
  // Every thread the server starts inherits this mask: only sigwait below sees SIGTERM / SIGINT.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto server = MonologueServer::Start(f.options);
  if (!server.ok()) {
    Error(std::string(server.status().message()));
    return 1;
  }
  std::fprintf(stderr, "monologue serve: serving\n%s\n", (*server)->model_description().c_str());
  if ((*server)->metrics_port() != 0) {
    std::fprintf(stderr, "monologue serve: metrics on port %d (GET /metrics)\n", (*server)->metrics_port());
  }
  const std::string host = f.options.listen.substr(0, f.options.listen.rfind(':'));
  std::printf("monologue serve: listening on %s:%d\n", host.c_str(), (*server)->port());
  if ((*server)->http_port() != 0) {
    // A second line, after the gRPC one (scripts and tests read the gRPC address from the first).
    const std::string http_host = f.options.http_listen.substr(0, f.options.http_listen.rfind(':'));
    std::printf("monologue serve: http on %s:%d\n", http_host.c_str(), (*server)->http_port());
  }
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "monologue serve: %s: draining live streams (up to %g s)\n",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", f.drain_seconds);
  // A second signal does not wait for the drain.
  std::thread([signals, sig] {
    int again = 0;
    sigset_t set = signals;
    sigwait(&set, &again);
    std::fprintf(stderr, "monologue serve: second %s: stopping now, without draining\n",
                 again == SIGTERM ? "SIGTERM" : "SIGINT");
    std::_Exit(again == SIGTERM ? 143 : 130);
  }).detach();
  const int cut = (*server)->Shutdown(f.drain_seconds);
  std::fprintf(stderr, "monologue serve: stopped (%d stream%s cut at the drain deadline)\n", cut,
               cut == 1 ? "" : "s");
  return 0;
}
#endif

}  // namespace

void RegisterServeCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "gRPC streaming server: transcription, synthesis and dialogue (monologue.v1.*)");
  cmd->add_option("--stt", flags->stt, "speech recognition model: a directory or OWNER/NAME in the HF cache");
  cmd->add_option("--tts", flags->tts, "speech synthesis model: a directory or OWNER/NAME in the HF cache");
  cmd->add_option("--dialogue", flags->dialogue, "full-duplex dialogue model: a directory or OWNER/NAME");
  cmd->add_option("--model", flags->model_dir, "STT model directory (same as --stt DIR)");
  cmd->add_option("--hf-repo", flags->hf_repo, "STT model from the local Hugging Face cache (same as --stt REPO)");
#ifdef MONOLOGUE_HAVE_SERVICE
  ServerOptions& o = flags->options;
  cmd->add_option("--listen", o.listen, "gRPC address HOST:PORT (port 0: any free port)")
      ->capture_default_str();
  cmd->add_option("--max-streams", o.max_streams, "concurrent transcription streams = STT batch slots")
      ->capture_default_str();
  CLI::Option* max_tts = cmd->add_option("--max-tts-streams", o.max_tts_streams,
                                         "concurrent synthesis streams = TTS batch slots")
                             ->capture_default_str();
  CLI::Option* max_dialogue = cmd->add_option("--max-dialogue-streams", o.max_dialogue_streams,
                                              "concurrent dialogue streams = dialogue batch slots")
                                  ->capture_default_str();
  CLI::Option* voices = cmd->add_option(
      "--voices", o.voices_dir,
      "TTS voices: a tree laid out like kyutai/tts-voices (default: that repo in the HF cache)");
  CLI::Option* default_voice =
      cmd->add_option("--default-voice", o.default_voice, "voice of synthesis streams that name none")
          ->capture_default_str();
  CLI::Option* tts_temp =
      cmd->add_option("--tts-temp", o.tts_temp, "TTS temperature unless a stream sets its own")
          ->check(FiniteAtLeast(0))
          ->capture_default_str();
  CLI::Option* tts_cfg = cmd->add_option("--tts-cfg-coef", o.tts_cfg_coef, "TTS classifier-free guidance")
                             ->check(FiniteAtLeast(0))
                             ->capture_default_str();
  CLI::Option* tts_max_steps =
      cmd->add_option(
             "--tts-max-steps", o.tts_max_steps,
             "model steps (12.5 a second) after which a synthesis stream ends even with text left; its end "
             "says so (gRPC: end.truncated; WebSocket: an Error message after the audio)")
          ->check(WholeAtLeast(1))
          ->capture_default_str();
  cmd->add_option("--threads", o.threads, "CPU threads for the models (default: libtorch's)")
      ->check(ThreadCount());
  cmd->add_option("--metrics-listen", o.metrics_listen,
                  "Prometheus metrics address HOST:PORT (GET /metrics)");
  cmd->add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dtype", o.dtype,
                  "LM dtype: f32, bf16, f16, int8, int4 (CPU: quantised weights, f32 activations; default: "
                  "f32 on CPU, int8 there for a quantize: true checkpoint, bf16 on CUDA)");
  cmd->add_option("--max-message-bytes", o.max_message_bytes, "largest request message")
      ->check(WholeAtLeast(1024))
      ->capture_default_str();
  cmd->add_option("--max-ahead-seconds", o.max_ahead_seconds,
                  "audio a stream may send ahead of the model before the server stops reading")
      ->check(FiniteInRange(0.2, 3600))  // below ~3 frames the reads stalled for good (0 hung every stream)
      ->capture_default_str();
  cmd->add_option("--idle-timeout", o.idle_timeout_seconds, "seconds without a request before OUT_OF_RANGE")
      ->check(FiniteInRange(0.1, 86400))
      ->capture_default_str();
  cmd->add_option("--max-stream-seconds", o.max_stream_seconds, "audio per stream before OUT_OF_RANGE")
      ->check(FiniteInRange(1, 1e7))
      ->capture_default_str();
  cmd->add_option("--http", o.http_listen,
                  "also serve Kyutai's WebSocket protocols and the web page on HOST:PORT (/api/asr-streaming, "
                  "/api/tts_streaming, /api/chat, /; docs/websocket.md)");
  CLI::Option* api_key =
      cmd->add_option("--api-key", o.api_key,
                      "require this key on the WebSocket endpoints (header kyutai-api-key or query auth_id)");
  cmd->add_option("--web-root", o.web_root, "serve the web page from this folder (default: the embedded copy)");
  cmd->add_option("--http-max-message-bytes", o.http_max_message_bytes, "largest WebSocket message")
      ->check(WholeAtLeast(1024))
      ->capture_default_str();
  cmd->add_option("--max-pending-responses", o.max_pending_responses,
                  "responses a stream may have queued for a client that does not read (then reads pause)")
      ->check(WholeAtLeast(1))
      ->capture_default_str();
  cmd->add_option("--drain-seconds", flags->drain_seconds, "on SIGTERM, how long live streams may finish")
      ->check(FiniteInRange(0, 86400))
      ->capture_default_str();
  cmd->callback([=, &exit_code] {
    flags->api_key_given = api_key->count() > 0;
    // A mode's flags without that mode would be silently without effect.
    for (CLI::Option* opt : {max_tts, voices, default_voice, tts_temp, tts_cfg, tts_max_steps}) {
      if (opt->count() > 0 && flags->tts.empty()) flags->orphan_flag = opt->get_name() + " goes with --tts";
    }
    if (max_dialogue->count() > 0 && flags->dialogue.empty()) {
      flags->orphan_flag = "--max-dialogue-streams goes with --dialogue";
    }
    exit_code = RunServe(*flags);
  });
#else
  cmd->callback([&exit_code] {
    Error(
        "this build has no gRPC service (configure with -DMONOLOGUE_WITH_GRPC=ON, sentencepiece and FFmpeg)");
    exit_code = 2;
  });
#endif
}

}  // namespace monologue::cli
