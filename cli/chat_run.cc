// `monologue chat` with a local model (chat.h): the model resolved (--model, --hf-repo or the default repo),
// the jobs (one INPUT, or every input.wav below --fdb), and the loop that keeps the engine's slots full, steps
// it and writes each conversation as it ends.
#include "cli/chat.h"

#if defined(MONOLOGUE_HAVE_DIALOGUE) && defined(MONOLOGUE_HAVE_FFMPEG)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/audio/audio_decoder.h"
#include "core/config/hf_cache.h"
#include "core/hub/hub.h"
#include "core/io/output_file.h"

namespace monologue::cli::chat {
namespace {

namespace fs = std::filesystem;

constexpr char kDefaultRepo[] = "kyutai/moshiko-pytorch-bf16";

// The snapshot of `repo` in the local Hugging Face cache. Legacy Moshi repositories have no config.json, so
// the snapshot is located here and DialogueEngine::Load checks the files.
absl::StatusOr<std::string> ResolveRepo(const std::string& repo) {
  const size_t slash = repo.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == repo.size() ||
      repo.find('/', slash + 1) != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--hf-repo '", repo, "': expected OWNER/NAME"));
  }
  // The cache, else the Hub (config.json and the files it names, or the legacy Moshi names; core/hub).
  auto fetched = FetchHfModel(repo);
  if (fetched.ok()) return fetched->string();
  if (!hub::IsCacheOnlyMiss(fetched.status())) return fetched.status();  // offline: the diagnostics below
  fs::path root;
  if (const char* hub = std::getenv("HF_HUB_CACHE"); hub != nullptr && *hub != '\0') {
    root = hub;
  } else if (const char* home = std::getenv("HF_HOME"); home != nullptr && *home != '\0') {
    root = fs::path(home) / "hub";
  } else {
    const char* user_home = std::getenv("HOME");
    root = fs::path(user_home ? user_home : ".") / ".cache" / "huggingface" / "hub";
  }
  const fs::path snapshots =
      root / absl::StrCat("models--", repo.substr(0, slash), "--", repo.substr(slash + 1)) / "snapshots";
  const std::string hint =
      absl::StrCat(" (fetch it with `huggingface-cli download ", repo, "`, or pass --model DIR)");
  std::error_code ec;
  if (!fs::is_directory(snapshots, ec)) {
    return absl::NotFoundError(
        absl::StrCat(repo, " is not in the local Hugging Face cache: no ", snapshots.string(), hint));
  }
  fs::path snapshot;
  std::string revision;
  if (std::ifstream ref(snapshots.parent_path() / "refs" / "main");
      ref && std::getline(ref, revision) && fs::is_directory(snapshots / revision, ec)) {
    snapshot = snapshots / revision;
  } else {
    fs::file_time_type newest{};
    for (const auto& entry : fs::directory_iterator(snapshots, ec)) {
      if (!entry.is_directory()) continue;
      if (snapshot.empty() || entry.last_write_time(ec) > newest) {
        snapshot = entry.path();
        newest = entry.last_write_time(ec);
      }
    }
  }
  if (snapshot.empty())
    return absl::NotFoundError(absl::StrCat(repo, ": no snapshot under ", snapshots.string(), hint));
#ifdef MONOLOGUE_HAVE_ASR
  if (fs::exists(snapshot / "config.json", ec)) return ResolveHfRepoSnapshot(repo);  // checks the named files
#endif
  return snapshot.string();
}

class Progress {
 public:
  Progress(bool enabled, size_t total) : enabled_(enabled), total_(total) {}
  void Update(size_t done, double audio_s, double wall_s, bool force = false) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double frac = total_ > 0 ? std::min(1.0, static_cast<double>(done) / total_) : 1.0;
    const int width = 30, filled = static_cast<int>(frac * width);
    std::fprintf(stderr, "\r[%s%s] %zu/%zu outputs, %.1f s of audio, %.2fx real time\x1b[K",
                 std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(), done, total_,
                 audio_s, wall_s > 0 ? audio_s / wall_s : 0.0);
    std::fflush(stderr);
    shown_ = true;
  }
  void Finish() {
    if (shown_) std::fprintf(stderr, "\n");
  }

