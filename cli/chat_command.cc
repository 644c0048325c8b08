// `monologue chat INPUT -o OUT.wav [--model DIR | --hf-repo REPO] [--seed S] [--temp T] [--temp-text T]
//  [--top-k K] [--top-k-text K] [--prepend-silence SECS] [--text-out TEXT.json] [--stereo]
//  [--codes-out CODES.safetensors] [--threads N] [--device D] [--dtype T]`
// `monologue chat --fdb DIR [--samples N] [--overwrite] [--batch-size B] [same model/sampling flags]`
//
// Full-duplex dialogue with a Moshi model (dialogue/dialogue_engine.h), offline: INPUT is the user's side of
// a conversation (any audio FFmpeg decodes, resampled to 24 kHz mono); OUT.wav is Moshi's side, 24 kHz mono
// 16-bit (written as the reference's sphn.write_wav does), time-aligned with the input and of exactly its
// length (the Full-Duplex-Bench convention): the reference's framing (moshi.run_inference), the last
// incomplete frame answered with silence.
//
//   --prepend-silence SECS  feeds SECS of silence before the input (the model may say its opening phrase, as
//                           in the moshika-rl-seamless evaluation) and drops exactly those samples from the
//                           output, so it stays aligned with the input.
//   --stereo                writes the user on the left channel and Moshi on the right (for listening).
//   --text-out FILE.json    Moshi's text pieces and words with times (seconds of the input; pieces said
//                           during the prepended silence have negative times).
//   --codes-out FILE        safetensors: codes int64 [1, 8, F] (Moshi's audio codes at every model step,
//                           prepended silence included), text_tokens int64 [F].
//   --seed S                the draws of the reference after torch.manual_seed(S) right before its first
//                           step (default 4242, the value run_inference seeds with);
//                           --temp/--temp-text/--top-k/--top-k-text override the checkpoint's lm_gen_config
//                           (itself over the defaults 0.8/0.7/250/25).
//
// --fdb DIR: the Full-Duplex-Bench v1/v1.5 layout. Every DIR/**/input.wav gets output.wav beside it (as
// above), inputs batched one slot each (--batch-size, default 8). Resumable: an existing output is skipped
// unless --overwrite (outputs are written to a temporary name and renamed, so a killed run leaves no partial
// output.wav). --samples N: N sampled outputs per input with seeds S..S+N-1, named output_0.wav ..
// output_{N-1}.wav (output_i.wav uses seed S+i); N = 1 writes output.wav. Every session has its own
// generator, so each output is `monologue chat input.wav --seed S+i` whatever the batch (same tokens and
// codes; samples equal up to one 16-bit step, from batched matmuls rounding differently).
//
// Errors: an input that cannot be read or holds no audio is reported (`monologue chat: PATH: ...`), the
// others are still processed, and the exit status is 1. A model directory that is not a Moshi dialogue model
// (STT, TTS) or lacks a file: a message naming it, exit 1.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/command.h"
#if defined(MONOLOGUE_HAVE_SERVICE)
#include "service/remote_converse.h"
#endif

#if defined(MONOLOGUE_HAVE_DIALOGUE) && defined(MONOLOGUE_HAVE_FFMPEG)
#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/audio/audio_decoder.h"
#include "core/audio/audio_writer.h"
#include "core/config/hf_cache.h"
#include "core/hub/hub.h"
#include "core/io/safetensors.h"
#include "dialogue/dialogue_engine.h"
#include "nlohmann/json.hpp"
#ifdef MONOLOGUE_HAVE_ASR
#endif
#endif

