// `monologue synthesize`: streaming text to speech with a DSM TTS model (kyutai/tts-1.6b-en_fr).
//
//   monologue synthesize "Hello world." -o hello.wav --voice expresso/ex03-ex01_happy_001_channel1_334s.wav
//   some-llm | monologue synthesize - -o - | aplay      # speaks as the text arrives
//   monologue synthesize --text-file lines.txt -o out/  # one utterance per line, batched (one slot each)
//   monologue synthesize --script dialogue.json --voice A --voice B -o dialogue.wav
//
// Inputs (exactly one kind): TEXT... (joined with spaces: one utterance), `-` (stdin, read as it arrives),
// --text-file F (repeatable; every non-empty line is an utterance), --script F (a JSON list of turns, spoken
// alternately by the first and second --voice).
// Outputs: -o FILE (.wav, .ogg/.opus; `-` = stdout, written frame by frame: WAV with an open length, or raw
// with --format s16le|f32le). Several utterances: -o DIR (DIR/<name>.<ext>) or a pattern with {name} /
// {index}, where {name} is the text file's stem and the line number ("lines-3"); --words-out / --codes-out
// take the same patterns.
// The audio is what the DSM script writes: every frame after the audio delay, decoded in streaming order.
// Errors (exit status 1; the other utterances are still synthesized): empty text, a voice that is not found
// or has the wrong shape, an unwritable output.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cli/command.h"

#if defined(MONOLOGUE_HAVE_TTS) && defined(MONOLOGUE_HAVE_FFMPEG)
#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "core/audio/audio_writer.h"
#include "core/config/hf_cache.h"
#include "core/hub/hub.h"
#include "core/io/safetensors.h"
#include "nlohmann/json.hpp"
#include "tts/tts_engine.h"
#endif
#if defined(MONOLOGUE_HAVE_SERVICE) && defined(MONOLOGUE_HAVE_FFMPEG)
#include "service/remote_synthesize.h"
#endif

namespace monologue::cli {
namespace {

struct SynthesizeFlags {
  std::vector<std::string> text;
  std::vector<std::string> text_files;
  std::string script;
  std::string model_dir;
  std::string hf_repo;
  std::string revision = "main";
  std::string lora;
  std::vector<std::string> voices;
  std::string voices_dir;
  std::string output;
  std::string format;
  std::string words_out;
  std::string codes_out;
  double temp = 0.6;
  std::optional<uint64_t> seed;
  double cfg_coef = 2.0;
  int padding_between = 1;
  double padding_bonus = 0;
  int n_q = 0;
  int batch_size = 0;
  int threads = 0;
  std::string device = "cpu";
  std::string dtype;
  bool progress = false;
  bool no_progress = false;
  std::string server;
  bool temp_set = false, cfg_set = false, padding_set = false, bonus_set = false;
};

void Error(const std::string& message) {
  std::fprintf(stderr, "monologue synthesize: %s\n", message.c_str());
}

#if defined(MONOLOGUE_HAVE_TTS) && defined(MONOLOGUE_HAVE_FFMPEG)

namespace fs = std::filesystem;

// One utterance to synthesize.
struct Utterance {
  std::string name;                // for output patterns
  std::vector<std::string> turns;  // empty with stdin
  bool from_stdin = false;
};

// Raw PCM to a file or stdout (s16le / f32le), frame by frame.
class RawWriter : public AudioWriter {
 public:
  RawWriter(FILE* file, bool owned, bool float32) : file_(file), owned_(owned), float32_(float32) {}
  ~RawWriter() override { (void)Close(); }
  absl::Status Write(std::span<const float> samples) override {
    if (file_ == nullptr) return absl::FailedPreconditionError("write after close");
    size_t written;
    if (float32_) {
      written = std::fwrite(samples.data(), sizeof(float), samples.size(), file_);
    } else {
      std::vector<int16_t> pcm(samples.size());
      for (size_t i = 0; i < samples.size(); ++i) {
        const float x = std::isnan(samples[i]) ? 0.0f : samples[i];
        pcm[i] = static_cast<int16_t>(std::clamp(std::lround(x * 32768.0f), -32768L, 32767L));
      }
      written = std::fwrite(pcm.data(), sizeof(int16_t), pcm.size(), file_);
    }
    std::fflush(file_);
    if (written != samples.size()) return absl::UnavailableError(std::strerror(errno));
    samples_ += static_cast<int64_t>(samples.size());
    return absl::OkStatus();
  }
  absl::Status Close() override {
    if (file_ == nullptr) return absl::OkStatus();
    const bool ok = owned_ ? std::fclose(file_) == 0 : std::fflush(file_) == 0;
    file_ = nullptr;
    return ok ? absl::OkStatus() : absl::UnavailableError("cannot finish writing the raw audio");
  }
  int64_t samples_written() const override { return samples_; }

