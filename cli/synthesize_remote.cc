// `monologue synthesize --server ADDR` (synthesize.h): each utterance through a `monologue serve --tts`.
#include "cli/synthesize.h"

#if defined(MONOLOGUE_HAVE_TTS) && defined(MONOLOGUE_HAVE_FFMPEG)
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <span>

#include "absl/strings/str_cat.h"
#if defined(MONOLOGUE_HAVE_SERVICE)
#include "service/remote_synthesize.h"
#endif

namespace monologue::cli::synthesize {

namespace fs = std::filesystem;

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
    // As the local run (OutputFile): an existing file is replaced only by a complete take; a new one is
    // written in place as the audio comes.
    std::optional<OutputFile> output;
    absl::StatusOr<std::unique_ptr<AudioWriter>> writer = absl::UnknownError("");
    if (job.audio_path != "-") {
      auto prepared = OutputFile::Prepare(job.audio_path, OutputFile::NewFile::kInPlace);
      if (prepared.ok()) {
        output = std::move(*prepared);
        writer = OpenOutput(job.audio_path, f.format, output->write_path());
      } else {
        writer = prepared.status();
      }
    } else {
      writer = OpenOutput(job.audio_path, f.format);
    }
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
      // A new file keeps the audio that came before the failure (and --words-out its words); a file that
      // was there stays as it was.
      const bool keep = output.has_value() && output->in_place() && job.writer->samples_written() > 0 &&
                        write_status.ok() && close_status.ok();
      if (keep) {
        (void)output->Commit();
        if (!job.words_path.empty()) (void)WriteText(job.words_path, job.words.dump(2) + "\n");
      } else if (output.has_value()) {
        output->Abandon();
      }
      continue;
    }
    if (output.has_value()) {
      if (absl::Status st = output->Commit(); !st.ok()) {
        Error(std::string(st.message()));
        exit_code = 1;
        continue;
      }
    }
    if (result->truncated) {
      // As the local run: the audio so far is kept; the rest of the text was not spoken.
      Error(absl::StrCat(job.audio_path, ": the server stopped at its step limit (", result->frames,
                         " steps, ", result->audio_seconds,
                         " s of audio) with text left unspoken: give long texts as several "
                         "utterances (--text-file, a line each)"));
      exit_code = 1;
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

}  // namespace monologue::cli::synthesize

#endif
