// `monologue download REPO [--revision R] [--files F...]`: fetches a model from the Hugging Face Hub into
// the local cache ahead of time (the huggingface_hub layout, shared with Python tools), so later runs work
// offline. Without --files: config.json and the files it names (weights, Mimi, tokenizer, LoRA). Prints
// the snapshot folder. Settings from the environment: HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE,
// HF_TOKEN (docs/hub.md).
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/hub/hub.h"

namespace monologue::cli {
namespace {

struct DownloadFlags {
  std::string repo;
  std::string revision = "main";
  std::vector<std::string> files;
  bool quiet = false;
};

int RunDownload(const DownloadFlags& f) {
  hub::HubOptions options = hub::HubOptions::FromEnvironment();
  options.check_remote = true;  // ask the Hub which commit the revision is now
  if (f.quiet) options.progress = false;
  auto snapshot = hub::DownloadModel(options, f.repo, f.revision, f.files);
  if (!snapshot.ok()) {
    std::cerr << "monologue download: " << snapshot.status().message() << "\n";
    return 1;
  }
  std::cout << snapshot->string() << "\n";
  return 0;
}

}  // namespace

void RegisterDownloadCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<DownloadFlags>();
  CLI::App* cmd = app.add_subcommand(
      "download",
      "Fetch a model from the Hugging Face Hub into the local cache (config.json and the files it names)");
  cmd->add_option("repo", flags->repo, "Hugging Face repo OWNER/NAME (e.g. kyutai/stt-1b-en_fr)")->required();
  cmd->add_option("--revision", flags->revision, "branch, tag or commit (default main)");
  cmd->add_option("--files", flags->files, "fetch these files instead of config.json and the files it names");
  cmd->add_flag("-q,--quiet", flags->quiet, "no progress bars");
  cmd->callback([flags, &exit_code] { exit_code = RunDownload(*flags); });
}

}  // namespace monologue::cli
