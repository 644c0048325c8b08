// `monologue`: one binary, one subcommand per job (see cli/command.h).
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/kernels/cpu_isa.h"
#include "core/lm/int8_gemm.h"
#include "core/util/huge_pages.h"

int main(int argc, char** argv) {
  // Weights go on 2 MB pages (core/util/huge_pages.h); MONOLOGUE_HUGE_PAGES=0 keeps them on 4 KB pages, to
  // measure the difference or where huge pages are unwelcome.
  if (const char* env = std::getenv("MONOLOGUE_HUGE_PAGES"); env != nullptr) {
    const std::string v(env);
    if (v == "0" || v == "off" || v == "false" || v == "no") {
      monologue::SetHugePagesEnabled(false);
    } else if (!(v.empty() || v == "1" || v == "on" || v == "true" || v == "yes")) {
      std::fprintf(stderr, "monologue: MONOLOGUE_HUGE_PAGES='%s': expected 0 or 1 (off or on)\n", env);
      return 2;
    }
  }
  // MONOLOGUE_CPU_ISA=avx2 (or scalar, avx512) runs what a CPU with at most that instruction set would: every
  // kernel of monologue's, and libtorch's own (ATen's dispatch, MKL, oneDNN) unless their variables are set.
  if (const char* env = std::getenv("MONOLOGUE_CPU_ISA"); env != nullptr) {
    monologue::kernels::CpuIsa isa;
    if (!monologue::kernels::ParseCpuIsa(env, &isa)) {
      std::fprintf(stderr, "monologue: MONOLOGUE_CPU_ISA='%s': expected scalar, avx2 or avx512\n", env);
      return 2;
    }
    monologue::kernels::SetCpuIsaLimit(isa);
    if (isa != monologue::kernels::CpuIsa::kAvx512) {
      const bool avx2 = isa == monologue::kernels::CpuIsa::kAvx2;
      setenv("ATEN_CPU_CAPABILITY", avx2 ? "avx2" : "default", /*overwrite=*/0);
      setenv("MKL_ENABLE_INSTRUCTIONS", avx2 ? "AVX2" : "SSE4_2", 0);
      setenv("DNNL_MAX_CPU_ISA", avx2 ? "AVX2" : "SSE41", 0);
    }
  }
  // MONOLOGUE_INT8_KERNEL=avx2 (or scalar, avx512, avx512-vnni) caps the int8 kernel's instruction set: what
  // a CPU without AVX-512 runs, measured on one that has it.
  if (const char* env = std::getenv("MONOLOGUE_INT8_KERNEL"); env != nullptr) {
    monologue::lm::int8::KernelPath path;
    if (!monologue::lm::int8::ParsePathName(env, &path)) {
      std::fprintf(stderr,
                   "monologue: MONOLOGUE_INT8_KERNEL='%s': expected scalar, avx2, avx512 or avx512-vnni\n",
                   env);
      return 2;
    }
    monologue::lm::int8::SetPathLimit(path);
  }
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
  // An unknown first word is named (CLI11 would only say that a subcommand is required).
  if (argc > 1 && argv[1][0] != '-') {
    std::vector<std::string> names;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) {
      names.push_back(sub->get_name());
      known = known || sub->get_name() == argv[1];
    }
    if (!known) {
      std::string list;
      for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
      std::fprintf(stderr, "monologue: unknown command '%s' (commands: %s; monologue --help)\n", argv[1],
                   list.c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // What went to stdout (a transcript, audio with -o -, JSON) must have arrived: a full disk or a closed
  // pipe is an error, not a silent success.
  std::cout.flush();
  if (std::fflush(stdout) != 0 || std::ferror(stdout) || std::cout.fail()) {
    std::fprintf(stderr, "monologue: cannot write to stdout: %s\n",
                 errno != 0 ? std::strerror(errno) : "write error");
    if (exit_code == 0) exit_code = 1;
  }
  return exit_code;
}
