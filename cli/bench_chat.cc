// `monologue bench chat`: speed of full-duplex dialogue through the engine `monologue chat` uses
// (dialogue/dialogue_engine.h): every step encodes one 80 ms user frame per stream with Mimi, runs the LM
// (temporal transformer + depformer sampling Moshi's 8 codebooks) and decodes Moshi's frame with Mimi.
// Reported per batch size: milliseconds per step (and its encode / LM / decode split), the real-time factor
// (step time / 80 ms: below 1 means every conversation of the batch keeps up with real time) and how many
// times real time the whole batch runs. Weights: random (in memory, generated tensor by tensor in the LM
// dtype, so Moshi 7B in bf16 needs ~16 GB) for a preset or config.json, or a model directory. Sampling: the
// LMGen defaults (top-k capped at the model's card). `--reference` then frees the model and runs
// bench/bench_chat_reference.py (the reference's run_inference loop, same architecture, batch sizes and
// sampling) in the same run.
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

#include "absl/strings/str_cat.h"
#include "cli/bench_command.h"
#include "cli/bench_options.h"
#include "cli/bench_reference.h"
#include "cli/bench_step_stats.h"
#include "cli/flag_checks.h"
#include "core/config/model_config.h"
#include "core/lm/lm_model.h"
#include "core/mimi/mimi_loader.h"
#include "core/model/presets.h"
#include "core/model/random_model.h"

#if defined(MONOLOGUE_HAVE_DIALOGUE)
#include "dialogue/dialogue_engine.h"
#include "dialogue/dialogue_engine_builder.h"
#endif

namespace monologue::cli {
namespace {

struct BenchChatFlags {
  std::string preset = "tiny-moshi-8";
  std::string config_file;
  std::string model_dir;
  std::string batches = "1,8";
  int steps = 20;
  int warmup = 10;
  int threads = 2;
  std::string device = "cpu";
  std::string dtype;  // "" = the engines' default for the model and device
  std::string checkpoint_dtype = "bf16";
  bool reference = false;
  std::string python;
  std::string reference_script = "bench/bench_chat_reference.py";
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "monologue bench chat: %s\n", message.c_str());
  return 1;
}

#if defined(MONOLOGUE_HAVE_DIALOGUE)

struct Timing {
  StepStats steps;
  double encode_ms = 0, lm_ms = 0, decode_ms = 0;
};

absl::StatusOr<Timing> TimeBatch(const ModelConfig& config, const std::shared_ptr<const LmModel>& lm,
                                 const MimiModel& mimi, int b, int steps, int warmup) {
  DialogueEngineOptions options;
  options.batch_size = b;
  options.sampling.top_k = static_cast<int>(std::min<int64_t>(250, config.lm.card));
  options.sampling.top_k_text = static_cast<int>(std::min<int64_t>(25, config.lm.text_card));
  auto engine_or = DialogueEngineBuilder::Create(config, lm, mimi, nullptr, options);
  if (!engine_or.ok()) return engine_or.status();
  DialogueEngine& engine = **engine_or;
  std::vector<std::unique_ptr<DialogueSession>> sessions;
  const size_t samples = static_cast<size_t>(warmup + steps) * 1920;
  std::vector<float> audio(samples);
  for (int i = 0; i < b; ++i) {
    auto s = engine.OpenSession(static_cast<uint64_t>(i));
    if (!s.ok()) return s.status();
    for (size_t k = 0; k < samples; ++k) {
      audio[k] = 0.1f * std::sin(0.001f * static_cast<float>((k * (i + 3)) % 100003));
    }
    if (absl::Status st = (*s)->PushAudio(audio); !st.ok()) return st;
    sessions.push_back(std::move(*s));
  }
  for (int i = 0; i < warmup + 1; ++i) {  // +1: every session's first (duplicated-frame) step
    if (auto n = engine.Step(); !n.ok()) return n.status();
  }
  const double e0 = engine.encode_seconds(), l0 = engine.lm_seconds(), d0 = engine.decode_seconds();
  Timing t;
  std::vector<double> step_ms;
  step_ms.reserve(static_cast<size_t>(steps));
  for (int i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto n = engine.Step();
    if (!n.ok()) return n.status();
    if (*n != b) return absl::InternalError(absl::StrCat("step ran ", *n, " of ", b, " streams"));
    for (auto& s : sessions) (void)s->PollEvents();
    step_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  t.steps = SummarizeSteps(step_ms);
  t.encode_ms = (engine.encode_seconds() - e0) * 1000 / steps;
  t.lm_ms = (engine.lm_seconds() - l0) * 1000 / steps;
  t.decode_ms = (engine.decode_seconds() - d0) * 1000 / steps;
  return t;
}

int RunBenchChat(const BenchChatFlags& f) {
  auto parsed_batches = ParseBatchList(f.batches);
  if (!parsed_batches.ok()) return Fail(std::string(parsed_batches.status().message()));
  const std::vector<int> batches(parsed_batches->begin(), parsed_batches->end());
  if (absl::Status st = CheckStepsWarmupThreads(f.steps, f.warmup, f.threads); !st.ok()) {
    return Fail(std::string(st.message()));
  }
  if (!f.dtype.empty()) {
    if (auto d = ParseDtypeFlag(f.dtype); !d.ok()) return Fail(std::string(d.status().message()));
  }
  at::set_num_threads(f.threads);
  auto parsed_device = ParseDeviceFlag(f.device);
  if (!parsed_device.ok()) return Fail(std::string(parsed_device.status().message()));
  const c10::Device device = *parsed_device;
  const bool explicit_model = !f.model_dir.empty() || !f.config_file.empty();
  auto bench_model = ResolveBenchModel(f.model_dir, f.config_file, explicit_model ? "" : f.preset);
  if (!bench_model.ok()) return Fail(std::string(bench_model.status().message()));
  ModelConfig config = bench_model->config;
  const std::string source = bench_model->source;
  // As `chat` chooses: int8 on the CPU for a quantize: true checkpoint (f32 would be 4x its size: 28 GB for
  // Moshi 7B), bf16 on CUDA, f32 otherwise.
  const std::string dtype_name = !f.dtype.empty()            ? f.dtype
                                 : device.is_cuda()          ? std::string("bf16")
                                 : config.lm.int8_checkpoint ? std::string("int8")
                                                             : std::string("f32");
  auto parsed_dtype = ParseDtypeFlag(dtype_name);
  if (!parsed_dtype.ok()) return Fail(std::string(parsed_dtype.status().message()));
  const at::ScalarType dtype = *parsed_dtype;
  if (config.model_type != ModelType::kMoshi || config.lm.dep_q == 0) {
    return Fail(source + " is not a full-duplex Moshi model");
  }

  {
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
      // Built tensor by tensor in the checkpoint dtype (a 7B model would not fit twice in f32; from bf16, f32
      // on the CPU keeps the Linear weights in bf16 and bf16 loads without a copy).
      auto checkpoint_dtype = ParseCheckpointDtypeFlag(f.checkpoint_dtype);
      if (!checkpoint_dtype.ok()) return Fail(std::string(checkpoint_dtype.status().message()));
      lm_or = LmModel::FromTensors(config.lm, RandomLmTensors(config.lm, 0, *checkpoint_dtype), load);
      mimi_or = RandomMimi(config.mimi, /*seed=*/0, device);
    }
    if (!lm_or.ok()) return Fail(std::string(lm_or.status().message()));
    if (!mimi_or.ok()) return Fail(std::string(mimi_or.status().message()));

    std::printf(
        "monologue bench chat: %s, device %s, %s, %d threads, %d steps (+%d warm-up); one step = one 80 ms "
        "frame "
        "per conversation (Mimi encode + LM with depformer sampling + Mimi decode)\n",
        source.c_str(), device.str().c_str(), dtype_name.c_str(), f.threads, f.steps, f.warmup);
    PrintQuantization(**lm_or);
    PrintHugePages();
    PrintCpuKernels();
    // lag: live audio, a frame every 80 ms: the longest Moshi's frame comes after the user's (a backlog adds
    // up).
    std::printf("%6s  %10s  %8s  %9s  %9s  %9s  %8s  %12s  %8s\n", "batch", "step ms", "max ms", "encode",
                "lm", "decode", "RTF", "x realtime", "lag ms");
    std::fflush(stdout);
    for (int b : batches) {
      auto t = TimeBatch(config, *lm_or, *mimi_or, b, f.steps, f.warmup);
      if (!t.ok()) return Fail(std::string(t.status().message()));
      const StepStats& st = t->steps;
      std::printf("%6d  %10.2f  %8.2f  %9.2f  %9.2f  %9.2f  %8.3f  %12.2f  %8.1f\n", b, st.mean_ms, st.max_ms,
                  t->encode_ms, t->lm_ms, t->decode_ms, st.mean_ms / 80.0, b * 80.0 / st.mean_ms,
                  st.live_lag_ms);
      std::fflush(stdout);
    }
  }  // the model is freed before the reference loads its own

  if (f.reference) {
    const absl::Status st = RunReferenceBenchmark(
        f.python, f.reference_script, config, "chat",
        absl::StrCat(" --batch ", f.batches, " --steps ", f.steps, " --warmup ", f.warmup, " --threads ",
                     f.threads, " --dtype ", dtype_name, " --device ", f.device));
    if (!st.ok()) return Fail(std::string(st.message()));
  }
  return 0;
}

#else

int RunBenchChat(const BenchChatFlags&) { return Fail("this build has no dialogue mode"); }

#endif

}  // namespace

