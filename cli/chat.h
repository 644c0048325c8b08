// (internal to the CLI) `monologue chat`'s pieces: the flags (chat_command.cc parses them), one conversation's
// job and its output writers (chat_output.cc), the local run over the dialogue engine (chat_run.cc) and the
// run through a server (chat_remote.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#if defined(MONOLOGUE_HAVE_DIALOGUE) && defined(MONOLOGUE_HAVE_FFMPEG)
#include "absl/status/status.h"
#include "dialogue/dialogue_engine.h"
#endif

namespace monologue::cli::chat {

struct ChatFlags {
  std::string input;
  std::string output;
  std::string model_dir;
  std::string hf_repo;
  uint64_t seed = 4242;
  double temp = 0, temp_text = 0;
  int top_k = 0, top_k_text = 0;
  bool has_temp = false, has_temp_text = false, has_top_k = false, has_top_k_text = false;
  double prepend_silence = 0;
  std::string text_out;
  bool stereo = false;
  std::string codes_out;
  int threads = 0;
  std::string device = "cpu";
  std::string dtype;
  std::string fdb;
  bool overwrite = false;
  int samples = 1;
  int batch_size = 8;
  bool progress = false;
  bool no_progress = false;
  std::string server;
  std::string lora;
};

// "monologue chat: MESSAGE" on stderr.
void Error(const std::string& message);

// The command: the local model (or --server: RunRemoteChat). Returns the exit status.
int RunChat(const ChatFlags& f);

#if defined(MONOLOGUE_HAVE_DIALOGUE) && defined(MONOLOGUE_HAVE_FFMPEG)

// Moshi's text piece and when it was said (seconds of the fed audio, prepended silence included).
struct Piece {
  std::string text;
  int token = 0;
  double start = 0;
};

// One conversation: its input, where its output goes, its seed, and what the session produced so far.
struct Job {
  std::string input;
  std::string output;
  uint64_t seed = 0;
  std::vector<float> user;
  std::unique_ptr<DialogueSession> session;
  std::vector<float> moshi;  // prepended silence included
  std::vector<int> tokens;
  std::vector<std::vector<int>> codes;
  std::vector<Piece> pieces;
};

// The format -o asks for: "wav" (.wav, no extension, or "-": stdout) or "ogg" (.ogg, .opus: Ogg/Opus, mono);
// an error naming the path otherwise (checked before any model is loaded).
absl::StatusOr<std::string> ChatAudioFormat(const std::string& path, bool stereo);

// The output audio: 16-bit PCM WAV (the reference's format), `channels` interleaved (stereo: user left,
// Moshi right), or Ogg/Opus (ChatAudioFormat). Files replace what was there only once complete (OutputFile).
absl::Status WriteAudio(const std::string& path, const std::vector<float>& left,
                        const std::vector<float>* right);

// --text-out: Moshi's text pieces and words with times (seconds of the input).
absl::Status WriteText(const Job& job, const std::string& path, const std::string& model, double prepend_s,
                       double duration_s);

// --codes-out: codes int64 [1, dep_q, F] and text_tokens int64 [F].
absl::Status WriteCodes(const Job& job, const std::string& path, int dep_q);

// --server ADDR: the same file in and file out through monologue.v1.Dialogue (the server's model and sampling
// settings; the seed is this stream's).
int RunRemoteChat(const ChatFlags& f);

#endif

}  // namespace monologue::cli::chat
