// `monologue synthesize`: streaming text to speech with a DSM TTS model (kyutai/tts-1.6b-en_fr).
//
//   monologue synthesize "Hello world." -o hello.wav --voice expresso/ex03-ex01_happy_001_channel1_334s.wav
//   some-llm | monologue synthesize - -o - | aplay      # speaks as the text arrives
//   monologue synthesize --text-file lines.txt -o out/  # one utterance per line, batched (one slot each)
//   monologue synthesize --script dialogue.json --voice A --voice B -o dialogue.wav
//
// Inputs (exactly one kind): TEXT... (joined with spaces: one utterance), `-` (stdin, read as it arrives),
// --text-file F (repeatable; every non-empty line is an utterance), --script F (a JSON list of turns, spoken
// alternately by the first and second --voice).
// Outputs: -o FILE (.wav, .ogg/.opus; `-` = stdout, written frame by frame: WAV with an open length, or raw
// with --format s16le|f32le). Several utterances: -o DIR (DIR/<name>.<ext>) or a pattern with {name} /
// {index}, where {name} is the text file's stem and the line number ("lines-3"); --words-out / --codes-out
// take the same patterns.
// The audio is what the DSM script writes: every frame after the audio delay, decoded in streaming order.
// Errors (exit status 1; the other utterances are still synthesized): empty text, a voice that is not found
// or has the wrong shape, an unwritable output.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/flag_checks.h"
#include "cli/synthesize.h"

namespace monologue::cli {
namespace synthesize {

void Error(const std::string& message) {
  std::fprintf(stderr, "monologue synthesize: %s\n", message.c_str());
}

#if !(defined(MONOLOGUE_HAVE_TTS) && defined(MONOLOGUE_HAVE_FFMPEG))

int RunSynthesize(const SynthesizeFlags&) {
  Error("this build has no speech synthesis (it needs sentencepiece and FFmpeg: MONOLOGUE_WITH_SENTENCEPIECE, "
        "MONOLOGUE_WITH_FFMPEG)");
  return 1;
}

#endif

}  // namespace synthesize

void RegisterSynthesizeCommand(CLI::App& app, int& exit_code) {
  auto f = std::make_shared<synthesize::SynthesizeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "synthesize", "Text to speech with a DSM TTS model (kyutai/tts-1.6b-en_fr), streaming");
  cmd->add_option("text", f->text, "the text to speak (words joined with spaces), or - to read stdin as it arrives");
  // One value per occurrence (repeat the flag for more): greedy vector options took the text that followed
  // as more files or voices.
  cmd->add_option("--text-file", f->text_files,
                  "a text file: every non-empty line is an utterance (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--script", f->script, "a JSON list of turns, spoken alternately by the first and second --voice");
  auto* model = cmd->add_option("--model", f->model_dir, "model directory (config.json, weights, tokenizer)");
  cmd->add_option("--hf-repo", f->hf_repo,
                  "Hugging Face repo, fetched into the local cache on first use (default kyutai/tts-1.6b-en_fr "
                  "when --model is not given; HF_HUB_OFFLINE=1: cache only)")
      ->excludes(model);
  cmd->add_option("--revision", f->revision, "--hf-repo's branch, tag or commit (default main)")
      ->excludes(model);
  cmd->add_option("--lora", f->lora, "a LoRA adapter .safetensors fused into the LM at load");
  cmd->add_option(
         "--voice", f->voices,
         "a voice: a .safetensors voice file, or a name in --voices (repeatable: one per speaker; default "
         "expresso/ex03-ex01_happy_001_channel1_334s.wav)")
      ->allow_extra_args(false);
  cmd->add_option("--voices", f->voices_dir,
                  "a folder laid out like the kyutai/tts-voices repo (default: that repo in the local HF cache)");
  cmd->add_option("-o,--output", f->output,
                  "output audio (.wav, .ogg; - = stdout); with several utterances a directory or a {name}/{index} "
                  "pattern");
  cmd->add_option("--format", f->format, "wav, ogg, s16le or f32le (default: from the extension; wav for -)")
      ->check(CLI::IsMember({"wav", "ogg", "s16le", "f32le"}));
  cmd->add_option("--words-out", f->words_out, "word timestamps as JSON: [{text, start, end}] in output seconds");
  cmd->add_option("--codes-out", f->codes_out,
                  "safetensors with codes int64 [1, Q, frames] (decoded frames) and text_tokens int64 [steps]");
  auto* temp =
      cmd->add_option("--temp", f->temp, "sampling temperature for text and audio (default 0.6; 0 = greedy)")
          ->check(FiniteAtLeast(0));
  cmd->add_option("--seed", f->seed, "sampling seed (the reference's draws after torch.manual_seed(S))")
      ->check(Seed());
  auto* cfg = cmd->add_option("--cfg-coef", f->cfg_coef,
                  "classifier-free guidance (default 2.0): a condition value for CFG-distilled models, real CFG "
                  "otherwise");
  auto* padding = cmd->add_option("--padding-between", f->padding_between,
                                  "forced padding steps between words (default 1)")
                      ->check(WholeAtLeast(0));
  auto* bonus = cmd->add_option("--padding-bonus", f->padding_bonus,
                                "added to the PAD logit: positive = slower speech (default 0)");
  cmd->add_option(
         "--server", f->server,
         "HOST:PORT of a `monologue serve --tts ...`: synthesize there (voices are the server's names)")
      ->check(ServerAddress());
  cmd->add_option("--n-q", f->n_q, "audio codebooks to generate (default: all of the model's)")
      ->check(WholeAtLeast(1));
  cmd->add_option("--batch-size", f->batch_size, "utterances synthesized together (default: all, at most 8)")
      ->check(WholeAtLeast(1));
  cmd->add_option("--threads", f->threads, "CPU threads for the model (default: libtorch's)")
      ->check(ThreadCount());
  cmd->add_option("--device", f->device, "cpu (default), cuda or cuda:N");
  cmd->add_option("--dtype", f->dtype,
                  "LM dtype: f32, bf16, f16, int8 or int4 (quantised weights, CPU only) (default: f32 on "
                  "CPU, int8 there for a quantize: true checkpoint, bf16 on CUDA)");
  cmd->add_flag("--progress", f->progress, "progress on stderr (default: when stderr is a terminal)");
  cmd->add_flag("--no-progress", f->no_progress, "never show progress");
  cmd->callback([cmd, f, temp, cfg, padding, bonus, &exit_code] {
    if (!f->server.empty()) {
      const std::string local = LocalFlagGivenWithServer(
          *cmd,
          {"--lora", "--voices", "--n-q", "--device", "--dtype", "--batch-size", "--threads", "--revision"});
      if (!local.empty()) {
        std::fprintf(stderr, "monologue synthesize: %s\n", local.c_str());
        exit_code = 2;
        return;
      }
    }
    f->temp_set = temp->count() > 0;
    f->cfg_set = cfg->count() > 0;
    f->padding_set = padding->count() > 0;
    f->bonus_set = bonus->count() > 0;
    exit_code = synthesize::RunSynthesize(*f);
  });
}

}  // namespace monologue::cli
