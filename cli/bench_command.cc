// `monologue bench`: the group; each benchmark registers under it (see cli/bench_command.h).
#include "cli/bench_command.h"

#include "cli/command.h"

namespace monologue::cli {

void RegisterBenchCommand(CLI::App& app, int& exit_code) {
  CLI::App* bench = app.add_subcommand("bench", "Speed benchmarks (per-frame time, real-time factor)");
  bench->require_subcommand(1);
  RegisterBenchCodec(*bench, exit_code);
  RegisterBenchLm(*bench, exit_code);
  RegisterBenchTranscribe(*bench, exit_code);
  RegisterBenchChat(*bench, exit_code);
  RegisterBenchSynthesize(*bench, exit_code);
}

}  // namespace monologue::cli
