// `monologue bench synthesize`: speed of streaming speech synthesis through the engine the CLI uses
// (tts/tts_engine.h). Per batch size: the steady-state step time once every stream is past the audio delay
// (LM temporal step + state machine + depformer + Mimi decode of the frame), the real-time factor (step time
// / 80 ms: below 1 keeps up with real time); at batch 1, the time to first audio (text pushed -> first
// decoded samples), with and without skipping the depformer inside the audio delay. Weights: random (in
// memory) for a preset or config.json, or a model directory. `--reference` then runs
// bench/bench_synthesize_reference.py (the reference TTSModel.generate loop with streaming Mimi decoding).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/bench_command.h"
#include "cli/bench_options.h"
#include "cli/bench_profile.h"
#include "cli/bench_reference.h"
#include "cli/bench_step_stats.h"
#include "cli/flag_checks.h"
#include "cli/memory_speed.h"
#include "core/config/model_config.h"
#include "core/io/safetensors.h"
#include "core/lm/lm_model.h"
#include "core/mimi/mimi_loader.h"
#include "core/model/random_model.h"
#include "core/util/status_macros.h"

#if defined(MONOLOGUE_HAVE_TTS) && defined(MONOLOGUE_HAVE_SENTENCEPIECE)
#include "core/text/text_tokenizer.h"
#include "tts/tts_engine.h"
#include "tts/tts_engine_builder.h"
#endif

