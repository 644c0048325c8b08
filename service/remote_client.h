// Client side of monologue.v1.Transcription for the CLI (`monologue transcribe --server ADDR`): decodes a
// file or stdin locally (any format FFmpeg reads, to 24 kHz mono float) and streams it to a server as
// FLOAT32_LE in 80 ms chunks, in real time or faster; words arrive through a callback as the server decides
// them. Torch-free and gRPC-free header.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "asr/word_aligner.h"

namespace monologue {

struct RemoteTranscribeOptions {
  std::string server;          // HOST:PORT
  std::string input;           // a path, or "-" for stdin
  double speed = 0;            // 1 = real time, 2 = twice real time, 0 = as fast as flow control allows
  double timeout_seconds = 0;  // overall deadline (0: none)
  std::string request_id;
};

struct RemoteTranscript {
  std::vector<AsrWord> words;
  std::vector<double> end_of_turn;  // times, seconds
  double audio_seconds = 0;         // as counted by the server
  std::string model;                // what the server serves
};

// Errors: the input's (NOT_FOUND, INVALID_ARGUMENT, ...) or the server's status, prefixed with "server ADDR:"
// (UNAVAILABLE when it cannot be reached, RESOURCE_EXHAUSTED when it is full, ...).
absl::StatusOr<RemoteTranscript> RemoteTranscribe(const RemoteTranscribeOptions& options,
                                                  const std::function<void(const AsrWord&)>& on_word = {});

}  // namespace monologue
