// `monologue bench transcribe`: speed of streaming speech recognition through the same engine the CLI and the
// service use (asr/asr_engine.h): every step encodes one 80 ms frame per stream with Mimi and runs the LM
// (extra heads included), for each batch size; reported as milliseconds per step, real-time factor
// (step time / 80 ms: below 1 means every stream of the batch keeps up with real time) and how many times
// real time the whole batch runs. Weights: random (in memory, nothing written) for a preset or config.json,
// or a model directory. `--reference` then runs bench/bench_transcribe_reference.py (the reference's
// transcription loop, same architecture, same batch sizes) so both are measured in the same run.
// `--max-streams` searches the largest batch whose step stays within 80 ms (GPU capacity). `--active K` opens
// only K streams in each batch and times the step both ways: every slot computed under the exec mask (what
// every step cost before compaction) and compacted (only the active slots, core/util/step_rows.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/bench_command.h"
#include "cli/bench_options.h"
#include "cli/bench_reference.h"
#include "cli/bench_step_stats.h"
#include "cli/flag_checks.h"
#include "cli/memory_speed.h"
#include "core/config/model_config.h"
#include "core/lm/lm_model.h"
#include "core/mimi/mimi_loader.h"
#include "core/model/presets.h"
#include "core/model/random_model.h"

#if defined(MONOLOGUE_HAVE_ASR)
#include "asr/asr_engine.h"
#include "asr/asr_engine_builder.h"
#endif

