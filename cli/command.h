// Each `monologue` subcommand lives in its own file and registers itself here, so the CLI is a thin
// front end: parse flags, call a mode or core API, print. Unfinished subcommands are not registered.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace monologue::cli {

// Adds a subcommand to `app`. The callback it installs sets `exit_code` (0 on success). Errors are printed
// to stderr as "monologue <command>: <message>".
using CommandRegistrar = void (*)(CLI::App& app, int& exit_code);

void RegisterInfoCommand(CLI::App& app, int& exit_code);
void RegisterBenchCommand(CLI::App& app, int& exit_code);  // cli/bench_command.cc
void RegisterCodecCommand(CLI::App& app, int& exit_code);  // cli/codec_command.cc
void RegisterTranscribeCommand(CLI::App& app, int& exit_code);  // cli/transcribe_command.cc
void RegisterServeCommand(CLI::App& app, int& exit_code);  // cli/serve_command.cc
void RegisterChatCommand(CLI::App& app, int& exit_code);  // cli/chat_command.cc
void RegisterSynthesizeCommand(CLI::App& app, int& exit_code);  // cli/synthesize_command.cc
void RegisterDownloadCommand(CLI::App& app, int& exit_code);  // cli/download_command.cc

}  // namespace monologue::cli
