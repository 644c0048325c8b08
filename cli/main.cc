// `monologue`: one binary, one subcommand per job (see cli/command.h).
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/command.h"

int main(int argc, char** argv) {
  CLI::App app{"monologue: Kyutai's Moshi-family speech models (Mimi codec, DSM STT/TTS, Moshi) in C++",
               "monologue"};
  app.set_version_flag("--version", "monologue 0.1.0");
  app.require_subcommand(1);
  int exit_code = 0;
  monologue::cli::RegisterInfoCommand(app, exit_code);
  monologue::cli::RegisterBenchCommand(app, exit_code);
  monologue::cli::RegisterChatCommand(app, exit_code);
  monologue::cli::RegisterCodecCommand(app, exit_code);
  monologue::cli::RegisterDownloadCommand(app, exit_code);
  monologue::cli::RegisterServeCommand(app, exit_code);
  monologue::cli::RegisterSynthesizeCommand(app, exit_code);
  monologue::cli::RegisterTranscribeCommand(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