 private:
  bool enabled_;
  size_t total_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

int RunChat(const ChatFlags& f) {
  // Output names that cannot be written as asked are refused before any model is loaded.
  if (!f.output.empty()) {
    if (auto format = ChatAudioFormat(f.output, f.stereo); !format.ok()) {
      Error(std::string(format.status().message()));
      return 2;
    }
  }
  if (!f.codes_out.empty() && !absl::EndsWithIgnoreCase(f.codes_out, ".safetensors") &&
      !absl::EndsWithIgnoreCase(f.codes_out, ".sft")) {
    Error(absl::StrCat("--codes-out ", f.codes_out,
                       ": codes are written as safetensors (name it .safetensors)"));
    return 2;
  }
  // Unwritable outputs fail now, not after the conversation.
  for (const std::string* path : {&f.output, &f.text_out, &f.codes_out}) {
    if (path->empty() || *path == "-") continue;
    if (absl::Status st = CheckWritable(*path); !st.ok()) {
      Error(std::string(st.message()));
      return 1;
    }
  }
  if (!f.server.empty()) return RunRemoteChat(f);
  const bool fdb = !f.fdb.empty();
  if (fdb) {
    if (!f.input.empty() || !f.output.empty() || !f.text_out.empty() || !f.codes_out.empty() || f.stereo) {
      Error(
          "--fdb DIR takes no INPUT, -o, --text-out, --codes-out or --stereo (outputs go beside each "
          "input.wav)");
      return 2;
    }
  } else {
    if (f.input.empty() || f.output.empty()) {
      Error("give INPUT and -o OUT.wav (or --fdb DIR)");
      return 2;
    }
    if (f.samples != 1) {
      Error("--samples goes with --fdb");
      return 2;
    }
  }
  // NaN and infinities are refused by the flag's check; an hour is far more than any opening needs, and the
  // silence is fed, kept and dropped in memory (100000 s took ~10 GB before it failed).
  if (!(f.prepend_silence >= 0 && f.prepend_silence <= 3600)) {
    Error(absl::StrCat("--prepend-silence must be from 0 to 3600 seconds (got ", f.prepend_silence, ")"));
    return 2;
  }

  // The work: (input, output, seed) triples.
  std::vector<Job> todo;
  size_t skipped = 0;
  if (fdb) {
    std::error_code ec;
    if (!fs::is_directory(f.fdb, ec)) {
      Error(absl::StrCat("--fdb ", f.fdb, ": not a directory"));
      return 1;
    }
    std::vector<fs::path> inputs;
    for (auto it =
             fs::recursive_directory_iterator(f.fdb, fs::directory_options::follow_directory_symlink, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (it->path().filename() == "input.wav" && !it->is_directory()) inputs.push_back(it->path());
    }
    std::sort(inputs.begin(), inputs.end());
    if (inputs.empty()) {
      Error(absl::StrCat("--fdb ", f.fdb, ": no input.wav below it"));
      return 1;
    }
    for (const fs::path& in : inputs) {
      for (int i = 0; i < f.samples; ++i) {
        Job job;
        job.input = in.string();
        job.output = (in.parent_path() /
                      (f.samples == 1 ? std::string("output.wav") : absl::StrCat("output_", i, ".wav")))
                         .string();
        job.seed = f.seed + static_cast<uint64_t>(i);
        if (!f.overwrite && fs::exists(job.output, ec)) {
          ++skipped;
          continue;
        }
        todo.push_back(std::move(job));
      }
    }
  } else {
    Job job;
    job.input = f.input;
    job.output = f.output;
    job.seed = f.seed;
    todo.push_back(std::move(job));
  }
  if (todo.empty()) {
    std::fprintf(stderr, "monologue chat: nothing to do: all %zu outputs exist (--overwrite to redo them)\n",
                 skipped);
    return 0;
  }

  // The model.
  std::string model_dir = f.model_dir;
  if (model_dir.empty()) {
    auto snapshot = ResolveRepo(f.hf_repo.empty() ? kDefaultRepo : f.hf_repo);
    if (!snapshot.ok()) {
      Error(std::string(snapshot.status().message()));
      return 1;
    }
    model_dir = *snapshot;
  }
  DialogueEngineOptions options;
  options.batch_size = std::max(1, std::min<int>(fdb ? f.batch_size : 1, static_cast<int>(todo.size())));
  options.device = f.device;
  options.dtype = f.dtype;
  options.threads = f.threads;
  options.sampling.seed = f.seed;
  if (f.has_temp) options.sampling.temp = f.temp;
  if (f.has_temp_text) options.sampling.temp_text = f.temp_text;
  if (f.has_top_k) options.sampling.top_k = f.top_k;
  if (f.has_top_k_text) options.sampling.top_k_text = f.top_k_text;
  options.lora_path = f.lora;
  auto engine_or = DialogueEngine::Load(model_dir, options);
  if (!engine_or.ok()) {
    Error(std::string(engine_or.status().message()));
    return 1;
  }
  DialogueEngine& engine = **engine_or;
  const DialogueModelInfo& info = engine.info();
  if (!info.lm_weights.empty()) std::fprintf(stderr, "monologue chat: %s\n", info.lm_weights.c_str());
  const size_t prepend = static_cast<size_t>(f.prepend_silence * info.sample_rate);
  const bool progress_on = !f.no_progress && (f.progress || isatty(STDERR_FILENO) != 0);

  int exit_code = 0;
  size_t done = 0, written = 0, failed = 0;
  double audio_s = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto wall = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  Progress progress(progress_on, todo.size());
  std::deque<Job*> queue;
  for (Job& j : todo) queue.push_back(&j);
  std::vector<Job*> active;

  auto finish = [&](Job& job) {
    ++done;
    const size_t n = job.user.size();
    std::vector<float> moshi(n, 0.0f);
    for (size_t i = 0; i < n && prepend + i < job.moshi.size(); ++i) moshi[i] = job.moshi[prepend + i];
    absl::Status st = WriteAudio(job.output, f.stereo ? job.user : moshi, f.stereo ? &moshi : nullptr);
    if (st.ok() && !f.text_out.empty()) {
      st = WriteText(job, f.text_out, model_dir, static_cast<double>(prepend) / info.sample_rate,
                     static_cast<double>(n) / info.sample_rate);
    }
    if (st.ok() && !f.codes_out.empty()) st = WriteCodes(job, f.codes_out, info.dep_q);
    if (!st.ok()) {
      if (progress_on) std::fprintf(stderr, "\n");
      Error(std::string(st.message()));
      exit_code = 1;
      ++failed;
    } else {
      ++written;
    }
    audio_s += static_cast<double>(n) / info.sample_rate;
    job.user = {};
    job.moshi = {};
    job.session.reset();
  };

  while (!queue.empty() || !active.empty()) {
    while (!queue.empty() && engine.free_slots() > 0) {
      Job& job = *queue.front();
      queue.pop_front();
      auto decoded = DecodeAudioFile(job.input);
      std::string problem;
      if (!decoded.ok()) {
        problem = std::string(decoded.status().message());
      } else if (decoded->samples.empty()) {
        problem = "no audio in the input";
      }
      if (!problem.empty()) {
        if (progress_on) std::fprintf(stderr, "\n");
        Error(problem.find(job.input) != std::string::npos ? problem
                                                           : absl::StrCat(job.input, ": ", problem));
        exit_code = 1;
        ++failed;
        ++done;
        continue;
      }
      if (!decoded->warning.ok()) {
        const std::string why(
            decoded->warning.message());  // names the input already when it comes from the decoder
        std::fprintf(stderr, "monologue chat: warning: %s (answered the audio before it)\n",
                     (why.rfind(job.input, 0) == 0 ? why : absl::StrCat(job.input, ": ", why)).c_str());
      }
      job.user = std::move(decoded->samples);
      auto session = engine.OpenSession(job.seed);
      if (!session.ok()) {
        Error(std::string(session.status().message()));
        return 1;
      }
      job.session = std::move(*session);
      const std::vector<float> silence(prepend, 0.0f);
      absl::Status st = job.session->PushAudio(silence);
      if (st.ok()) st = job.session->PushAudio(job.user);
      if (st.ok()) st = job.session->Close();
      if (!st.ok()) {
        Error(std::string(st.message()));
        return 1;
      }
      active.push_back(&job);
    }
    if (active.empty()) break;
    auto stepped = engine.Step();
    if (!stepped.ok()) {
      Error(std::string(stepped.status().message()));
      return 1;
    }
    for (auto it = active.begin(); it != active.end();) {
      Job& job = **it;
      bool ended = false;
      for (DialogueEvent& e : job.session->PollEvents()) {
        switch (e.kind) {
          case DialogueEvent::Kind::kAudio:
            job.moshi.insert(job.moshi.end(), e.audio.begin(), e.audio.end());
            if (!e.codes.empty()) {
              job.tokens.push_back(e.token);
              job.codes.push_back(std::move(e.codes));
            }
            break;
          case DialogueEvent::Kind::kText:
            job.pieces.push_back({e.text, e.token, e.time_s});
            break;
          case DialogueEvent::Kind::kEnd:
            ended = true;
            break;
        }
      }
      if (ended) {
        finish(job);
        it = active.erase(it);
      } else {
        ++it;
      }
    }
    progress.Update(done, audio_s, wall());
  }
  progress.Update(done, audio_s, wall(), /*force=*/true);
  progress.Finish();
  if (fdb) {
    std::fprintf(
        stderr,
        "monologue chat: %zu written, %zu skipped (existing), %zu failed; %.1f s of audio in %.1f s\n",
        written, skipped, failed, audio_s, wall());
  }
  return exit_code;
}

}  // namespace monologue::cli::chat

#endif
