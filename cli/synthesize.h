// (internal to the CLI) `monologue synthesize`'s pieces: the flags (synthesize_command.cc parses them), the
// inputs read into utterances (synthesize_input.cc), the outputs each utterance's job writes
// (synthesize_output.cc), the local run over the TTS engine (synthesize_run.cc) and the run through a server
// (synthesize_remote.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#if defined(MONOLOGUE_HAVE_TTS) && defined(MONOLOGUE_HAVE_FFMPEG)
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/audio/audio_writer.h"
#include "core/io/output_file.h"
#include "nlohmann/json.hpp"
#include "tts/tts_engine.h"
#endif

namespace monologue::cli::synthesize {

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

// "monologue synthesize: MESSAGE" on stderr.
void Error(const std::string& message);

// The command: inputs, outputs, then the local model (or --server: RunRemote). Returns the exit status.
int RunSynthesize(const SynthesizeFlags& f);

#if defined(MONOLOGUE_HAVE_TTS) && defined(MONOLOGUE_HAVE_FFMPEG)

// One utterance to synthesize.
struct Utterance {
  std::string name;                // for output patterns
  std::vector<std::string> turns;  // empty with stdin
  bool from_stdin = false;
};

struct Job {
  size_t index = 0;
  Utterance utterance;
  std::string audio_path, words_path, codes_path;
  // The file the audio is being written to (none for stdout, or once the utterance is done): audio_path
  // itself when nothing was there (a listener can follow it as it grows), else a temporary file beside it,
  // renamed over it when the utterance is done (OutputFile). A failed utterance removes it, so a file
  // already at audio_path is left as it was.
  std::optional<OutputFile> output_file;
  std::unique_ptr<TtsSession> session;
  std::unique_ptr<AudioWriter> writer;
  nlohmann::json words = nlohmann::json::array();
  int64_t samples = 0;
  bool failed = false;
};

// ---- Inputs (synthesize_input.cc) ----

// The utterances the flags name (exactly one kind: TEXT..., -, --text-file, --script). Returns the exit status
// to stop with, or nullopt to go on; sets `exit_code` to 1 when a text file cannot be read (the other files
// are still spoken).
std::optional<int> ReadUtterances(const SynthesizeFlags& f, std::vector<Utterance>& utterances, int& exit_code);

// --script F: a non-empty JSON list of turns (strings).
absl::StatusOr<std::vector<std::string>> ReadScript(const std::string& path);

// ---- Outputs (synthesize_output.cc) ----

// One job per utterance with its output paths (-o / --words-out / --codes-out expanded). Returns the exit
// status to stop with (no -o, several utterances to stdout, two utterances to one file), or nullopt.
std::optional<int> PlanJobs(const SynthesizeFlags& f, const std::vector<Utterance>& utterances,
                            std::vector<std::unique_ptr<Job>>& jobs);

// The audio writer for output `path` (`-`: stdout) in `format` ("" = from path's extension: .wav or none WAV,
// .ogg/.opus Ogg Opus, .raw s16le; any other extension is an error), writing to `write_path` when given (the
// job's temporary file).
absl::StatusOr<std::unique_ptr<AudioWriter>> OpenOutput(const std::string& path, const std::string& format,
                                                        const std::string& write_path = "");

// `path` holding `text` (its folder created).
absl::Status WriteText(const std::string& path, const std::string& text);

// --codes-out: the session's codes int64 [1, Q, frames] and text_tokens int64 [steps], with the model's rates.
absl::Status WriteCodes(const std::string& path, const TtsSession& session, const TtsModelInfo& info);

// --server ADDR: the same inputs and outputs through monologue.v1.Synthesis, one utterance after another.
int RunRemote(const SynthesizeFlags& f, std::vector<std::unique_ptr<Job>>& jobs);

#endif

}  // namespace monologue::cli::synthesize
