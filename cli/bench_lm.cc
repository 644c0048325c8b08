// `monologue bench lm`: per-step time of the Moshi LM streaming generator (greedy), split into the
// temporal transformer (embeddings + transformer + text head) and the depformer (all codebooks, sampling
// included), for each batch size. Weights: a model directory (--model), or random weights for a
// config.json (--config) or a preset (--preset); the speed does not depend on the values. The reference's
// counterpart is bench/bench_lm_reference.py (same three measurements); `--write-config FILE` writes the
// config.json it needs for a preset.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cli/bench_command.h"
#include "cli/bench_options.h"
#include "cli/flag_checks.h"
#include "cli/memory_speed.h"
#include "core/config/model_config.h"
#include "core/io/output_file.h"
#include "core/lm/lm_gen.h"
#include "core/lm/lm_model.h"
#include "core/model/presets.h"
#include "core/model/random_model.h"

namespace monologue::cli {
namespace {

struct BenchLmFlags {
  std::string model_dir;
  std::string config_file;
  std::string preset;
  std::string write_config;
  int threads = 2;
  std::string batches = "1,8";
  int steps = 50;
  int warmup = 5;
  std::string device = "cpu";
  std::string dtype = "f32";
  std::string checkpoint_dtype = "bf16";
};

double Ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Neutral conditions for a conditioned (TTS) model: each LUT's first value, a 4-step zero tensor.
absl::StatusOr<LmFusedConditions> DefaultConditions(const LmModel& model, int64_t batch) {
  if (!model.has_fuser()) return LmFusedConditions{};
  std::map<std::string, LmCondition> conds;
  for (const auto& [name, cc] : model.config().conditioners) {
    if (cc.type == ConditionerConfig::Type::kLut) {
      std::optional<std::string> v;
      if (!cc.possible_values.empty()) v = cc.possible_values[0];
      auto c = model.ConditionFromText(name, std::vector<std::optional<std::string>>(batch, v));
      if (!c.ok()) return c.status();
      conds[name] = *c;
    } else {
      auto c =
          model.ConditionFromTensor(name, at::zeros({batch, 4, cc.dim}), at::ones({batch, 4}, at::kBool));
      if (!c.ok()) return c.status();
      conds[name] = *c;
    }
  }
  return model.Fuse(conds);
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "monologue bench lm: %s\n", message.c_str());
  return 1;
}

// One dtype's table: loads the model at `dtype_name` and times every batch size.
int RunOneDtype(const BenchLmFlags& f, const BenchModel& bench_model, const std::vector<int64_t>& batches,
                const c10::Device device, const std::string& dtype_name) {
  auto fail = Fail;
  const at::ScalarType dtype = *ParseDtypeFlag(dtype_name);  // checked by the caller
  const ModelConfig& config = bench_model.config;
  const std::string& source = bench_model.source;
  LmLoadOptions load;
  load.dtype = dtype;
  load.device = device;
  absl::StatusOr<std::shared_ptr<const LmModel>> model_or;
  if (!f.model_dir.empty()) {
    auto path = ResolveModelFile(f.model_dir, config.moshi_name);
    if (!path.ok()) return fail(std::string(path.status().message()));
    model_or = LmModel::LoadFile(config.lm, path->string(), load);
  } else {
    auto checkpoint_dtype = ParseCheckpointDtypeFlag(f.checkpoint_dtype);
    if (!checkpoint_dtype.ok()) return fail(std::string(checkpoint_dtype.status().message()));
    model_or = LmModel::FromTensors(config.lm, RandomLmTensors(config.lm, 0, *checkpoint_dtype), load);
  }
  if (!model_or.ok()) return fail(std::string(model_or.status().message()));
  std::shared_ptr<const LmModel> model = *model_or;
  const LmConfig& lc = model->config();

  std::printf("monologue bench lm: %s, device %s, %s, %d threads, greedy, %d steps (+%d warm-up)\n",
              source.c_str(), device.str().c_str(), dtype_name.c_str(), f.threads, f.steps, f.warmup);
  PrintQuantization(*model);
  PrintHugePages();
  PrintCpuKernels();
  if (device.is_cpu()) PrintWeightReadFloor("LM weights", model->LinearBytesPerStep(), f.threads);
  std::printf("%6s  %14s  %14s  %16s\n", "batch", "step ms", "temporal ms", "depformer ms");
  c10::InferenceMode guard;
  for (int64_t b : batches) {
    auto conds = DefaultConditions(*model, b);
    if (!conds.ok()) return fail(std::string(conds.status().message()));
    LmGenOptions options;
    options.text = {false, 0.0, 0};
    options.audio = {false, 0.0, 0};
    auto gen_or = LmGen::Create(model, b, options, *conds);
    if (!gen_or.ok()) return fail(std::string(gen_or.status().message()));
    LmGen& gen = **gen_or;
    const int64_t n_in = lc.n_q - lc.dep_q;
    at::manual_seed(0);
    at::Tensor inputs = at::randint(lc.card, {f.warmup + f.steps, b, n_in}, at::kLong).to(device);
    // Full steps.
    at::Tensor last;
    for (int i = 0; i < f.warmup; ++i) last = gen.Step(inputs[i]).value().tokens;
    if (last.defined()) last.cpu();
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < f.steps; ++i) last = gen.Step(inputs[f.warmup + i]).value().tokens;
    last.cpu();  // waits for an accelerator
    auto t1 = std::chrono::steady_clock::now();
    const double step_ms = Ms(t0, t1) / f.steps;
    // Temporal transformer alone (a state of its own, fed random tokens).
    LmTemporalState state = model->NewTemporalState(b);
    if (conds->cross.defined()) model->SetCrossSource(state, conds->cross);
    at::Tensor sum = conds->sum.defined() ? conds->sum.to(device, model->dtype()) : at::Tensor();
    at::Tensor tokens = at::randint(lc.card, {f.warmup + f.steps, b, lc.num_streams()}, at::kLong).to(device);
    LmModel::TextStep ts;
    for (int i = 0; i < f.warmup; ++i) ts = model->ForwardText(state, tokens[i], sum);
    if (ts.text_logits.defined()) ts.text_logits.cpu();  // nothing to wait for with --warmup 0
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < f.steps; ++i) ts = model->ForwardText(state, tokens[f.warmup + i], sum);
    ts.text_logits.cpu();
    t1 = std::chrono::steady_clock::now();
    const double temporal_ms = Ms(t0, t1) / f.steps;
    // Depformer alone (greedy over all codebooks) on the last temporal output.
    double depformer_ms = 0;
    if (model->has_depformer()) {
      LmDepformerState dep = model->NewDepformerState(b);
      at::Tensor text = ts.text_logits.argmax(-1).view({b});
      auto run = [&]() {
        std::vector<at::Tensor> in = model->DepformerInputs(ts.transformer_out);
        at::Tensor prev = text;
        for (int64_t k = 0; k < lc.dep_q; ++k) prev = model->DepformerStep(dep, k, prev, in[k]).argmax(-1);
        return prev;
      };
      for (int i = 0; i < f.warmup; ++i) last = run();
      if (last.defined()) last.cpu();
      t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < f.steps; ++i) last = run();
      last.cpu();
      t1 = std::chrono::steady_clock::now();
      depformer_ms = Ms(t0, t1) / f.steps;
    }
    std::printf("%6lld  %14.3f  %14.3f  %16.3f\n", static_cast<long long>(b), step_ms, temporal_ms,
                depformer_ms);
    std::fflush(stdout);
  }
  if (device.is_cpu()) PrintMemoryReadSpeed(f.threads, "after the timing");
  return 0;
}