namespace monologue::cli {
namespace {

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

void Error(const std::string& message) { std::fprintf(stderr, "monologue chat: %s\n", message.c_str()); }

#if defined(MONOLOGUE_HAVE_DIALOGUE) && defined(MONOLOGUE_HAVE_FFMPEG)

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

struct Piece {
  std::string text;
  int token = 0;
  double start = 0;
};

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

// 16-bit PCM WAV (the reference's format), `channels` interleaved (stereo: user left, Moshi right), written
// to a temporary file and renamed.
absl::Status WriteWav(const std::string& path, const std::vector<float>& left,
                      const std::vector<float>* right) {
  const int channels = right != nullptr ? 2 : 1;
  const uint32_t frames = static_cast<uint32_t>(left.size());
  const uint32_t data_bytes = frames * channels * 2;
  std::string bytes;
  bytes.reserve(44 + data_bytes);
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  auto u16 = [&](uint16_t v) {
    bytes.push_back(static_cast<char>(v & 0xff));
    bytes.push_back(static_cast<char>(v >> 8));
  };
  bytes += "RIFF";
  u32(36 + data_bytes);
  bytes += "WAVEfmt ";
  u32(16);
  u16(1);
  u16(static_cast<uint16_t>(channels));
  u32(24000);
  u32(24000 * channels * 2);
  u16(static_cast<uint16_t>(channels * 2));
  u16(16);
  bytes += "data";
  u32(data_bytes);
  auto sample = [&](float x) {
    float v = std::isfinite(x) ? x : 0.0f;
    // As the reference's sphn.write_wav: x * 32767 truncated, clamped.
    long q = static_cast<long>(std::clamp(static_cast<double>(v) * 32767.0, -32768.0, 32767.0));
    u16(static_cast<uint16_t>(static_cast<int16_t>(q)));
  };
  for (uint32_t i = 0; i < frames; ++i) {
    sample(left[i]);
    if (right != nullptr) sample(i < right->size() ? (*right)[i] : 0.0f);
  }
  std::error_code ec;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  fs::rename(tmp, path, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status WriteText(const Job& job, const std::string& path, const std::string& model, double prepend_s,
                       double duration_s) {
  nlohmann::json pieces = nlohmann::json::array(), words = nlohmann::json::array();
  std::string text;
  nlohmann::json word;
  for (const Piece& p : job.pieces) {
    auto round6 = [](double t) { return std::round(t * 1e6) / 1e6; };
    const double start = round6(p.start - prepend_s), end = round6(p.start - prepend_s + 0.08);
    pieces.push_back({{"text", p.text}, {"token", p.token}, {"start", start}, {"end", end}});
    text += p.text;
    const bool starts_word = !p.text.empty() && p.text[0] == ' ';
    if (starts_word || word.is_null()) {
      if (!word.is_null()) words.push_back(word);
      const size_t b = p.text.find_first_not_of(' ');
      word = {{"text", b == std::string::npos ? std::string() : p.text.substr(b)},
              {"start", start},
              {"end", end}};
    } else {
      word["text"] = word["text"].get<std::string>() + p.text;
      word["end"] = end;
    }
  }
  if (!word.is_null()) words.push_back(word);
  const size_t b = text.find_first_not_of(' ');
  nlohmann::json out = {
      {"input", job.input},       {"model", model},
      {"seed", job.seed},         {"prepend_silence_s", prepend_s},
      {"duration_s", duration_s}, {"text", b == std::string::npos ? std::string() : text.substr(b)},
      {"pieces", pieces},         {"words", words}};
  std::ofstream f(path, std::ios::binary);
  f << out.dump(1) << "\n";
  f.close();
  if (!f) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::Status WriteCodes(const Job& job, const std::string& path, int dep_q) {
  const int64_t frames = static_cast<int64_t>(job.tokens.size());
  at::Tensor codes = at::zeros({1, dep_q, frames}, at::kLong);
  at::Tensor text = at::zeros({frames}, at::kLong);
  auto c = codes.accessor<int64_t, 3>();
  for (int64_t f = 0; f < frames; ++f) {
    text[f] = job.tokens[static_cast<size_t>(f)];
    for (int k = 0; k < dep_q; ++k) c[0][k][f] = job.codes[static_cast<size_t>(f)][static_cast<size_t>(k)];
  }
  return WriteSafeTensors(path, {{"codes", codes}, {"text_tokens", text}});
}

// --server ADDR: the same file in and file out through monologue.v1.Dialogue (the server's model and sampling
// settings; the seed is this stream's).
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
  RemoteConverseOptions o;
  o.server = f.server;
  o.seed = f.seed;
  o.request_id = f.input;
  auto result = RemoteConverse(o, fed);
  if (!result.ok()) {
    Error(std::string(result.status().message()));
    return 1;
  }
  for (const RemoteTextPiece& p : result->pieces) job.pieces.push_back({p.text, -1, p.time_s});
  const size_t n = job.user.size();
  std::vector<float> moshi(n, 0.0f);
  for (size_t i = 0; i < n && prepend + i < result->audio.size(); ++i) moshi[i] = result->audio[prepend + i];
  absl::Status st = WriteWav(job.output, f.stereo ? job.user : moshi, f.stereo ? &moshi : nullptr);
  if (st.ok() && !f.text_out.empty()) {
    st = WriteText(job, f.text_out, result->model, static_cast<double>(prepend) / 24000, static_cast<double>(n) / 24000);
  }
  if (!st.ok()) {
    Error(std::string(st.message()));
    return 1;
  }
  return 0;
#else
  (void)f;
  Error("--server: this build has no gRPC client (MONOLOGUE_WITH_GRPC)");
  return 1;
#endif
}

int RunChat(const ChatFlags& f) {
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
  if (f.prepend_silence < 0) {
    Error("--prepend-silence must be >= 0");
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
    absl::Status st = WriteWav(job.output, f.stereo ? job.user : moshi, f.stereo ? &moshi : nullptr);
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
        std::fprintf(stderr, "monologue chat: warning: %s: %s (answered the audio before it)\n",
                     job.input.c_str(), std::string(decoded->warning.message()).c_str());
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

#else

int RunChat(const ChatFlags&) {
  Error("this build has no dialogue mode (it needs sentencepiece and FFmpeg)");
  return 1;
}

#endif

}  // namespace

void RegisterChatCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ChatFlags>();
  CLI::App* cmd = app.add_subcommand("chat",
                                     "Full-duplex dialogue with a Moshi model, offline: the user's audio in, "
                                     "Moshi's side out (time-aligned)");
  cmd->add_option("input", flags->input, "the user's audio (any format FFmpeg reads)");
  cmd->add_option("-o,--output", flags->output, "Moshi's side: 24 kHz WAV, same length as the input");
  auto* model =
      cmd->add_option("--model", flags->model_dir, "model directory (config.json or the legacy layout)");
  cmd->add_option(
         "--hf-repo", flags->hf_repo,
         "Hugging Face repo in the local cache (default kyutai/moshiko-pytorch-bf16 without --model)")
      ->excludes(model);
  cmd->add_option("--seed", flags->seed, "sampling seed, as torch.manual_seed (default 4242)");
  auto* temp =
      cmd->add_option("--temp", flags->temp, "audio temperature (0: greedy)")->check(CLI::NonNegativeNumber);
  auto* temp_text = cmd->add_option("--temp-text", flags->temp_text, "text temperature (0: greedy)")
                        ->check(CLI::NonNegativeNumber);
  auto* top_k = cmd->add_option("--top-k", flags->top_k, "audio top-k")->check(CLI::PositiveNumber);
  auto* top_k_text =
      cmd->add_option("--top-k-text", flags->top_k_text, "text top-k")->check(CLI::PositiveNumber);
  cmd->add_option("--prepend-silence", flags->prepend_silence,
                  "seconds of silence fed before the input, dropped from the output (default 0)");
  cmd->add_option("--text-out", flags->text_out, "JSON file: Moshi's text pieces and words with times");
  cmd->add_flag("--stereo", flags->stereo, "write the user on the left, Moshi on the right");
  cmd->add_option("--codes-out", flags->codes_out,
                  "safetensors file: codes int64 [1, 8, F] and text_tokens int64 [F] of every model step");
  cmd->add_option("--fdb", flags->fdb,
                  "Full-Duplex-Bench directory: every **/input.wav -> output.wav beside it");
  cmd->add_flag("--overwrite", flags->overwrite, "--fdb: redo existing outputs");
  cmd->add_option("--samples", flags->samples, "--fdb: outputs per input (seeds S..S+N-1, output_i.wav)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", flags->batch_size, "--fdb: inputs processed together (default 8)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--progress", flags->progress, "progress bar on stderr (default: when stderr is a terminal)");
  cmd->add_flag("--no-progress", flags->no_progress, "never show the progress bar");
  cmd->add_option("--lora", flags->lora, "a LoRA adapter .safetensors fused into the LM at load");
  cmd->add_option("--server", flags->server,
                  "HOST:PORT of a `monologue serve --dialogue ...`: converse there (same outputs)");
  cmd->add_option("--device", flags->device, "cpu (default), cuda or cuda:N");
  cmd->add_option("--dtype", flags->dtype, "LM dtype: f32, bf16, f16, int8 (int8 weights, CPU only) (default: f32 on CPU, bf16 on CUDA)");
  cmd->add_option("--threads", flags->threads, "CPU threads for the model (default: libtorch's)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([flags, temp, temp_text, top_k, top_k_text, &exit_code] {
    flags->has_temp = temp->count() > 0;
    flags->has_temp_text = temp_text->count() > 0;
    flags->has_top_k = top_k->count() > 0;
    flags->has_top_k_text = top_k_text->count() > 0;
    exit_code = RunChat(*flags);
  });
}

}  // namespace monologue::cli
