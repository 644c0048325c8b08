// `monologue bench codec`: Mimi streaming encode and decode, per-frame wall time and real-time factor for
// each batch size. Weights: a checkpoint (--mimi) or random weights of the released architecture (the speed
// does not depend on the values). The reference's counterpart is bench/bench_codec_reference.py; run both
// in the same session to compare.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cli/bench_command.h"
#include "cli/bench_options.h"
#include "cli/bench_profile.h"
#include "cli/flag_checks.h"
#include "cli/memory_speed.h"
#include "core/mimi/mimi_loader.h"
#include "core/mimi/mimi_model.h"

namespace monologue::cli {
namespace {

struct BenchCodecFlags {
  std::string mimi;
  std::string mimi_config;
  int threads = 2;
  std::string batches = "1,8";
  int frames = 50;
  int warmup = 5;
  int codebooks = 32;
  std::string device = "cpu";
  bool profile = false;
};

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int RunBenchCodec(const BenchCodecFlags& f) {
  auto fail = [](const std::string& message) {
    std::fprintf(stderr, "monologue bench codec: %s\n", message.c_str());
    return 1;
  };
  auto parsed_batches = ParseBatchList(f.batches);
  if (!parsed_batches.ok()) return fail(std::string(parsed_batches.status().message()));
  const std::vector<int64_t>& batches = *parsed_batches;
  if (f.frames < 1 || f.warmup < 0 || f.threads < 1) return fail("--frames, --threads must be >= 1");
  at::set_num_threads(f.threads);
  auto parsed_device = ParseDeviceFlag(f.device);
  if (!parsed_device.ok()) return fail(std::string(parsed_device.status().message()));
  const c10::Device device = *parsed_device;
  if (f.profile) InitializeProfiler();  // whatever it logs at its first start, above the report

  auto config = LoadMimiConfig(f.mimi_config);
  if (!config.ok()) return fail(std::string(config.status().message()));
  auto model =
      f.mimi.empty() ? RandomMimi(*config, /*seed=*/0, device) : LoadMimiFile(f.mimi, *config, device);
  if (!model.ok()) return fail(std::string(model.status().message()));
  if (auto s = model->SetNumCodebooks(f.codebooks); !s.ok()) return fail(std::string(s.message()));

  const double frame_ms = 1000.0 * model->frame_size() / model->sample_rate();
  std::printf("monologue bench codec: %s, device %s, %d threads, %d codebooks, %d frames (+%d warm-up)\n",
              f.mimi.empty() ? "released architecture, random weights" : f.mimi.c_str(), device.str().c_str(),
              f.threads, f.codebooks, f.frames, f.warmup);
  PrintHugePages();
  PrintCpuKernels();
  if (device.is_cpu()) PrintMemoryReadSpeed(f.threads, "now");
  std::printf("%6s  %18s  %10s  %18s  %10s\n", "batch", "encode ms/frame", "encode RTF", "decode ms/frame",
              "decode RTF");
  c10::InferenceMode guard;
  for (int64_t b : batches) {
    at::manual_seed(0);
    const at::Tensor pcm = (at::randn({b, 1, model->frame_size() * (f.frames + f.warmup)}) * 0.1).to(device);
    const at::Tensor codes =
        at::randint(model->cardinality(), {b, f.codebooks, f.frames + f.warmup}, at::kLong).to(device);
    // Encode.
    MimiStreamState enc = model->NewState(b);
    const at::Tensor none;
    at::Tensor out;
    for (int i = 0; i < f.warmup; ++i) {
      out =
          model->EncodeStepUnchecked(enc, pcm.narrow(2, i * model->frame_size(), model->frame_size()), none);
    }
    if (out.defined()) out.cpu();
    auto t0 = std::chrono::steady_clock::now();
    for (int i = f.warmup; i < f.warmup + f.frames; ++i) {
      out =
          model->EncodeStepUnchecked(enc, pcm.narrow(2, i * model->frame_size(), model->frame_size()), none);
    }
    out.cpu();  // waits for an accelerator
    auto t1 = std::chrono::steady_clock::now();
    const double enc_ms = 1000.0 * Seconds(t0, t1) / f.frames;
    // Decode.
    MimiStreamState dec = model->NewState(b);
    for (int i = 0; i < f.warmup; ++i) out = model->DecodeStepUnchecked(dec, codes.narrow(2, i, 1), none);
    if (out.defined()) out.cpu();
    t0 = std::chrono::steady_clock::now();
    for (int i = f.warmup; i < f.warmup + f.frames; ++i) {
      out = model->DecodeStepUnchecked(dec, codes.narrow(2, i, 1), none);
    }
    out.cpu();
    t1 = std::chrono::steady_clock::now();
    const double dec_ms = 1000.0 * Seconds(t0, t1) / f.frames;
    std::printf("%6lld  %18.2f  %10.3f  %18.2f  %10.3f\n", static_cast<long long>(b), enc_ms,
                enc_ms / frame_ms, dec_ms, dec_ms / frame_ms);
    std::fflush(stdout);
    if (f.profile) {
      // The same frames again (the states carry on), under the profiler.
      std::printf("batch %lld encode ", static_cast<long long>(b));
      ProfileAndPrint(
          [&] {
            for (int i = f.warmup; i < f.warmup + f.frames; ++i) {
              out = model->EncodeStepUnchecked(enc, pcm.narrow(2, i * model->frame_size(), model->frame_size()),
                                               none);
            }
          },
          f.frames);
      std::printf("batch %lld decode ", static_cast<long long>(b));
      ProfileAndPrint(
          [&] {
            for (int i = f.warmup; i < f.warmup + f.frames; ++i) {
              out = model->DecodeStepUnchecked(dec, codes.narrow(2, i, 1), none);
            }
          },
          f.frames);
    }
  }
  if (device.is_cpu()) PrintMemoryReadSpeed(f.threads, "after the timing");
  std::printf(
      "RTF = compute time per step / %.0f ms of audio per stream (< 1: faster than real time for every "
      "stream of the batch)\n",
      frame_ms);
  return 0;
}

}  // namespace

void RegisterBenchCodec(CLI::App& bench, int& exit_code) {
  auto flags = std::make_shared<BenchCodecFlags>();
  CLI::App* cmd = bench.add_subcommand("codec", "Mimi streaming encode/decode speed per 80 ms frame");
  cmd->add_option("--mimi", flags->mimi,
                  "Mimi checkpoint (default: random weights of the released architecture)");
  cmd->add_option("--mimi-config", flags->mimi_config,
                  "mimi_config_name JSON for a non-released architecture");
  cmd->add_option("--threads", flags->threads, "CPU threads (at::set_num_threads)")
      ->capture_default_str()
      ->check(ThreadCount());
  cmd->add_option("--batch", flags->batches, "comma-separated batch sizes")->capture_default_str();
  cmd->add_option("--frames", flags->frames, "timed frames per batch size")->capture_default_str();
  cmd->add_option("--warmup", flags->warmup, "untimed frames first")->capture_default_str();
  cmd->add_option("--codebooks", flags->codebooks, "codebooks to encode")->capture_default_str();
  cmd->add_option("--device", flags->device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_flag("--profile", flags->profile,
                "after timing, run the frames again under libtorch's profiler and print per-op and per-layer "
                "self times");
  cmd->callback([flags, &exit_code]() { exit_code = RunBenchCodec(*flags); });
}

}  // namespace monologue::cli