namespace monologue::cli {
namespace {

struct BenchTranscribeFlags {
  std::string preset = "stt-1b-en_fr";
  std::string config_file;
  std::string model_dir;
  std::string batches = "1,8";
  int steps = 20;
  int warmup = 3;
  int threads = 2;
  std::string device = "cpu";
  std::string dtype = "f32";
  std::string checkpoint_dtype = "bf16";
  bool reference = false;
  std::string python;
  std::string reference_script = "bench/bench_transcribe_reference.py";
  int max_streams = 0;
  int active = 0;  // > 0: streams open per batch (the others idle)
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "monologue bench transcribe: %s\n", message.c_str());
  return 1;
}

#if defined(MONOLOGUE_HAVE_ASR)

// Runs `steps` timed steps of a batch of `b` slots with `active` streams open (0: all), after the warm-up
// steps; `compact`: AsrEngineOptions::compact_steps.
absl::StatusOr<StepStats> TimeBatch(const ModelConfig& config, const std::shared_ptr<const LmModel>& lm,
                                    const MimiModel& mimi, int b, int steps, int warmup, int active = 0,
                                    bool compact = true) {
  AsrEngineOptions options;
  options.batch_size = b;
  options.compact_steps = compact;
  const int streams = active > 0 ? std::min(active, b) : b;
  auto engine_or = AsrEngineBuilder::Create(config, lm, mimi, nullptr, options);
  if (!engine_or.ok()) return engine_or.status();
  AsrEngine& engine = **engine_or;
  std::vector<std::unique_ptr<AsrSession>> sessions;
  const size_t samples = static_cast<size_t>(warmup + steps + 1) * 1920;
  std::vector<float> audio(samples);
  for (int i = 0; i < streams; ++i) {
    auto s = engine.OpenSession();
    if (!s.ok()) return s.status();
    for (size_t k = 0; k < samples; ++k) {
      audio[k] = 0.1f * std::sin(0.001f * static_cast<float>((k * (i + 3)) % 100003));
    }
    if (absl::Status st = (*s)->PushAudio(audio); !st.ok()) return st;
    sessions.push_back(std::move(*s));
  }
  for (int i = 0; i < warmup + 1; ++i) {  // +1: every session's initial-token step
    if (auto n = engine.Step(); !n.ok()) return n.status();
  }
  std::vector<double> step_ms;
  step_ms.reserve(static_cast<size_t>(steps));
  for (int i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto n = engine.Step();
    if (!n.ok()) return n.status();
    if (*n != streams) return absl::InternalError(absl::StrCat("step ran ", *n, " of ", streams, " streams"));
    step_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return SummarizeSteps(step_ms);
}

// Loads the model in one dtype and times every batch size (and the capacity search).
int RunOneDtype(const BenchTranscribeFlags& f, const std::string& dtype_name) {
  const std::vector<int64_t> parsed_batches = *ParseBatchList(f.batches);
  const std::vector<int> batches(parsed_batches.begin(), parsed_batches.end());
  auto parsed_dtype = ParseDtypeFlag(dtype_name);
  if (!parsed_dtype.ok()) return Fail(std::string(parsed_dtype.status().message()));
  const at::ScalarType dtype = *parsed_dtype;
  auto parsed_device = ParseDeviceFlag(f.device);
  if (!parsed_device.ok()) return Fail(std::string(parsed_device.status().message()));
  const c10::Device device = *parsed_device;
  // --preset has a default: it applies only when neither --model nor --config is given.
  const bool explicit_model = !f.model_dir.empty() || !f.config_file.empty();
  auto bench_model = ResolveBenchModel(f.model_dir, f.config_file, explicit_model ? "" : f.preset);
  if (!bench_model.ok()) return Fail(std::string(bench_model.status().message()));
  ModelConfig config = bench_model->config;
  const std::string source = bench_model->source;
  if (config.model_type != ModelType::kStt) return Fail(source + " is not an STT model");

  c10::InferenceMode guard;
  LmLoadOptions load;
  load.dtype = dtype;
  load.device = device;
  absl::StatusOr<std::shared_ptr<const LmModel>> lm_or;
  absl::StatusOr<MimiModel> mimi_or = absl::UnknownError("unset");
  if (!f.model_dir.empty()) {
    auto lm_path = ResolveModelFile(f.model_dir, config.moshi_name);
    auto mimi_path = ResolveModelFile(f.model_dir, config.mimi_name);
    if (!lm_path.ok()) return Fail(std::string(lm_path.status().message()));
    if (!mimi_path.ok()) return Fail(std::string(mimi_path.status().message()));
    lm_or = LmModel::LoadFile(config.lm, lm_path->string(), load);
    mimi_or = LoadMimiFile(mimi_path->string(), config.mimi, device);
  } else {
    auto checkpoint_dtype = ParseCheckpointDtypeFlag(f.checkpoint_dtype);
    if (!checkpoint_dtype.ok()) return Fail(std::string(checkpoint_dtype.status().message()));
    lm_or = LmModel::FromTensors(config.lm, RandomLmTensors(config.lm, 0, *checkpoint_dtype), load);
    mimi_or = RandomMimi(config.mimi, /*seed=*/0, device);
  }
  if (!lm_or.ok()) return Fail(std::string(lm_or.status().message()));
  if (!mimi_or.ok()) return Fail(std::string(mimi_or.status().message()));

  std::printf(
      "monologue bench transcribe: %s, device %s, %s, %d threads, %d steps (+%d warm-up); one step = one 80 "
      "ms "
      "frame per stream (Mimi encode + LM + extra heads)\n",
      source.c_str(), device.str().c_str(), dtype_name.c_str(), f.threads, f.steps, f.warmup);
  PrintQuantization(**lm_or);
  PrintHugePages();
  PrintCpuKernels();
  if (device.is_cpu()) PrintWeightReadFloor("LM weights", (*lm_or)->LinearBytesPerStep(), f.threads);
  if (f.active > 0) {
    // The same batches with only --active streams: each step as it was (every slot under the exec mask)
    // and compacted, alternately so that both see the same machine load.
    std::printf("%6s  %6s  %-22s  %10s  %10s  %8s\n", "batch", "active", "step", "step ms", "max ms", "RTF");
    for (int b : batches) {
      for (bool compact : {false, true}) {
        auto t = TimeBatch(config, *lm_or, *mimi_or, b, f.steps, f.warmup, f.active, compact);
        if (!t.ok()) return Fail(std::string(t.status().message()));
        std::printf("%6d  %6d  %-22s  %10.2f  %10.2f  %8.3f\n", b, std::min(f.active, b),
                    compact ? "compacted (active rows)" : "exec mask (all slots)", t->mean_ms, t->max_ms,
                    t->mean_ms / 80.0);
        std::fflush(stdout);
      }
    }
    return 0;
  }
  // lag: live audio, a frame every 80 ms: the longest a frame's words come after its audio (a backlog adds
  // up).
  std::printf("%6s  %10s  %8s  %8s  %8s  %8s  %26s  %10s\n", "batch", "step ms", "p50", "p95", "max", "RTF",
              "x realtime (all streams)", "lag ms");
  std::fflush(stdout);
  for (int b : batches) {
    auto t = TimeBatch(config, *lm_or, *mimi_or, b, f.steps, f.warmup);
    if (!t.ok()) return Fail(std::string(t.status().message()));
    std::printf("%6d  %10.2f  %8.2f  %8.2f  %8.2f  %8.3f  %26.2f  %10.1f\n", b, t->mean_ms, t->p50_ms,
                t->p95_ms, t->max_ms, t->mean_ms / 80.0, b * 80.0 / t->mean_ms, t->live_lag_ms);
    std::fflush(stdout);
  }
  if (device.is_cpu()) PrintMemoryReadSpeed(f.threads, "after the timing");

  if (f.max_streams > 0) {
    // Largest batch (doubling, then bisection) whose mean step stays within 80 ms.
    int lo = 0, hi = 0;
    for (int b = 8; b <= f.max_streams; b *= 2) {
      auto t = TimeBatch(config, *lm_or, *mimi_or, b, f.steps, f.warmup);
      if (!t.ok()) return Fail(std::string(t.status().message()));
      std::printf("  capacity probe: batch %d -> %.2f ms/step\n", b, t->mean_ms);
      std::fflush(stdout);
      if (t->mean_ms <= 80.0) {
        lo = b;
      } else {
        hi = b;
        break;
      }
    }
    if (hi == 0) hi = std::min(f.max_streams + 1, std::max(lo * 2, 1));
    while (hi - lo > std::max(1, lo / 16)) {
      const int mid = (lo + hi) / 2;
      auto t = TimeBatch(config, *lm_or, *mimi_or, mid, f.steps, f.warmup);
      if (!t.ok()) return Fail(std::string(t.status().message()));
      std::printf("  capacity probe: batch %d -> %.2f ms/step\n", mid, t->mean_ms);
      std::fflush(stdout);
      (t->mean_ms <= 80.0 ? lo : hi) = mid;
    }
    std::printf("real-time capacity: %d streams (every 80 ms step of the whole batch within 80 ms)\n", lo);
  }
  return 0;
}

int RunBenchTranscribe(const BenchTranscribeFlags& f) {
  auto parsed_batches = ParseBatchList(f.batches);
  if (!parsed_batches.ok()) return Fail(std::string(parsed_batches.status().message()));
  if (absl::Status st = CheckStepsWarmupThreads(f.steps, f.warmup, f.threads); !st.ok()) {
    return Fail(std::string(st.message()));
  }
  if (f.active < 0) return Fail("--active must be >= 1");
  if (f.active > 0 && (f.reference || f.max_streams > 0)) {
    return Fail("--active times idle slots of our engine only: not with --reference or --max-streams");
  }
  auto dtypes = ParseDtypeList(f.dtype);
  if (!dtypes.ok()) return Fail(std::string(dtypes.status().message()));
  at::set_num_threads(f.threads);
  for (size_t i = 0; i < dtypes->size(); ++i) {
    if (i > 0) std::printf("\n");
    if (int rc = RunOneDtype(f, (*dtypes)[i]); rc != 0) return rc;
  }

  if (f.reference) {
    const bool explicit_model = !f.model_dir.empty() || !f.config_file.empty();
    auto bench_model = ResolveBenchModel(f.model_dir, f.config_file, explicit_model ? "" : f.preset);
    if (!bench_model.ok()) return Fail(std::string(bench_model.status().message()));
    const ModelConfig& config = bench_model->config;
    const absl::Status st = RunReferenceBenchmark(
        f.python, f.reference_script, config, "transcribe",
        absl::StrCat(" --batch ", f.batches, " --steps ", f.steps, " --warmup ", f.warmup, " --threads ", f.threads,
                     " --dtype ", ReferenceDtype(*dtypes), " --device ", f.device));
    if (!st.ok()) return Fail(std::string(st.message()));
  }
  return 0;
}

#else

int RunBenchTranscribe(const BenchTranscribeFlags&) {
  return Fail("this build has no speech recognition (it needs sentencepiece: MONOLOGUE_WITH_SENTENCEPIECE)");
}

#endif

}  // namespace

void RegisterBenchTranscribe(CLI::App& bench, int& exit_code) {
  auto f = std::make_shared<BenchTranscribeFlags>();
  CLI::App* cmd = bench.add_subcommand(
      "transcribe", "Streaming STT step time and real-time factor (Mimi encode + LM), per batch size");
  cmd->add_option("--preset", f->preset,
                  "STT preset with random weights (default stt-1b-en_fr; stt-2.6b-en)");
  cmd->add_option("--config", f->config_file, "an STT config.json (random weights)");
  cmd->add_option("--model", f->model_dir, "a model directory (its weights)");
  cmd->add_option("--batch", f->batches, "comma-separated batch sizes (default 1,8)");
  cmd->add_option("--steps", f->steps, "timed steps per batch size (default 20)");
  cmd->add_option("--warmup", f->warmup, "untimed steps first (default 3)");
  cmd->add_option("--threads", f->threads, "CPU threads (default 2)")->check(ThreadCount());
  cmd->add_option("--device", f->device, "cpu (default) or cuda[:N]");
  cmd->add_option("--checkpoint-dtype", f->checkpoint_dtype, kCheckpointDtypeHelp)->capture_default_str();
  cmd->add_option(
      "--dtype", f->dtype,
      "LM dtype: f32 (default), bf16, f16, int8, int4 (CPU); a comma-separated list times each in turn "
      "(e.g. int8,f32)");
  cmd->add_flag("--reference", f->reference,
                "then run the reference's loop (bench/bench_transcribe_reference.py) with the same settings");
  cmd->add_option("--python", f->python,
                  "python with the reference package (default $MONOLOGUE_PYTHON or the venv)");
  cmd->add_option("--reference-script", f->reference_script, "path of bench_transcribe_reference.py");
  cmd->add_option("--max-streams", f->max_streams,
                  "also search the largest real-time batch up to this many streams (GPU capacity)");
  cmd->add_option("--active", f->active,
                  "open only this many streams per batch and time the step with every slot computed (exec "
                  "mask) and compacted to the active ones");
  cmd->callback([f, &exit_code] { exit_code = RunBenchTranscribe(*f); });
}

}  // namespace monologue::cli