 private:
  FILE* file_;
  bool owned_;
  bool float32_;
  int64_t samples_ = 0;
};

absl::StatusOr<std::unique_ptr<AudioWriter>> OpenOutput(const std::string& path, const std::string& format) {
  std::string fmt = format;
  if (fmt.empty()) {
    const std::string ext = fs::path(path).extension().string();
    fmt = path == "-" ? "wav" : ext == ".ogg" || ext == ".opus" ? "ogg" : ext == ".raw" ? "s16le" : "wav";
  }
  if (fmt == "s16le" || fmt == "f32le") {
    FILE* f = path == "-" ? stdout : std::fopen(path.c_str(), "wb");
    if (f == nullptr) return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
    return std::unique_ptr<AudioWriter>(new RawWriter(f, path != "-", fmt == "f32le"));
  }
  AudioWriterOptions options;
  options.format = fmt;
  std::error_code ec;
  if (path != "-" && fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path(), ec);
  auto writer = OpenAudioWriter(path, options);
  if (!writer.ok()) return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", writer.status().message()));
  return writer;
}

std::string Expand(const std::string& pattern, const Utterance& u, size_t index, const std::string& ext,
                   bool several) {
  if (pattern.empty()) return "";
  const bool is_pattern = pattern.find("{name}") != std::string::npos || pattern.find("{index}") != std::string::npos;
  if (is_pattern) return absl::StrReplaceAll(pattern, {{"{name}", u.name}, {"{index}", std::to_string(index + 1)}});
  if (!several) return pattern;
  return (fs::path(pattern) / absl::StrCat(u.name, ext)).string();
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::error_code ec;
  if (fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path(), ec);
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

struct Job {
  size_t index = 0;
  Utterance utterance;
  std::string audio_path, words_path, codes_path;
  std::unique_ptr<TtsSession> session;
  std::unique_ptr<AudioWriter> writer;
  nlohmann::json words = nlohmann::json::array();
  int64_t samples = 0;
  bool failed = false;
};

absl::StatusOr<std::vector<std::string>> ReadScript(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("--script ", path, ": cannot open"));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat("--script ", path, ": not valid JSON"));
  if (!j.is_array() || j.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--script ", path, ": expected a non-empty JSON list of turns (strings)"));
  }
  std::vector<std::string> turns;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("--script ", path, ": turn ", i + 1, " is not a string"));
    }
    turns.push_back(j[i].get<std::string>());
  }
  return turns;
}