int RunBenchLm(const BenchLmFlags& f) {
  auto bench_model = ResolveBenchModel(f.model_dir, f.config_file, f.preset);
  if (!bench_model.ok()) return Fail(std::string(bench_model.status().message()));
  auto parsed_batches = ParseBatchList(f.batches);
  if (!parsed_batches.ok()) return Fail(std::string(parsed_batches.status().message()));
  if (absl::Status st = CheckStepsWarmupThreads(f.steps, f.warmup, f.threads); !st.ok()) {
    return Fail(std::string(st.message()));
  }
  auto dtypes = ParseDtypeList(f.dtype);
  if (!dtypes.ok()) return Fail(std::string(dtypes.status().message()));
  at::set_num_threads(f.threads);
  auto parsed_device = ParseDeviceFlag(f.device);
  if (!parsed_device.ok()) return Fail(std::string(parsed_device.status().message()));
  if (!f.write_config.empty()) {
    ModelConfig config = bench_model->config;
    // A Mimi other than the released one (the tiny presets') goes beside it, named by mimi_config_name, so
    // that --config FILE is the same model again.
    std::string mimi_written;
    if (MimiConfigToJson(config.mimi) != MimiConfigToJson(MimiConfig{})) {
      const std::filesystem::path mimi_path =
          std::filesystem::path(f.write_config).parent_path() /
          (std::filesystem::path(f.write_config).stem().string() + "_mimi.json");
      config.mimi_config_name = mimi_path.filename().string();
      if (absl::Status st =
              WriteFileReplacing(mimi_path.string(), MimiConfigToJson(config.mimi).dump(1) + "\n");
          !st.ok()) {
        return Fail(std::string(st.message()));
      }
      mimi_written = " and " + mimi_path.string();
    }
    if (absl::Status st = WriteFileReplacing(f.write_config, ModelConfigToJson(config).dump(1) + "\n");
        !st.ok()) {
      return Fail(std::string(st.message()));
    }
    std::printf("wrote %s%s\n", f.write_config.c_str(), mimi_written.c_str());
    return 0;
  }
  // Each dtype in turn, in one process (the same random weights, loaded at each dtype).
  for (size_t i = 0; i < dtypes->size(); ++i) {
    if (i > 0) std::printf("\n");
    if (int rc = RunOneDtype(f, *bench_model, *parsed_batches, *parsed_device, (*dtypes)[i]); rc != 0)
      return rc;
  }
  return 0;
}

}  // namespace

