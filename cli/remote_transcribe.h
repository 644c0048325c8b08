// `monologue transcribe --server ADDR INPUT`: the client path of the transcribe command
// (cli/remote_transcribe.cc).
#pragma once

#include <string>
#include <vector>

namespace monologue::cli {

struct RemoteTranscribeFlags {
  std::string server;               // HOST:PORT of a `monologue serve`
  std::vector<std::string> inputs;  // exactly one: a path or "-"
  std::string format = "txt";       // txt (words printed as they arrive) or json
  std::string output;               // file; empty or "-" = stdout
  double speed = 0;                 // 1 = real time, 0 = as fast as the server takes it
};

// Returns the exit code; errors print as "monologue transcribe: ...".
int RunRemoteTranscribe(const RemoteTranscribeFlags& flags);

}  // namespace monologue::cli
