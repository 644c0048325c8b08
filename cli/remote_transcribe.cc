// The `--server` path of `monologue transcribe`: stream one input to a monologue gRPC server and print the
// words as they arrive (txt), or the whole transcript as JSON at the end.
#include "cli/remote_transcribe.h"

#include <cstdio>
#include <fstream>
#include <vector>

#include "core/io/output_file.h"
#include "nlohmann/json.hpp"

#ifdef MONOLOGUE_HAVE_SERVICE
#include "service/remote_client.h"
#endif

namespace monologue::cli {

int RunRemoteTranscribe(const RemoteTranscribeFlags& f) {
  auto error = [](const std::string& m) { std::fprintf(stderr, "monologue transcribe: %s\n", m.c_str()); };
#ifndef MONOLOGUE_HAVE_SERVICE
  error("--server: this build has no gRPC client (configure with -DMONOLOGUE_WITH_GRPC=ON)");
  return 2;
#else
  if (f.inputs.size() != 1) {
    error("--server takes exactly one INPUT (a file or -)");
    return 2;
  }
  if (f.format != "txt" && f.format != "json") {
    error("--server supports --format txt or json (got '" + f.format + "')");
    return 2;
  }
  const bool to_stdout = f.output.empty() || f.output == "-";
  const bool live = to_stdout && f.format == "txt";
  bool first = true;
  RemoteTranscribeOptions options;
  options.server = f.server;
  options.input = f.inputs[0];
  options.speed = f.speed;
  std::vector<AsrWord> received;  // kept when the stream fails: what the server decided stands
  auto result = RemoteTranscribe(options, [&](const AsrWord& w) {
    received.push_back(w);
    if (!live) return;
    std::printf("%s%s", first ? "" : " ", w.text.c_str());
    std::fflush(stdout);
    first = false;
  });
  if (!result.ok()) {
    if (live && !first) std::printf("\n");
    error(std::string(result.status().message()));
    if (live || received.empty()) return 1;
  }
  const std::vector<AsrWord>& words = result.ok() ? result->words : received;
  std::string text;
  if (f.format == "txt") {
    for (const AsrWord& w : words) text += (text.empty() ? "" : " ") + w.text;
    text += "\n";
  } else {
    nlohmann::json j;
    j["input"] = f.inputs[0] == "-" ? "stdin" : f.inputs[0];
    j["server"] = f.server;
    if (result.ok()) {
      j["model"] = result->model;
      j["duration"] = result->audio_seconds;
    } else {
      j["error"] = std::string(result.status().message());  // the words before it
    }
    j["words"] = nlohmann::json::array();
    for (const AsrWord& w : words) {
      j["words"].push_back({{"text", w.text}, {"start", w.start_s}, {"end", w.end_s}});
    }
    if (result.ok()) j["end_of_turn"] = result->end_of_turn;
    text = j.dump(1) + "\n";
  }
  if (live) {
    std::printf("\n");
  } else if (to_stdout) {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    if (absl::Status st = WriteFileReplacing(f.output, text); !st.ok()) {
      error(std::string(st.message()));
      return 1;
    }
  }
  if (!result.ok()) return 1;
  return 0;
#endif
}

}  // namespace monologue::cli
