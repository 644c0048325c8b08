// `monologue chat --server ADDR` (chat.h): the conversation through a `monologue serve --dialogue`.
#include "cli/chat.h"

#if defined(MONOLOGUE_HAVE_DIALOGUE) && defined(MONOLOGUE_HAVE_FFMPEG)
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/audio/audio_decoder.h"
#if defined(MONOLOGUE_HAVE_SERVICE)
#include "service/remote_converse.h"
#endif

namespace monologue::cli::chat {

int RunRemoteChat(const ChatFlags& f) {
#if defined(MONOLOGUE_HAVE_SERVICE)
  if (!f.fdb.empty() || !f.codes_out.empty() || f.has_temp || f.has_temp_text || f.has_top_k || f.has_top_k_text ||
      !f.model_dir.empty() || !f.hf_repo.empty() || !f.lora.empty()) {
    Error("--server takes INPUT -o OUT [--seed S] [--prepend-silence SECS] [--stereo] [--text-out F]: the model "
          "and its sampling settings are the server's, and it sends no codes");
    return 2;
  }
  if (f.input.empty() || f.output.empty()) {
    Error("give INPUT and -o OUT.wav");
    return 2;
  }
  if (f.prepend_silence < 0) {
    Error("--prepend-silence must be >= 0");
    return 2;
  }
  auto decoded = DecodeAudioFile(f.input);
  if (!decoded.ok()) {
    Error(absl::StrCat(f.input, ": ", decoded.status().message()));
    return 1;
  }
  if (decoded->samples.empty()) {
    Error(absl::StrCat(f.input, ": no audio in the input"));
    return 1;
  }
  Job job;
  job.input = f.input;
  job.output = f.output;
  job.seed = f.seed;
  job.user = std::move(decoded->samples);
  const size_t prepend = static_cast<size_t>(f.prepend_silence * 24000);
  std::vector<float> fed(prepend, 0.0f);
  fed.insert(fed.end(), job.user.begin(), job.user.end());
  int exit_code = 0;
  RemoteConverseOptions o;
  o.server = f.server;
  o.seed = f.seed;
  o.request_id = f.input;
  RemoteConversation partial;
  auto result = RemoteConverse(o, fed, &partial);
  if (!result.ok()) {
    Error(std::string(result.status().message()));
    // What Moshi said before the failure stands: written (time-aligned, the rest silent), exit status 1.
    if (partial.audio.size() <= prepend) return 1;
    std::fprintf(stderr, "monologue chat: writing the %.2f s of reply received before the failure\n",
                 static_cast<double>(partial.audio.size() - prepend) / 24000);
    result = std::move(partial);
    exit_code = 1;
  }
  for (const RemoteTextPiece& p : result->pieces) job.pieces.push_back({p.text, -1, p.time_s});
  const size_t n = job.user.size();
  std::vector<float> moshi(n, 0.0f);
  for (size_t i = 0; i < n && prepend + i < result->audio.size(); ++i) moshi[i] = result->audio[prepend + i];
  absl::Status st = WriteAudio(job.output, f.stereo ? job.user : moshi, f.stereo ? &moshi : nullptr);
  if (st.ok() && !f.text_out.empty()) {
    st = WriteText(job, f.text_out, result->model, static_cast<double>(prepend) / 24000, static_cast<double>(n) / 24000);
  }
  if (!st.ok()) {
    Error(std::string(st.message()));
    return 1;
  }
  return exit_code;
#else
  (void)f;
  Error("--server: this build has no gRPC client (MONOLOGUE_WITH_GRPC)");
  return 1;
#endif
}

}  // namespace monologue::cli::chat

#endif
