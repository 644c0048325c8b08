// `monologue transcribe INPUT... [--model DIR | --hf-repo REPO] [--format txt|json|srt|vtt] [-o OUT]
//  [--batch-size N] [--progress] [--device cpu|cuda]`: streaming speech-to-text with a DSM STT model.
//
// INPUT: any audio file FFmpeg decodes, or `-` for stdin (e.g. `ffmpeg ... -f wav - | monologue transcribe
// -`). Several inputs are transcribed together, one batch slot each (--batch-size slots, default: one per
// input up to 8); a slot that finishes takes the next input.
//
// Output:
//   one input:       -o FILE, or stdout when -o is absent or "-". With txt to stdout, the text is printed
//                    piece by piece as the model emits it (flushed), so live input shows words as decided.
//   several inputs:  -o absent: stdout, in input order; txt/srt/vtt are preceded by a "==> INPUT <==" line,
//                    json gives one compact JSON object per line (JSON Lines).
//                    -o containing "{name}" and/or "{index}": a file name pattern ({name}: the input's file
//                    name without extension, "stdin" for -; {index}: its 1-based position);
//                    otherwise -o is a directory (created), each output written as DIR/<name>.<format>.
//                    Two inputs that map to the same output file are an error (use {index}).
// Errors (exit status 1; the other inputs are still transcribed): an input that cannot be opened or holds no
// audio. An input that breaks off half-way is transcribed up to the damage with a warning on stderr (and in
// the json "warning" field); that is not an error.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/flag_checks.h"
#include "cli/remote_transcribe.h"

#if defined(MONOLOGUE_HAVE_ASR) && defined(MONOLOGUE_HAVE_FFMPEG)
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "asr/asr_engine.h"
#include "asr/transcript.h"
#include "core/audio/audio_decoder.h"
#include "core/config/hf_cache.h"
#include "core/io/output_file.h"
#endif

namespace monologue::cli {
namespace {

struct TranscribeFlags {
  std::vector<std::string> inputs;
  std::string model_dir;
  std::string hf_repo;
  std::string revision = "main";
  std::string lora;
  std::string format = "txt";
  std::string output;
  int batch_size = 0;
  bool progress = false;
  bool no_progress = false;
  std::string device = "cpu";
  std::string dtype;
  int threads = 0;
};

void Error(const std::string& message) {
  std::fprintf(stderr, "monologue transcribe: %s\n", message.c_str());
}

#if defined(MONOLOGUE_HAVE_ASR) && defined(MONOLOGUE_HAVE_FFMPEG)

namespace fs = std::filesystem;

std::string InputName(const std::string& path) {
  if (path == "-") return "stdin";
  std::string stem = fs::path(path).stem().string();
  return stem.empty() ? "input" : stem;
}

// "PATH: message" unless the message already names the input.
std::string Named(const std::string& path, const std::string& message) {
  const std::string label = path == "-" ? "stdin" : path;
  return message.find(label) != std::string::npos ? message : absl::StrCat(label, ": ", message);
}

struct Job {
  size_t index = 0;
  std::string path;
  std::string output;  // file path; empty = stdout
  std::unique_ptr<AudioDecoder> decoder;
  std::unique_ptr<AsrSession> session;
  AsrTranscript transcript;
  std::optional<double> duration;
  int64_t samples = 0;
  bool input_done = false;
  bool empty = false;
  bool live = false;          // txt pieces straight to stdout
  bool printed_text = false;  // (live) something was printed: later pieces keep their leading space
};

class Progress {
 public:
  Progress(bool enabled, double total_seconds, size_t inputs)
      : enabled_(enabled), total_(total_seconds), inputs_(inputs) {}
  void Update(double done_seconds, size_t finished, bool force = false) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    std::string line;
    if (total_ > 0) {
      const double frac = std::min(1.0, done_seconds / total_);
      const int width = 30, filled = static_cast<int>(frac * width);
      line = absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "] ",
                          static_cast<int>(frac * 100), "% ");
    }
    absl::StrAppend(&line, absl::StrFormat("%.1f", done_seconds));
    if (total_ > 0) absl::StrAppend(&line, absl::StrFormat("/%.1f", total_));
    absl::StrAppend(&line, " s of audio, ", finished, "/", inputs_, " inputs");
    std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
    std::fflush(stderr);
    shown_ = true;
  }
  void Finish() {
    if (shown_) std::fprintf(stderr, "\n");
  }

