// `monologue synthesize` with a local model (synthesize.h): inputs and outputs planned, the model resolved
// (--model, --hf-repo or the default repo) and loaded, the voices resolved, then the loop that keeps the
// engine's slots full (stdin read by its own thread as it arrives), steps it and writes each utterance's audio
// frame by frame and its words and codes when it ends.
#include "cli/synthesize.h"

#if defined(MONOLOGUE_HAVE_TTS) && defined(MONOLOGUE_HAVE_FFMPEG)
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string_view>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/config/hf_cache.h"
#include "core/hub/hub.h"

namespace monologue::cli::synthesize {

namespace fs = std::filesystem;

int RunSynthesize(const SynthesizeFlags& f) {
  // Inputs.
  std::vector<Utterance> utterances;
  int exit_code = 0;
  if (std::optional<int> stop = ReadUtterances(f, utterances, exit_code)) return *stop;
  const size_t n = utterances.size();
  const bool several = n > 1;
  std::vector<std::unique_ptr<Job>> jobs;
  if (std::optional<int> stop = PlanJobs(f, utterances, jobs)) return *stop;

  if (!f.server.empty()) return RunRemote(f, jobs);

  // The model.
  std::string model_dir = f.model_dir;
  if (model_dir.empty()) {
    // The cache, else the Hub (config.json and the files it names; HF_HUB_OFFLINE=1: the cache only).
    const std::string repo = f.hf_repo.empty() ? "kyutai/tts-1.6b-en_fr" : f.hf_repo;
    auto snapshot = FetchHfModel(repo, f.revision);
    if (!snapshot.ok() && hub::IsCacheOnlyMiss(snapshot.status()))
      snapshot = FindHfSnapshot(repo, f.revision);
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
  std::string stdin_error;  // why the text on stdin was refused (set by the reader before stdin_failed)
  std::thread stdin_reader;
  auto last_progress = std::chrono::steady_clock::now();

  // Jobs' files still being written are removed however the run ends before they are done (OutputFile's
  // destructor, with the jobs).

  auto finish_job = [&](Job& job) {
    ++finished;
    if (job.writer != nullptr) {
      if (absl::Status st = job.writer->Close(); !st.ok()) {
        Error(absl::StrCat(job.audio_path, ": ", st.message()));
        exit_code = 1;
        job.failed = true;
      }
      job.writer.reset();
    }
    // The audio stays only when the utterance was synthesized (a failed one leaves what was there before).
    if (job.output_file.has_value()) {
      if (!job.failed && job.session != nullptr) {
        if (absl::Status st = job.output_file->Commit(); !st.ok()) {
          Error(std::string(st.message()));
          exit_code = 1;
          job.failed = true;
        }
      } else {
        job.output_file->Abandon();
      }
      job.output_file.reset();
    }
    if (job.failed || job.session == nullptr) return;
    if (!job.words_path.empty()) {
      if (absl::Status st = WriteText(job.words_path, job.words.dump(2) + "\n"); !st.ok()) {
        Error(std::string(st.message()));
        exit_code = 1;
      }
    }
    if (!job.codes_path.empty()) {
      if (absl::Status st = WriteCodes(job.codes_path, *job.session, info); !st.ok()) {
        Error(absl::StrCat(job.codes_path, ": ", st.message()));
        exit_code = 1;
      }
    }
  };

  while (next < n || !active.empty()) {
    // Fill free slots.
    while (next < n && engine.free_slots() > 0) {
      Job& job = *jobs[next++];
      absl::StatusOr<std::unique_ptr<AudioWriter>> writer = absl::UnknownError("");
      if (job.audio_path != "-") {
        auto output_file = OutputFile::Prepare(job.audio_path, OutputFile::NewFile::kInPlace);
        if (output_file.ok()) {
          job.output_file = std::move(*output_file);
          writer = OpenOutput(job.audio_path, f.format, job.output_file->write_path());
        } else {
          writer = output_file.status();
        }
      } else {
        writer = OpenOutput(job.audio_path, f.format);
      }
      if (!writer.ok()) {
        Error(std::string(writer.status().message()));
        exit_code = 1;
        job.failed = true;
        job.output_file.reset();  // removes what it created
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
        stdin_reader = std::thread([s, &stdin_failed, &stdin_error] {
          char buf[4096];
          while (true) {
            const ssize_t got = ::read(STDIN_FILENO, buf, sizeof(buf));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;
            if (absl::Status st = s->PushText(std::string_view(buf, static_cast<size_t>(got))); !st.ok()) {
              stdin_error = std::string(st.message());
              break;
            }
          }
          if (!s->Close().ok() || !stdin_error.empty()) stdin_failed = true;
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
        finish_job(job);  // removes its temporary file: a file already at the output path is left as it was
        continue;
      }
      active.push_back(&job);
    }
    if (stdin_failed.exchange(false)) {
      // (stdin_error was written before the flag was set, and is read after it was seen.)
      Error(absl::StrCat("stdin: ", stdin_error.empty() ? "no text to speak" : stdin_error));
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
          if (e.truncated) {
            // The audio so far is kept; the rest of the text was not spoken.
            Error(absl::StrCat(job.audio_path, ": stopped at the ", e.step, "-step limit (",
                               static_cast<double>(job.samples) / info.sample_rate,
                               " s of audio) with text left unspoken: give long texts as several utterances "
                               "(--text-file, a line each)"));
            exit_code = 1;
          }
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

}  // namespace monologue::cli::synthesize

#endif
