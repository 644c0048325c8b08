// `monologue bench <what>`: speed measurements (not tests). Each benchmark lives in its own file
// (cli/bench_<what>.cc) and registers itself as a sub-subcommand of `bench` through a function declared
// here and called from cli/bench_command.cc (additive edits: one declaration, one call).
#pragma once

#include <CLI/CLI.hpp>

namespace monologue::cli {

// `monologue bench codec`: Mimi streaming encode/decode per-frame time (cli/bench_codec.cc).
void RegisterBenchCodec(CLI::App& bench, int& exit_code);
// `monologue bench lm`: Moshi LM streaming step time, temporal and depformer (cli/bench_lm.cc).
void RegisterBenchLm(CLI::App& bench, int& exit_code);
// `monologue bench transcribe`: streaming STT step time / real-time factor (cli/bench_transcribe.cc).
void RegisterBenchTranscribe(CLI::App& bench, int& exit_code);
// `monologue bench chat`: full-duplex dialogue step time / real-time factor (cli/bench_chat.cc).
void RegisterBenchChat(CLI::App& bench, int& exit_code);
// `monologue bench synthesize`: streaming TTS step time, real-time factor, time to first audio
// (cli/bench_synthesize.cc).
void RegisterBenchSynthesize(CLI::App& bench, int& exit_code);

}  // namespace monologue::cli