namespace monologue::cli {
namespace {

struct BenchSynthesizeFlags {
  std::string preset = "tts-1.6b-en_fr";
  std::string config_file;
  std::string model_dir;
  std::string batches = "1,8";
  int steps = 20;
  int warmup = 3;
  int threads = 2;
  int n_q = 0;
  int ttfa_runs = 3;
  int voices = 1;
  std::string device = "cpu";
  std::string dtype = "f32";
  std::string checkpoint_dtype = "bf16";
  std::string tokenizer = "tests/data/tokenizers/tiny_en_fr_400.model";
  bool reference = false;
  bool profile = false;
  std::string python;
  std::string reference_script = "bench/bench_synthesize_reference.py";
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "monologue bench synthesize: %s\n", message.c_str());
  return 1;
}

#if defined(MONOLOGUE_HAVE_TTS) && defined(MONOLOGUE_HAVE_SENTENCEPIECE)

// A long text: no stream ends while it is timed (the state machine paces words at 2-9 steps each).
std::string LongText() {
  std::string text;
  const char* words[] = {"the",   "quick", "brown",  "fox",    "jumps", "over", "a",     "lazy",
                         "dog",   "while", "seven",  "small",  "birds", "sing", "above", "green",
                         "fields", "and",  "rivers", "slowly", "flow",  "to",   "the",   "sea."};
  for (int i = 0; i < 400; ++i) absl::StrAppend(&text, text.empty() ? "" : " ", words[i % 24]);
  return text;
}

double Ms(std::chrono::steady_clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Bench {
  ModelConfig config;
  std::shared_ptr<const LmModel> lm;
  std::unique_ptr<MimiModel> mimi;
  std::shared_ptr<const TextTokenizer> tokenizer;
  std::vector<std::string> voices;  // distinct random voices, given to the streams in turn
  int n_q = 0;
  int delay_steps = 0;
  int max_delay = 0;
};

absl::StatusOr<std::unique_ptr<TtsEngine>> MakeEngine(const Bench& b, int batch, bool skip) {
  TtsEngineOptions o;
  o.batch_size = batch;
  o.n_q = b.n_q;
  o.skip_depformer_in_delay = skip;
  o.seed = 0;
  return TtsEngineBuilder::Create(b.config, b.lm, *b.mimi, b.tokenizer, o);
}

absl::StatusOr<StepStats> TimeBatch(const Bench& b, int batch, int steps, int warmup, bool profile) {
  ASSIGN_OR_RETURN(auto engine, MakeEngine(b, batch, true));
  std::vector<std::unique_ptr<TtsSession>> sessions;
  for (int i = 0; i < batch; ++i) {
    TtsSessionOptions so;
    so.voices = {b.voices[static_cast<size_t>(i) % b.voices.size()]};
    ASSIGN_OR_RETURN(auto s, engine->OpenSession(so));
    RETURN_IF_ERROR(s->PushText(LongText()));
    RETURN_IF_ERROR(s->Close());
    sessions.push_back(std::move(s));
  }
  // Past the audio delay (every stream decodes a frame per step), then the warm-up steps.
  for (int i = 0; i < b.delay_steps + b.max_delay + warmup; ++i) {
    RETURN_IF_ERROR(engine->Step().status());
    for (auto& s : sessions) s->PollEvents();
  }
  std::vector<double> step_ms;
  step_ms.reserve(static_cast<size_t>(steps));
  for (int i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(int n, engine->Step());
    if (n != batch) return absl::InternalError(absl::StrCat("step ran ", n, " of ", batch, " streams"));
    for (auto& s : sessions) s->PollEvents();
    step_ms.push_back(Ms(std::chrono::steady_clock::now() - t0));
  }
  StepStats t = SummarizeSteps(step_ms);
  if (profile) {
    // As many steps again (the streams carry on), under the profiler.
    absl::Status status;
    std::printf("batch %d ", batch);
    ProfileAndPrint(
        [&] {
          for (int i = 0; i < steps && status.ok(); ++i) {
            status = engine->Step().status();
            for (auto& s : sessions) s->PollEvents();
          }
        },
        steps);
    RETURN_IF_ERROR(status);
  }
  return t;
}

// A random voice of the conditioner's shape (10 s of latent, as the released voices) written to `path`.
absl::Status WriteRandomVoice(const std::string& path, int64_t dim) {
  return WriteSafeTensors(path, {{"speaker_wavs", at::randn({1, dim, 125})}});
}

struct FirstAudio {
  double new_voice_ms = 0;        // a voice the engine has not seen: its cross-attention prefill included
  double returning_voice_ms = 0;  // the same voice again: its keys and values are reused
  int64_t steps = 0;
};

// Text pushed -> first decoded audio frame, batch 1, median of `runs` each: with a voice new to the engine,
// then with that voice again. One unreported run first warms the engine up.
absl::StatusOr<FirstAudio> TimeToFirstAudio(const Bench& b, bool skip, int runs, int64_t voice_dim) {
  ASSIGN_OR_RETURN(auto engine, MakeEngine(b, 1, skip));
  FirstAudio out;
  auto once = [&](const std::string& voice) -> absl::StatusOr<double> {
    TtsSessionOptions so;
    so.voices = {voice};
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(auto s, engine->OpenSession(so));
    RETURN_IF_ERROR(s->PushText("Hello there, this is the first sentence of a reply."));
    RETURN_IF_ERROR(s->Close());
    bool audio = false;
    while (!audio) {
      ASSIGN_OR_RETURN(int n, engine->Step());
      if (n == 0) return absl::InternalError("the stream ended before any audio");
      for (const TtsEvent& e : s->PollEvents()) audio = audio || e.kind == TtsEvent::Kind::kAudio;
    }
    const double ms = Ms(std::chrono::steady_clock::now() - t0);
    out.steps = s->steps_done();
    return ms;  // the session is dropped: its slot is free for the next run
  };
  RETURN_IF_ERROR(once(b.voices[0]).status());
  std::vector<double> fresh, again;
  for (int r = 0; r < runs; ++r) {
    const std::string voice = (std::filesystem::temp_directory_path() /
                               absl::StrCat("monologue_bench_synthesize_new_voice", r, ".safetensors"))
                                  .string();
    RETURN_IF_ERROR(WriteRandomVoice(voice, voice_dim));
    ASSIGN_OR_RETURN(double first, once(voice));
    ASSIGN_OR_RETURN(double second, once(voice));
    fresh.push_back(first);
    again.push_back(second);
  }
  std::sort(fresh.begin(), fresh.end());
  std::sort(again.begin(), again.end());
  out.new_voice_ms = fresh[fresh.size() / 2];
  out.returning_voice_ms = again[again.size() / 2];
  return out;
}

// What the reference's side-by-side run needs from the timed model.
struct ReferenceInputs {
  ModelConfig config;
  std::string tokenizer_path;
  int64_t n_q = 0;
};

// Loads the model in one dtype and times every batch size and the time to first audio.
int RunOneDtype(const BenchSynthesizeFlags& f, const std::string& dtype_name, ReferenceInputs& ref) {
  auto parsed_batches = ParseBatchList(f.batches);
  if (!parsed_batches.ok()) return Fail(std::string(parsed_batches.status().message()));
  auto dtype = ParseDtypeFlag(dtype_name);
  if (!dtype.ok()) return Fail(std::string(dtype.status().message()));
  auto device = ParseDeviceFlag(f.device);
  if (!device.ok()) return Fail(std::string(device.status().message()));
  const bool explicit_model = !f.model_dir.empty() || !f.config_file.empty();
  auto bench_model = ResolveBenchModel(f.model_dir, f.config_file, explicit_model ? "" : f.preset);
  if (!bench_model.ok()) return Fail(std::string(bench_model.status().message()));
  Bench b;
  b.config = bench_model->config;
  if (b.config.model_type != ModelType::kTts) return Fail(bench_model->source + " is not a TTS model");
  auto speaker = b.config.lm.conditioners.find("speaker_wavs");
  if (speaker == b.config.lm.conditioners.end()) return Fail("the model has no speaker_wavs conditioner");

  c10::InferenceMode guard;
  LmLoadOptions load;
  load.dtype = *dtype;
  load.device = *device;
  absl::StatusOr<std::shared_ptr<const LmModel>> lm_or;
  absl::StatusOr<MimiModel> mimi_or = absl::UnknownError("unset");
  std::string tokenizer_path = f.tokenizer;
  if (!f.model_dir.empty()) {
    auto lm_path = ResolveModelFile(f.model_dir, b.config.moshi_name);
    auto mimi_path = ResolveModelFile(f.model_dir, b.config.mimi_name);
    auto tok_path = ResolveModelFile(f.model_dir, b.config.tokenizer_name);
    if (!lm_path.ok()) return Fail(std::string(lm_path.status().message()));
    if (!mimi_path.ok()) return Fail(std::string(mimi_path.status().message()));
    if (tok_path.ok()) tokenizer_path = tok_path->string();
    lm_or = LmModel::LoadFile(b.config.lm, lm_path->string(), load);
    mimi_or = LoadMimiFile(mimi_path->string(), b.config.mimi, *device);
  } else {
    auto checkpoint_dtype = ParseCheckpointDtypeFlag(f.checkpoint_dtype);
    if (!checkpoint_dtype.ok()) return Fail(std::string(checkpoint_dtype.status().message()));
    lm_or = LmModel::FromTensors(b.config.lm, RandomLmTensors(b.config.lm, 0, *checkpoint_dtype), load);
    mimi_or = RandomMimi(b.config.mimi, /*seed=*/0, *device);
  }
  if (!lm_or.ok()) return Fail(std::string(lm_or.status().message()));
  if (!mimi_or.ok()) return Fail(std::string(mimi_or.status().message()));
  auto tokenizer = TextTokenizer::Load(tokenizer_path);
  if (!tokenizer.ok()) return Fail(std::string(tokenizer.status().message()));
  b.lm = *lm_or;
  b.mimi = std::make_unique<MimiModel>(std::move(*mimi_or));
  b.tokenizer = std::move(*tokenizer);
  b.n_q = f.n_q;
  // Random voices of the conditioner's shape (10 s of latent, as the released voices). Streams with one voice
  // share its cross-attention keys and values (one read serves them all); --voices N gives N distinct ones.
  for (int v = 0; v < f.voices; ++v) {
    b.voices.push_back((std::filesystem::temp_directory_path() /
                        absl::StrCat("monologue_bench_synthesize_voice", v, ".safetensors"))
                           .string());
    if (absl::Status st = WriteRandomVoice(b.voices.back(), speaker->second.dim); !st.ok()) {
      return Fail(std::string(st.message()));
    }
  }
  {
    auto probe = MakeEngine(b, 1, true);
    if (!probe.ok()) return Fail(std::string(probe.status().message()));
    b.delay_steps = (*probe)->info().delay_steps;
    b.max_delay = (*probe)->info().max_delay;
    b.n_q = (*probe)->info().num_codebooks;
  }

  std::printf(
      "monologue bench synthesize: %s, device %s, %s, %d threads, %d codebooks, %d steps (+%d warm-up) per "
      "batch; one step = one 80 ms frame per stream (LM + depformer + state machine + Mimi decode)\n",
      bench_model->source.c_str(), device->str().c_str(), dtype_name.c_str(), f.threads, b.n_q, f.steps,
      f.warmup);
  PrintQuantization(*b.lm);
  PrintHugePages();
  PrintCpuKernels();
  if (device->is_cpu()) PrintWeightReadFloor("LM weights", b.lm->LinearBytesPerStep(), f.threads);
  // buffer: the pre-roll a player starting at the first timed frame needs to play them all without a gap.
  std::printf("%6s  %10s  %8s  %8s  %8s  %8s  %26s  %10s\n", "batch", "step ms", "p50", "p95", "max", "RTF",
              "x realtime (all streams)", "buffer ms");
  std::fflush(stdout);
  for (int64_t batch : *parsed_batches) {
    auto t = TimeBatch(b, static_cast<int>(batch), f.steps, f.warmup, f.profile);
    if (!t.ok()) return Fail(std::string(t.status().message()));
    std::printf("%6lld  %10.2f  %8.2f  %8.2f  %8.2f  %8.3f  %26.2f  %10.1f\n", static_cast<long long>(batch),
                t->mean_ms, t->p50_ms, t->p95_ms, t->max_ms, t->mean_ms / 80.0, batch * 80.0 / t->mean_ms,
                t->playback_buffer_ms);
    std::fflush(stdout);
  }
  if (device->is_cpu()) PrintMemoryReadSpeed(f.threads, "after the timing");
  for (bool skip : {true, false}) {
    auto ttfa = TimeToFirstAudio(b, skip, f.ttfa_runs, speaker->second.dim);
    if (!ttfa.ok()) return Fail(std::string(ttfa.status().message()));
    std::printf(
        "time to first audio (batch 1, median of %d): %.1f ms with a new voice, %.1f ms with a returning "
        "one, "
        "over %lld steps (%s)\n",
        f.ttfa_runs, ttfa->new_voice_ms, ttfa->returning_voice_ms, static_cast<long long>(ttfa->steps),
        skip ? "depformer skipped inside the audio delay" : "depformer run at every step");
    std::fflush(stdout);
  }
  ref.config = b.config;
  ref.tokenizer_path = tokenizer_path;
  ref.n_q = b.n_q;
  return 0;
}

int RunBenchSynthesize(const BenchSynthesizeFlags& f) {
  if (auto batches = ParseBatchList(f.batches); !batches.ok()) return Fail(std::string(batches.status().message()));
  if (f.steps < 1 || f.warmup < 0 || f.threads < 1 || f.ttfa_runs < 1 || f.voices < 1) {
    return Fail("--steps, --threads, --ttfa-runs and --voices must be >= 1");
  }
  auto dtypes = ParseDtypeList(f.dtype);
  if (!dtypes.ok()) return Fail(std::string(dtypes.status().message()));
  at::set_num_threads(f.threads);
  if (f.profile) InitializeProfiler();  // whatever it logs at its first start, above the report
  ReferenceInputs ref;
  for (size_t i = 0; i < dtypes->size(); ++i) {
    if (i > 0) std::printf("\n");
    if (int rc = RunOneDtype(f, (*dtypes)[i], ref); rc != 0) return rc;
  }

  if (f.reference) {
    const absl::Status st = RunReferenceBenchmark(
        f.python, f.reference_script, ref.config, "synthesize",
        absl::StrCat(" --batch ", f.batches, " --steps ", f.steps, " --warmup ", f.warmup, " --threads ", f.threads,
                     " --dtype ", ReferenceDtype(*dtypes), " --device ", f.device, " --n-q ", ref.n_q,
                     " --tokenizer '", ref.tokenizer_path, "'"));
    if (!st.ok()) return Fail(std::string(st.message()));
  }
  return 0;
}

#else

int RunBenchSynthesize(const BenchSynthesizeFlags&) {
  return Fail("this build has no speech synthesis (it needs sentencepiece: MONOLOGUE_WITH_SENTENCEPIECE)");
}

#endif

}  // namespace

void RegisterBenchSynthesize(CLI::App& bench, int& exit_code) {
  auto f = std::make_shared<BenchSynthesizeFlags>();
  CLI::App* cmd = bench.add_subcommand(
      "synthesize", "Streaming TTS step time, real-time factor and time to first audio, per batch size");
  cmd->add_option("--preset", f->preset, "TTS preset with random weights (default tts-1.6b-en_fr; tiny-tts)");
  cmd->add_option("--config", f->config_file, "a TTS config.json (random weights)");
  cmd->add_option("--model", f->model_dir, "a model directory (its weights)");
  cmd->add_option("--batch", f->batches, "comma-separated batch sizes (default 1,8)");
  cmd->add_option("--steps", f->steps, "timed steps per batch size (default 20)");
  cmd->add_option(
      "--voices", f->voices,
      "distinct random voices, given to the streams in turn (default 1: every stream speaks with one "
      "voice and shares its cross-attention keys and values)");
  cmd->add_flag(
      "--profile", f->profile,
      "after timing each batch size, run as many steps again under libtorch's profiler and print the "
      "heaviest ops per step");
  cmd->add_option("--warmup", f->warmup, "untimed steps after the audio delay (default 3)");
  cmd->add_option("--threads", f->threads, "CPU threads (default 2)")->check(ThreadCount());
  cmd->add_option("--n-q", f->n_q, "audio codebooks generated (default: all of the model's)");
  cmd->add_option("--ttfa-runs", f->ttfa_runs, "time-to-first-audio runs (median; default 3)");
  cmd->add_option("--device", f->device, "cpu (default) or cuda[:N]");
  cmd->add_option("--checkpoint-dtype", f->checkpoint_dtype, kCheckpointDtypeHelp)->capture_default_str();
  cmd->add_option(
      "--dtype", f->dtype,
      "LM dtype: f32 (default), bf16, f16, int8, int4 (CPU); a comma-separated list times each in turn "
      "(e.g. int8,f32)");
  cmd->add_option("--tokenizer", f->tokenizer,
                  "sentencepiece model for random-weight models (default: the tiny test tokenizer)");
  cmd->add_flag("--reference", f->reference,
                "then run the reference's loop (bench/bench_synthesize_reference.py) with the same settings");
  cmd->add_option("--python", f->python, "python with the reference package (default $MONOLOGUE_PYTHON or the venv)");
  cmd->add_option("--reference-script", f->reference_script, "path of bench_synthesize_reference.py");
  cmd->callback([f, &exit_code] { exit_code = RunBenchSynthesize(*f); });
}

}  // namespace monologue::cli