void RegisterBenchLm(CLI::App& bench, int& exit_code) {
  auto flags = std::make_shared<BenchLmFlags>();
  CLI::App* cmd =
      bench.add_subcommand("lm", "Moshi LM streaming step time (temporal transformer, depformer)");
  cmd->add_option("--model", flags->model_dir, "model directory (config.json + weights)");
  cmd->add_option("--config", flags->config_file, "a config.json: random weights of that architecture");
  cmd->add_option("--preset", flags->preset, "a named configuration (e.g. stt-1b-en_fr): random weights");
  cmd->add_option("--write-config", flags->write_config,
                  "write the config.json of the chosen model and exit");
  cmd->add_option("--threads", flags->threads, "CPU threads (at::set_num_threads)")
      ->capture_default_str()
      ->check(ThreadCount());
  cmd->add_option("--batch", flags->batches, "comma-separated batch sizes")->capture_default_str();
  cmd->add_option("--steps", flags->steps, "timed steps per measurement")->capture_default_str();
  cmd->add_option("--warmup", flags->warmup, "untimed steps first")->capture_default_str();
  cmd->add_option("--device", flags->device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_option(
         "--dtype", flags->dtype,
         "f32, bf16, f16, int8 or int4 (CPU); a comma-separated list times each in turn (e.g. int8,f32)")
      ->capture_default_str();
  cmd->add_option("--checkpoint-dtype", flags->checkpoint_dtype, kCheckpointDtypeHelp)->capture_default_str();
  cmd->callback([flags, &exit_code]() { exit_code = RunBenchLm(*flags); });
}

}  // namespace monologue::cli
