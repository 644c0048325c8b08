#include "cli/command.h"
namespace monologue::cli {
void RegisterInfoCommand(CLI::App& app, int& exit_code) {}
}  // namespace monologue::cli
