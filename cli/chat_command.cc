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
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/chat.h"
#include "cli/command.h"
#include "cli/flag_checks.h"

namespace monologue::cli {
namespace chat {

void Error(const std::string& message) { std::fprintf(stderr, "monologue chat: %s\n", message.c_str()); }

#if !(defined(MONOLOGUE_HAVE_DIALOGUE) && defined(MONOLOGUE_HAVE_FFMPEG))

int RunChat(const ChatFlags&) {
  Error("this build has no dialogue mode (it needs sentencepiece and FFmpeg)");
  return 1;
}

#endif

}  // namespace chat

void RegisterChatCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<chat::ChatFlags>();
  CLI::App* cmd = app.add_subcommand("chat",
                                     "Full-duplex dialogue with a Moshi model, offline: the user's audio in, "
                                     "Moshi's side out (time-aligned)");
  cmd->add_option("input", flags->input, "the user's audio (any format FFmpeg reads)");
  cmd->add_option(
      "-o,--output", flags->output,
      "Moshi's side, same length as the input: 24 kHz WAV (.wav; - = stdout) or Ogg/Opus (.ogg, .opus)");
  auto* model =
      cmd->add_option("--model", flags->model_dir, "model directory (config.json or the legacy layout)");
  cmd->add_option(
         "--hf-repo", flags->hf_repo,
         "Hugging Face repo in the local cache (default kyutai/moshiko-pytorch-bf16 without --model)")
      ->excludes(model);
  cmd->add_option("--seed", flags->seed, "sampling seed, as torch.manual_seed (default 4242)")->check(Seed());
  auto* temp =
      cmd->add_option("--temp", flags->temp, "audio temperature (0: greedy)")->check(FiniteAtLeast(0));
  auto* temp_text = cmd->add_option("--temp-text", flags->temp_text, "text temperature (0: greedy)")
                        ->check(FiniteAtLeast(0));
  auto* top_k = cmd->add_option("--top-k", flags->top_k, "audio top-k")->check(WholeAtLeast(1));
  auto* top_k_text = cmd->add_option("--top-k-text", flags->top_k_text, "text top-k")->check(WholeAtLeast(1));
  cmd->add_option("--prepend-silence", flags->prepend_silence,
                  "seconds of silence fed before the input, dropped from the output (default 0)")
      ->check(FiniteAtLeast(0));
  cmd->add_option("--text-out", flags->text_out, "JSON file: Moshi's text pieces and words with times");
  cmd->add_flag("--stereo", flags->stereo, "write the user on the left, Moshi on the right");
  cmd->add_option("--codes-out", flags->codes_out,
                  "safetensors file: codes int64 [1, 8, F] and text_tokens int64 [F] of every model step");
  cmd->add_option("--fdb", flags->fdb,
                  "Full-Duplex-Bench directory: every **/input.wav -> output.wav beside it");
  cmd->add_flag("--overwrite", flags->overwrite, "--fdb: redo existing outputs");
  cmd->add_option("--samples", flags->samples, "--fdb: outputs per input (seeds S..S+N-1, output_i.wav)")
      ->check(WholeAtLeast(1));
  cmd->add_option("--batch-size", flags->batch_size, "--fdb: inputs processed together (default 8)")
      ->check(WholeAtLeast(1));
  cmd->add_flag("--progress", flags->progress, "progress bar on stderr (default: when stderr is a terminal)");
  cmd->add_flag("--no-progress", flags->no_progress, "never show the progress bar");
  cmd->add_option("--lora", flags->lora, "a LoRA adapter .safetensors fused into the LM at load");
  cmd->add_option("--server", flags->server,
                  "HOST:PORT of a `monologue serve --dialogue ...`: converse there (same outputs)")
      ->check(ServerAddress());
  cmd->add_option("--device", flags->device, "cpu (default), cuda or cuda:N");
  cmd->add_option("--dtype", flags->dtype,
                  "LM dtype: f32, bf16, f16, int8 or int4 (quantised weights, CPU only) (default: f32 on "
                  "CPU, int8 there for a quantize: true checkpoint, bf16 on CUDA)");
  cmd->add_option("--threads", flags->threads, "CPU threads for the model (default: libtorch's)")
      ->check(ThreadCount());
  cmd->callback([cmd, flags, temp, temp_text, top_k, top_k_text, &exit_code] {
    if (!flags->server.empty()) {
      const std::string local =
          LocalFlagGivenWithServer(*cmd, {"--samples", "--batch-size", "--device", "--dtype", "--threads"});
      if (!local.empty()) {
        std::fprintf(stderr, "monologue chat: %s\n", local.c_str());
        exit_code = 2;
        return;
      }
    }
    flags->has_temp = temp->count() > 0;
    flags->has_temp_text = temp_text->count() > 0;
    flags->has_top_k = top_k->count() > 0;
    flags->has_top_k_text = top_k_text->count() > 0;
    exit_code = chat::RunChat(*flags);
  });
}

}  // namespace monologue::cli
