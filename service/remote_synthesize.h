// Client side of monologue.v1.Synthesis for the CLI (`monologue synthesize --server ADDR`): sends text as a
// source gives it (turn ends included) and receives float32 audio frames and words through callbacks.
// Torch-free and gRPC-free header.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace monologue {

struct RemoteSynthesizeOptions {
  std::string server;               // HOST:PORT
  std::vector<std::string> voices;  // voice names (the server's ListVoices); empty: its default
  std::optional<double> temperature;
  std::optional<uint64_t> seed;
  std::optional<double> cfg_coef;
  std::optional<int> padding_between;
  std::optional<double> padding_bonus;
  double timeout_seconds = 0;  // overall deadline (0: none)
  std::string request_id;
};

struct RemoteTextChunk {
  std::string text;
  bool end_turn = false;  // after `text`: the next text is the other speaker's
};

struct RemoteSynthesis {
  int words = 0;
  double audio_seconds = 0;
  int64_t frames = 0;
  bool truncated = false;  // the server stopped at its step limit with text still unspoken
  std::string model;
};

// `next_text` is called from a writer thread until it returns nullopt (end of text). Errors: the server's
// status prefixed with "server ADDR:" (INVALID_ARGUMENT for a bad voice or text, RESOURCE_EXHAUSTED when
// full, UNAVAILABLE when unreachable, ...).
absl::StatusOr<RemoteSynthesis> RemoteSynthesize(
    const RemoteSynthesizeOptions& options, const std::function<std::optional<RemoteTextChunk>()>& next_text,
    const std::function<void(std::span<const float>)>& on_audio,
    const std::function<void(const std::string& text, double start, double end)>& on_word);

// The server's voices (ListVoices) and its default voice.
absl::StatusOr<std::pair<std::vector<std::string>, std::string>> RemoteListVoices(const std::string& server);

}  // namespace monologue