 private:
  bool enabled_;
  double total_;
  size_t inputs_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

absl::Status WriteFile(const std::string& path, const std::string& text) {
  return WriteFileReplacing(path, text);
}

int RunTranscribe(const TranscribeFlags& f) {
  auto format_or = ParseTranscriptFormat(f.format);
  if (!format_or.ok()) {
    Error(std::string(format_or.status().message()));
    return 2;
  }
  const TranscriptFormat format = *format_or;
  if (std::count(f.inputs.begin(), f.inputs.end(), std::string("-")) > 1) {
    Error("stdin (-) can be given only once");
    return 2;
  }
  const size_t n = f.inputs.size();

  // Output destinations, decided (and checked for clashes) before any work.
  std::vector<std::string> outputs(n);
  const bool several = n > 1;
  if (!several) {
    if (!f.output.empty() && f.output != "-") outputs[0] = f.output;
  } else if (!f.output.empty()) {
    const bool pattern =
        f.output.find("{name}") != std::string::npos || f.output.find("{index}") != std::string::npos;
    std::set<std::string> seen;
    for (size_t i = 0; i < n; ++i) {
      const std::string name = InputName(f.inputs[i]);
      outputs[i] =
          pattern
              ? absl::StrReplaceAll(f.output, {{"{name}", name}, {"{index}", std::to_string(i + 1)}})
              : (fs::path(f.output) / absl::StrCat(name, ".", TranscriptFormatExtension(format))).string();
      if (!seen.insert(fs::absolute(outputs[i]).lexically_normal().string()).second) {
        Error(absl::StrCat("inputs ", f.inputs[i], " and an earlier one would both be written to ",
                           outputs[i], " (use -o with a {index} pattern)"));
        return 2;
      }
    }
    if (!pattern) {
      std::error_code ec;
      fs::create_directories(f.output, ec);
      if (ec || !fs::is_directory(f.output)) {
        Error(absl::StrCat("-o ", f.output, ": cannot create the output directory (", ec.message(), ")"));
        return 1;
      }
    }
  }

  // Unwritable outputs fail now, not after the transcription.
  for (const std::string& path : outputs) {
    if (path.empty()) continue;
    if (absl::Status st = CheckWritable(path); !st.ok()) {
      Error(std::string(st.message()));
      return 1;
    }
  }

  // The model.
  std::string model_dir = f.model_dir;
  if (model_dir.empty()) {
    const std::string repo = f.hf_repo.empty() ? "kyutai/stt-1b-en_fr" : f.hf_repo;
    auto snapshot = ResolveHfRepoSnapshot(repo, f.revision);
    if (!snapshot.ok()) {
      Error(std::string(snapshot.status().message()));
      return 1;
    }
    model_dir = *snapshot;
  }
  AsrEngineOptions options;
  options.batch_size = static_cast<int>(std::min<size_t>(f.batch_size > 0 ? f.batch_size : 8, n));
  options.device = f.device;
  options.dtype = f.dtype;
  options.threads = f.threads;
  options.lora_path = f.lora;
  auto engine_or = AsrEngine::Load(model_dir, options);
  if (!engine_or.ok()) {
    Error(std::string(engine_or.status().message()));
    return 1;
  }
  AsrEngine& engine = **engine_or;
  const AsrModelInfo& info = engine.info();
  if (!info.lm_weights.empty()) std::fprintf(stderr, "monologue transcribe: %s\n", info.lm_weights.c_str());

  const bool live_txt = !several && outputs[0].empty() && format == TranscriptFormat::kTxt;
  const bool stdout_tty = isatty(STDOUT_FILENO) != 0;
  const bool progress_on =
      !f.no_progress && (f.progress || (isatty(STDERR_FILENO) != 0 && !(live_txt && stdout_tty)));

  int exit_code = 0;
  std::vector<std::unique_ptr<Job>> jobs;
  std::vector<std::string> stdout_results(n);  // several inputs to stdout: printed in input order
  std::vector<bool> result_ready(n, false);
  size_t next_stdout = 0;
  auto flush_stdout = [&]() {
    while (next_stdout < n && result_ready[next_stdout]) {
      std::fputs(stdout_results[next_stdout].c_str(), stdout);
      ++next_stdout;
    }
    std::fflush(stdout);
  };

  // Durations for the progress bar (known for most files once opened; stdin has none).
  double total_seconds = 0, done_seconds = 0;
  size_t finished = 0, next = 0;
  Progress progress(progress_on, 0, n);
  std::vector<std::unique_ptr<Job>> active;

  auto finish_job = [&](Job& job) {
    ++finished;
    if (job.empty) {
      result_ready[job.index] = true;
      return;
    }
    job.transcript.duration_s = static_cast<double>(job.samples) / info.sample_rate;
    if (job.live) {
      std::fputs("\n", stdout);
      std::fflush(stdout);
      return;
    }
    std::string text;
    if (several && job.output.empty()) {
      if (format == TranscriptFormat::kJson) {
        text = FormatTranscript(job.transcript, format, info, /*compact=*/true);
      } else {
        text = absl::StrCat("==> ", job.path, " <==\n", FormatTranscript(job.transcript, format, info));
      }
    } else {
      text = FormatTranscript(job.transcript, format, info);
    }
    if (job.output.empty()) {
      stdout_results[job.index] = std::move(text);
      result_ready[job.index] = true;
      flush_stdout();
    } else if (absl::Status st = WriteFile(job.output, text); !st.ok()) {
      Error(std::string(st.message()));
      exit_code = 1;
    }
  };

  while (next < n || !active.empty()) {
    // Fill free slots.
    while (next < n && static_cast<int>(active.size()) < engine.batch_size()) {
      auto job = std::make_unique<Job>();
      job->index = next;
      job->path = f.inputs[next];
      job->output = outputs[next];
      job->transcript.input = job->path;
      job->live = live_txt;
      ++next;
      auto decoder = AudioDecoder::Open(job->path);
      if (!decoder.ok()) {
        Error(Named(job->path, std::string(decoder.status().message())));
        exit_code = 1;
        job->empty = true;
        finish_job(*job);
        flush_stdout();
        continue;
      }
      job->decoder = std::move(*decoder);
      if (auto d = job->decoder->info().duration_seconds; d.has_value()) {
        total_seconds += *d;
        progress = Progress(progress_on, total_seconds, n);
      }
      auto session = engine.OpenSession();
      if (!session.ok()) {
        Error(std::string(session.status().message()));
        return 1;
      }
      job->session = std::move(*session);
      active.push_back(std::move(job));
    }
    // One frame of audio per input.
    for (auto& job : active) {
      if (job->input_done) continue;
      auto samples = job->decoder->Read(static_cast<size_t>(info.frame_size));
      if (!samples.ok()) {
        job->input_done = true;
        if (job->samples == 0) {
          Error(Named(job->path, std::string(samples.status().message())));
          job->empty = true;
          exit_code = 1;
        } else {
          const std::string warning =
              absl::StrCat(samples.status().message(), "; transcribed the ",
                           absl::StrFormat("%.2f", job->samples / 24000.0), " s decoded before it");
          std::fprintf(stderr, "%smonologue transcribe: warning: %s\n", progress_on ? "\n" : "",
                       Named(job->path, warning).c_str());
          job->transcript.warning = warning;
        }
        (void)job->session->Close();
        continue;
      }
      if (samples->empty()) {
        if (!job->decoder->at_end()) continue;
        job->input_done = true;
        if (job->samples == 0) {
          Error(absl::StrCat(job->path, ": no audio in the input"));
          job->empty = true;
          exit_code = 1;
        }
        (void)job->session->Close();
        continue;
      }
      job->samples += static_cast<int64_t>(samples->size());
      done_seconds += static_cast<double>(samples->size()) / info.sample_rate;
      if (absl::Status st = job->session->PushAudio(*samples); !st.ok()) {
        Error(std::string(st.message()));
        return 1;
      }
    }
    auto stepped = engine.Step();
    if (!stepped.ok()) {
      Error(std::string(stepped.status().message()));
      return 1;
    }
    // Events.
    for (auto it = active.begin(); it != active.end();) {
      Job& job = **it;
      bool ended = false;
      for (const AsrEvent& e : job.session->PollEvents()) {
        job.transcript.Add(e);
        if (e.kind == AsrEvent::Kind::kText && job.live && !job.empty) {
          std::string piece = e.text;
          if (!job.printed_text) {
            const size_t start = piece.find_first_not_of(' ');
            piece = start == std::string::npos ? std::string() : piece.substr(start);
          }
          if (!piece.empty()) {
            std::fputs(piece.c_str(), stdout);
            std::fflush(stdout);
            job.printed_text = true;
          }
        }
        if (e.kind == AsrEvent::Kind::kEnd) ended = true;
      }
      if (ended) {
        finish_job(job);
        it = active.erase(it);
      } else {
        ++it;
      }
    }
    progress.Update(done_seconds, finished);
  }
  progress.Update(done_seconds, finished, /*force=*/true);
  progress.Finish();
  flush_stdout();
  return exit_code;
}

#else  // no ASR or no FFmpeg in this build

int RunTranscribe(const TranscribeFlags&) {
  Error(
      "this build has no speech recognition (it needs sentencepiece and FFmpeg: "
      "MONOLOGUE_WITH_SENTENCEPIECE, "
      "MONOLOGUE_WITH_FFMPEG)");
  return 1;
}

#endif

}  // namespace

void RegisterTranscribeCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<TranscribeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "transcribe",
      "Speech to text with a DSM STT model (kyutai/stt-1b-en_fr, kyutai/stt-2.6b-en), streaming");
  cmd->add_option("inputs", flags->inputs, "audio files (any format FFmpeg reads), or - for stdin")
      ->required();
  auto* model =
      cmd->add_option("--model", flags->model_dir, "model directory (config.json, weights, tokenizer)");
  cmd->add_option(
         "--hf-repo", flags->hf_repo,
         "Hugging Face repo, fetched into the local cache on first use (default kyutai/stt-1b-en_fr when "
         "--model is not given; HF_HUB_OFFLINE=1: cache only)")
      ->excludes(model);
  cmd->add_option("--revision", flags->revision, "--hf-repo's branch, tag or commit (default main)")
      ->excludes(model);
  cmd->add_option("--lora", flags->lora, "a LoRA adapter .safetensors fused into the LM at load");
  CLI::Option* format =
      cmd->add_option(
             "--format", flags->format,
             "txt, json (words, timestamps, token ids, VAD), srt, vtt (default: -o's extension when it "
             "is one of these, else txt)")
          ->check(CLI::IsMember({"txt", "json", "srt", "vtt"}));
  cmd->add_option(
      "-o,--output", flags->output,
      "output file (one input); with several inputs a directory, or a pattern with {name} / {index}");
  cmd->add_option("--batch-size", flags->batch_size, "inputs transcribed together (default: all, at most 8)")
      ->check(WholeAtLeast(1));
  cmd->add_flag("--progress", flags->progress, "progress bar on stderr (default: when stderr is a terminal)");
  cmd->add_flag("--no-progress", flags->no_progress, "never show the progress bar");
  cmd->add_option("--device", flags->device, "cpu (default), cuda or cuda:N");
  cmd->add_option("--dtype", flags->dtype,
                  "LM dtype: f32, bf16, f16, int8 or int4 (quantised weights, CPU only) (default: f32 on "
                  "CPU, int8 there for a quantize: true checkpoint, bf16 on CUDA)");
  cmd->add_option("--threads", flags->threads,
                  "CPU threads for the model (default: libtorch's, one per core)")
      ->check(ThreadCount());
  // Client path (cli/remote_transcribe.cc): stream the input to `monologue serve` instead of a local model.
  auto remote = std::make_shared<RemoteTranscribeFlags>();
  cmd->add_option("--server", remote->server, "HOST:PORT of a `monologue serve`: transcribe there (txt/json)")
      ->check(ServerAddress());
  cmd->add_option("--speed", remote->speed,
                  "with --server: send at N x real time, 0.1 to 1000 (default 0: as fast as taken)")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            double x = -1;
            // 1e-9 paced a stream to nothing and hung the client; nan, inf and -1 were taken.
            if (!absl::SimpleAtod(text, &x) || !(x == 0 || (x >= 0.1 && x <= 1000))) {
              return "must be 0 (as fast as the server takes it) or a number from 0.1 to 1000, got " + text;
            }
            return std::string();
          },
          "0 or 0.1..1000"));
  cmd->callback([cmd, flags, remote, format, &exit_code] {
    if (!remote->server.empty()) {
      const std::string local =
          LocalFlagGivenWithServer(*cmd, {"--model", "--hf-repo", "--revision", "--lora", "--device",
                                          "--dtype", "--batch-size", "--threads"});
      if (!local.empty()) {
        Error(local);
        exit_code = 2;
        return;
      }
    }
    // -o out.srt (or a pattern such as {name}.vtt) asks for that format; an explicit --format wins.
    if (format->count() == 0) {
      std::string ext = fs::path(flags->output).extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext == ".json" || ext == ".srt" || ext == ".vtt" || ext == ".txt") flags->format = ext.substr(1);
    }
    if (remote->server.empty() && remote->speed != 0) {
      Error("--speed goes with --server (it paces the audio sent to a server)");
      exit_code = 2;
      return;
    }
    if (!remote->server.empty()) {
      remote->inputs = flags->inputs;
      remote->format = flags->format;
      remote->output = flags->output;
      exit_code = RunRemoteTranscribe(*remote);
      return;
    }
    exit_code = RunTranscribe(*flags);
  });
}

}  // namespace monologue::cli
