// Client side of monologue.v1.Dialogue for the CLI (`monologue chat --server ADDR`): streams 24 kHz mono
// samples (the user's side) and collects Moshi's audio and text pieces. Torch-free and gRPC-free header.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace monologue {

struct RemoteConverseOptions {
  std::string server;  // HOST:PORT
  std::optional<uint64_t> seed;
  double speed = 0;            // 1 = real time (a live conversation), 0 = as fast as flow control allows
  double timeout_seconds = 0;  // overall deadline (0: none)
  std::string request_id;
};

struct RemoteTextPiece {
  std::string text;
  double time_s = 0;  // time of the frame that produced it, in input seconds
};

struct RemoteConversation {
  std::vector<float> audio;  // Moshi's side, as long as the input (time-aligned)
  std::vector<RemoteTextPiece> pieces;
  int64_t frames = 0;
  std::string model;
};

// Errors: the server's status prefixed with "server ADDR:"; `partial` (when given) then holds what arrived
// before it (audio and text), so that a caller can keep it.
absl::StatusOr<RemoteConversation> RemoteConverse(const RemoteConverseOptions& options,
                                                  std::span<const float> input,
                                                  RemoteConversation* partial = nullptr);

}  // namespace monologue