// --server ADDR: the same inputs and outputs through monologue.v1.Synthesis, one utterance after another.
int RunRemote(const SynthesizeFlags& f, std::vector<std::unique_ptr<Job>>& jobs) {
#if defined(MONOLOGUE_HAVE_SERVICE)
  if (!f.codes_out.empty()) {
    Error("--codes-out needs a local model (the server sends audio, not codes)");
    return 2;
  }
  if (!f.model_dir.empty() || !f.hf_repo.empty()) {
    Error("--server: the model is the server's (drop --model / --hf-repo)");
    return 2;
  }
  int exit_code = 0;
  for (auto& job_ptr : jobs) {
    Job& job = *job_ptr;
    auto writer = OpenOutput(job.audio_path, f.format);
    if (!writer.ok()) {
      Error(std::string(writer.status().message()));
      exit_code = 1;
      continue;
    }
    job.writer = std::move(*writer);
    RemoteSynthesizeOptions o;
    o.server = f.server;
    o.voices = f.voices;
    if (f.temp_set) o.temperature = f.temp;
    if (f.seed.has_value()) o.seed = *f.seed;
    if (f.cfg_set) o.cfg_coef = f.cfg_coef;
    if (f.padding_set) o.padding_between = f.padding_between;
    if (f.bonus_set) o.padding_bonus = f.padding_bonus;
    size_t turn = 0;
    bool stdin_done = false;
    auto next_text = [&]() -> std::optional<RemoteTextChunk> {
      if (job.utterance.from_stdin) {
        if (stdin_done) return std::nullopt;
        char buf[4096];
        while (true) {
          const ssize_t got = ::read(STDIN_FILENO, buf, sizeof(buf));
          if (got < 0 && errno == EINTR) continue;
          if (got <= 0) {
            stdin_done = true;
            return std::nullopt;
          }
          return RemoteTextChunk{std::string(buf, static_cast<size_t>(got)), false};
        }
      }
      if (turn >= job.utterance.turns.size()) return std::nullopt;
      const size_t t = turn++;
      return RemoteTextChunk{job.utterance.turns[t], t + 1 < job.utterance.turns.size()};
    };
    absl::Status write_status;
    auto result = RemoteSynthesize(
        o, next_text,
        [&](std::span<const float> samples) {
          if (write_status.ok()) write_status = job.writer->Write(samples);
        },
        [&](const std::string& text, double start, double end) {
          job.words.push_back({{"text", text}, {"start", start}, {"end", end}});
        });
    absl::Status close_status = job.writer->Close();
    if (!result.ok() || !write_status.ok() || !close_status.ok()) {
      const absl::Status& st = !result.ok() ? result.status() : !write_status.ok() ? write_status : close_status;
      Error(absl::StrCat(jobs.size() > 1 ? absl::StrCat(job.utterance.name, ": ") : "", st.message()));
      exit_code = 1;
      std::error_code ec;
      if (!result.ok() && job.writer->samples_written() == 0 && job.audio_path != "-") fs::remove(job.audio_path, ec);
      continue;
    }
    if (!job.words_path.empty()) {
      if (absl::Status st = WriteText(job.words_path, job.words.dump(2) + "\n"); !st.ok()) {
        Error(std::string(st.message()));
        exit_code = 1;
      }
    }
  }
  return exit_code;
#else
  (void)jobs;
  Error("--server: this build has no gRPC client (MONOLOGUE_WITH_GRPC)");
  return 1;
#endif
}