void RegisterBenchChat(CLI::App& bench, int& exit_code) {
  auto f = std::make_shared<BenchChatFlags>();
  CLI::App* cmd = bench.add_subcommand(
      "chat",
      "Full-duplex dialogue step time and real-time factor (Mimi encode + LM + Mimi decode), per batch");
  cmd->add_option("--preset", f->preset, "Moshi preset with random weights (default tiny-moshi-8; moshi-7b)");
  cmd->add_option("--config", f->config_file, "a Moshi config.json (random weights)");
  cmd->add_option("--model", f->model_dir, "a model directory (its weights)");
  cmd->add_option("--batch", f->batches, "comma-separated batch sizes (default 1,8)");
  cmd->add_option("--steps", f->steps, "timed steps per batch size (default 20)");
  cmd->add_option("--warmup", f->warmup, "untimed steps first (default 10)");
  cmd->add_option("--threads", f->threads, "CPU threads (default 2)")->check(ThreadCount());
  cmd->add_option("--device", f->device, "cpu (default) or cuda[:N]");
  cmd->add_option("--dtype", f->dtype,
                  "LM dtype: f32, bf16, f16, int8, int4 (CPU) (default as chat: f32 on CPU, int8 there for a "
                  "quantize: true checkpoint, bf16 on CUDA)");
  cmd->add_option("--checkpoint-dtype", f->checkpoint_dtype, kCheckpointDtypeHelp)->capture_default_str();
  cmd->add_flag("--reference", f->reference,
                "then run the reference's loop (bench/bench_chat_reference.py) with the same settings");
  cmd->add_option("--python", f->python,
                  "python with the reference package (default $MONOLOGUE_PYTHON or the venv)");
  cmd->add_option("--reference-script", f->reference_script, "path of bench_chat_reference.py");
  cmd->callback([f, &exit_code] { exit_code = RunBenchChat(*f); });
}

}  // namespace monologue::cli