int RunSynthesize(const SynthesizeFlags& f) {
  // Inputs.
  const bool use_stdin = f.text.size() == 1 && f.text[0] == "-";
  const int kinds = (f.text.empty() ? 0 : 1) + (f.text_files.empty() ? 0 : 1) + (f.script.empty() ? 0 : 1);
  if (kinds != 1) {
    Error("give exactly one of: TEXT..., - (stdin), --text-file F, --script F");
    return 2;
  }
  std::vector<Utterance> utterances;
  int exit_code = 0;
  if (use_stdin) {
    utterances.push_back({"stdin", {}, true});
  } else if (!f.text.empty()) {
    std::string joined;
    for (const std::string& t : f.text) absl::StrAppend(&joined, joined.empty() ? "" : " ", t);
    utterances.push_back({"text", {joined}, false});
  } else if (!f.script.empty()) {
    auto turns = ReadScript(f.script);
    if (!turns.ok()) {
      Error(std::string(turns.status().message()));
      return 1;
    }
    utterances.push_back({fs::path(f.script).stem().string(), *turns, false});
  } else {
    for (const std::string& file : f.text_files) {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        Error(absl::StrCat("--text-file ", file, ": cannot open"));
        exit_code = 1;
        continue;
      }
      std::string line;
      int number = 0;
      while (std::getline(in, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        utterances.push_back({absl::StrCat(fs::path(file).stem().string(), "-", number), {line}, false});
      }
    }
    if (utterances.empty()) {
      if (exit_code == 0) Error("the text files hold no text");
      return 1;
    }
  }
  const size_t n = utterances.size();
  const bool several = n > 1;
  if (f.output.empty()) {
    Error("-o OUT is required (a .wav/.ogg file, - for stdout, or a directory / {name} pattern for several)");
    return 2;
  }
  if (several && f.output == "-") {
    Error("-o -: several utterances cannot all go to stdout (use a directory or a {index} pattern)");
    return 2;
  }
  const std::string ext = f.format == "ogg" ? ".ogg" : f.format == "s16le" || f.format == "f32le" ? ".raw" : ".wav";
  std::vector<std::unique_ptr<Job>> jobs;
  std::set<std::string> seen;
  for (size_t i = 0; i < n; ++i) {
    auto job = std::make_unique<Job>();
    job->index = i;
    job->utterance = utterances[i];
    job->audio_path = Expand(f.output, utterances[i], i, ext, several);
    job->words_path = Expand(f.words_out, utterances[i], i, ".words.json", several);
    job->codes_path = Expand(f.codes_out, utterances[i], i, ".codes.safetensors", several);
    if (job->audio_path != "-" && !seen.insert(fs::absolute(job->audio_path).lexically_normal().string()).second) {
      Error(absl::StrCat("two utterances would both be written to ", job->audio_path, " (use -o with {index})"));
      return 2;
    }
    jobs.push_back(std::move(job));
  }

  if (!f.server.empty()) return RunRemote(f, jobs);

  // The model.
  std::string model_dir = f.model_dir;
  if (model_dir.empty()) {
    // The cache, else the Hub (config.json and the files it names; HF_HUB_OFFLINE=1: the cache only).
    const std::string repo = f.hf_repo.empty() ? "kyutai/tts-1.6b-en_fr" : f.hf_repo;
    auto snapshot = FetchHfModel(repo, f.revision);
    if (!snapshot.ok() && hub::IsCacheOnlyMiss(snapshot.status())) snapshot = FindHfSnapshot(repo);
    if (!snapshot.ok()) {
      Error(absl::StrCat(snapshot.status().message(), "; or pass --model DIR"));
      return 1;
    }
    model_dir = snapshot->string();
  }
  TtsEngineOptions options;
  options.batch_size = static_cast<int>(std::min<size_t>(f.batch_size > 0 ? f.batch_size : 8, n));
  options.device = f.device;
  options.dtype = f.dtype;
  options.threads = f.threads;
  options.temp = f.temp;
  options.seed = f.seed;
  options.cfg_coef = f.cfg_coef;
  options.n_q = f.n_q;
  options.lora_path = f.lora;
  auto engine_or = TtsEngine::Load(model_dir, options);
  if (!engine_or.ok()) {
    Error(std::string(engine_or.status().message()));
    return 1;
  }
  TtsEngine& engine = **engine_or;
  const TtsModelInfo& info = engine.info();
  if (!info.lm_weights.empty()) std::fprintf(stderr, "monologue synthesize: %s\n", info.lm_weights.c_str());

  // Voices.
  TtsSessionOptions session_options;
  session_options.padding_between = f.padding_between;
  session_options.padding_bonus = f.padding_bonus;
  std::vector<std::string> voice_names = f.voices;
  if (voice_names.empty() && info.multi_speaker) voice_names.push_back("expresso/ex03-ex01_happy_001_channel1_334s.wav");
  for (const std::string& v : voice_names) {
    auto path = ResolveVoice(v, f.voices_dir, info.voice_suffix);
    if (!path.ok()) {
      Error(std::string(path.status().message()));
      return 1;
    }
    session_options.voices.push_back(*path);
  }

  const bool progress_on = !f.no_progress && (f.progress || isatty(STDERR_FILENO) != 0);
  std::vector<Job*> active;
  size_t next = 0, finished = 0;
  int64_t total_frames = 0;
  std::atomic<bool> stdin_failed{false};
  std::thread stdin_reader;
  auto last_progress = std::chrono::steady_clock::now();

  auto finish_job = [&](Job& job) {
    ++finished;
    if (job.writer != nullptr) {
      if (absl::Status st = job.writer->Close(); !st.ok()) {
        Error(absl::StrCat(job.audio_path, ": ", st.message()));
        exit_code = 1;
      }
    }
    if (job.failed || job.session == nullptr) return;
    if (!job.words_path.empty()) {
      if (absl::Status st = WriteText(job.words_path, job.words.dump(2) + "\n"); !st.ok()) {
        Error(std::string(st.message()));
        exit_code = 1;
      }
    }
    if (!job.codes_path.empty()) {
      std::vector<int64_t> codes = job.session->codes();
      std::vector<int64_t> text = job.session->text_tokens();
      const int64_t q = info.num_codebooks, frames = static_cast<int64_t>(codes.size()) / q;
      at::Tensor c = at::tensor(codes, at::kLong).view({frames, q}).t().unsqueeze(0).contiguous();
      at::Tensor t = at::tensor(text, at::kLong);
      std::map<std::string, std::string> meta = {{"sample_rate", std::to_string(info.sample_rate)},
                                                 {"frame_rate", absl::StrCat(info.frame_rate)},
                                                 {"codebooks", std::to_string(q)},
                                                 {"delay_steps", std::to_string(info.delay_steps)}};
      if (absl::Status st = WriteSafeTensors(job.codes_path, {{"codes", c}, {"text_tokens", t}}, meta); !st.ok()) {
        Error(absl::StrCat(job.codes_path, ": ", st.message()));
        exit_code = 1;
      }
    }
  };

  while (next < n || !active.empty()) {
    // Fill free slots.
    while (next < n && engine.free_slots() > 0) {
      Job& job = *jobs[next++];
      auto writer = OpenOutput(job.audio_path, f.format);
      if (!writer.ok()) {
        Error(std::string(writer.status().message()));
        exit_code = 1;
        job.failed = true;
        ++finished;
        continue;
      }
      job.writer = std::move(*writer);
      auto session = engine.OpenSession(session_options);
      if (!session.ok()) {
        Error(std::string(session.status().message()));
        return 1;  // the same options for every utterance: no point going on
      }
      job.session = std::move(*session);
      absl::Status st;
      if (job.utterance.from_stdin) {
        TtsSession* s = job.session.get();
        stdin_reader = std::thread([s, &stdin_failed] {
          char buf[4096];
          while (true) {
            const ssize_t got = ::read(STDIN_FILENO, buf, sizeof(buf));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;
            if (!s->PushText(std::string_view(buf, static_cast<size_t>(got))).ok()) break;
          }
          if (!s->Close().ok()) stdin_failed = true;
        });
      } else {
        for (size_t t = 0; t < job.utterance.turns.size() && st.ok(); ++t) {
          st = job.session->PushText(job.utterance.turns[t]);
          if (st.ok() && t + 1 < job.utterance.turns.size()) st = job.session->EndTurn();
        }
        if (st.ok()) st = job.session->Close();
      }
      if (!st.ok()) {
        Error(absl::StrCat(several ? absl::StrCat(job.utterance.name, ": ") : "", st.message()));
        exit_code = 1;
        job.failed = true;
        job.session.reset();
        finish_job(job);
        std::error_code ec;
        if (job.audio_path != "-") fs::remove(job.audio_path, ec);  // nothing was synthesized into it
        continue;
      }
      active.push_back(&job);
    }
    if (stdin_failed.exchange(false)) {
      Error("stdin: no text to speak");
      exit_code = 1;
      for (Job* job : active) {
        if (job->utterance.from_stdin) {
          job->failed = true;
          job->session.reset();
          finish_job(*job);
        }
      }
      active.erase(std::remove_if(active.begin(), active.end(), [](Job* j) { return j->session == nullptr; }),
                   active.end());
      continue;
    }
    auto stepped = engine.Step();
    if (!stepped.ok()) {
      Error(std::string(stepped.status().message()));
      exit_code = 1;
    }
    if (stepped.ok() && *stepped == 0) engine.WaitForWork(std::chrono::milliseconds(20));
    for (auto it = active.begin(); it != active.end();) {
      Job& job = **it;
      bool ended = false;
      for (TtsEvent& e : job.session->PollEvents()) {
        if (e.kind == TtsEvent::Kind::kAudio) {
          if (absl::Status st = job.writer->Write(e.audio); !st.ok() && !job.failed) {
            Error(absl::StrCat(job.audio_path, ": ", st.message()));
            exit_code = 1;
            job.failed = true;
          }
          job.samples += static_cast<int64_t>(e.audio.size());
          ++total_frames;
        } else if (e.kind == TtsEvent::Kind::kWord) {
          job.words.push_back({{"text", e.word.text}, {"start", e.word.start_s}, {"end", e.word.end_s}});
        } else {
          ended = true;
        }
      }
      if (ended) {
        finish_job(job);
        // (A stdin session stays alive until its reader thread is joined.)
        if (!job.utterance.from_stdin) job.session.reset();
        it = active.erase(it);
      } else {
        ++it;
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (progress_on && now - last_progress > std::chrono::milliseconds(200)) {
      last_progress = now;
      std::fprintf(stderr, "\r%.1f s of audio, %zu/%zu utterances\x1b[K",
                   static_cast<double>(total_frames) * info.frame_size / info.sample_rate, finished, n);
      std::fflush(stderr);
    }
  }
  if (stdin_reader.joinable()) stdin_reader.join();
  if (progress_on) {
    std::fprintf(stderr, "\r%.1f s of audio, %zu/%zu utterances\x1b[K\n",
                 static_cast<double>(total_frames) * info.frame_size / info.sample_rate, finished, n);
  }
  return exit_code;
}

#else

int RunSynthesize(const SynthesizeFlags&) {
  Error("this build has no speech synthesis (it needs sentencepiece and FFmpeg: MONOLOGUE_WITH_SENTENCEPIECE, "
        "MONOLOGUE_WITH_FFMPEG)");
  return 1;
}

#endif

}  // namespace

void RegisterSynthesizeCommand(CLI::App& app, int& exit_code) {
  auto f = std::make_shared<SynthesizeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "synthesize", "Text to speech with a DSM TTS model (kyutai/tts-1.6b-en_fr), streaming");
  cmd->add_option("text", f->text, "the text to speak (words joined with spaces), or - to read stdin as it arrives");
  cmd->add_option("--text-file", f->text_files, "a text file: every non-empty line is an utterance (repeatable)");
  cmd->add_option("--script", f->script, "a JSON list of turns, spoken alternately by the first and second --voice");
  auto* model = cmd->add_option("--model", f->model_dir, "model directory (config.json, weights, tokenizer)");
  cmd->add_option("--hf-repo", f->hf_repo,
                  "Hugging Face repo, fetched into the local cache on first use (default kyutai/tts-1.6b-en_fr "
                  "when --model is not given; HF_HUB_OFFLINE=1: cache only)")
      ->excludes(model);
  cmd->add_option("--revision", f->revision, "--hf-repo's branch, tag or commit (default main)");
  cmd->add_option("--lora", f->lora, "a LoRA adapter .safetensors fused into the LM at load");
  cmd->add_option("--voice", f->voices,
                  "a voice: a .safetensors voice file, or a name in --voices (repeatable: one per speaker; default "
                  "expresso/ex03-ex01_happy_001_channel1_334s.wav)");
  cmd->add_option("--voices", f->voices_dir,
                  "a folder laid out like the kyutai/tts-voices repo (default: that repo in the local HF cache)");
  cmd->add_option("-o,--output", f->output,
                  "output audio (.wav, .ogg; - = stdout); with several utterances a directory or a {name}/{index} "
                  "pattern");
  cmd->add_option("--format", f->format, "wav, ogg, s16le or f32le (default: from the extension; wav for -)")
      ->check(CLI::IsMember({"wav", "ogg", "s16le", "f32le"}));
  cmd->add_option("--words-out", f->words_out, "word timestamps as JSON: [{text, start, end}] in output seconds");
  cmd->add_option("--codes-out", f->codes_out,
                  "safetensors with codes int64 [1, Q, frames] (decoded frames) and text_tokens int64 [steps]");
  auto* temp = cmd->add_option("--temp", f->temp, "sampling temperature for text and audio (default 0.6; 0 = greedy)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", f->seed, "sampling seed (the reference's draws after torch.manual_seed(S))");
  auto* cfg = cmd->add_option("--cfg-coef", f->cfg_coef,
                  "classifier-free guidance (default 2.0): a condition value for CFG-distilled models, real CFG "
                  "otherwise");
  auto* padding = cmd->add_option("--padding-between", f->padding_between, "forced padding steps between words (default 1)")
      ->check(CLI::NonNegativeNumber);
  auto* bonus = cmd->add_option("--padding-bonus", f->padding_bonus,
                                "added to the PAD logit: positive = slower speech (default 0)");
  cmd->add_option("--server", f->server,
                  "HOST:PORT of a `monologue serve --tts ...`: synthesize there (voices are the server's names)");
  cmd->add_option("--n-q", f->n_q, "audio codebooks to generate (default: all of the model's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", f->batch_size, "utterances synthesized together (default: all, at most 8)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", f->threads, "CPU threads for the model (default: libtorch's)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", f->device, "cpu (default), cuda or cuda:N");
  cmd->add_option("--dtype", f->dtype, "LM dtype: f32, bf16, f16, int8 (int8 weights, CPU only) (default: f32 on CPU, bf16 on CUDA)");
  cmd->add_flag("--progress", f->progress, "progress on stderr (default: when stderr is a terminal)");
  cmd->add_flag("--no-progress", f->no_progress, "never show progress");
  cmd->callback([f, temp, cfg, padding, bonus, &exit_code] {
    f->temp_set = temp->count() > 0;
    f->cfg_set = cfg->count() > 0;
    f->padding_set = padding->count() > 0;
    f->bonus_set = bonus->count() > 0;
    exit_code = RunSynthesize(*f);
  });
}

}  // namespace monologue::cli
