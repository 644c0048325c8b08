// monologue-make-model: writes a random-weight model directory in the released layout (config.json, LM
// weights, Mimi weights, tokenizer) from a preset or a config.json. A thin wrapper over
// core/model/random_model.h.
//   monologue-make-model --preset tiny-stt --out /tmp/tiny-stt [--dtype f32] [--seed 1] [--tokenizer FILE]
//   monologue-make-model --config path/to/config.json --out DIR
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/model_config.h"
#include "core/model/presets.h"
#include "core/model/random_model.h"

namespace {

int Fail(const std::string& message) {
  std::cerr << "monologue-make-model: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Writes a random-weight Moshi-family model directory in the released layout",
               "monologue-make-model"};
  std::string preset, config_path, out, dtype = "bf16", tokenizer;
  uint64_t seed = 0;
  bool config_only = false, no_mimi = false, list = false;
  app.add_option("--preset", preset, absl::StrCat("one of: ", absl::StrJoin(monologue::PresetNames(), ", ")));
  app.add_option("--config", config_path, "a config.json (its mimi_config_name is read next to it)");
  app.add_option("--out", out, "output directory (created)");
  app.add_option("--seed", seed, "weight seed (default 0)");
  app.add_option("--dtype", dtype, "LM weight dtype: bf16 (released), f32 or f16")
      ->check(CLI::IsMember({"bf16", "f32", "f16"}));
  app.add_option("--tokenizer", tokenizer, "a sentencepiece model copied to the config's tokenizer_name");
  app.add_flag("--config-only", config_only, "write only config.json and mimi_config.json");
  app.add_flag("--no-mimi", no_mimi, "do not write the Mimi weights");
  app.add_flag("--list", list, "list the presets and exit");
  CLI11_PARSE(app, argc, argv);

  if (list) {
    for (const std::string& name : monologue::PresetNames()) {
      auto p = monologue::GetPreset(name);
      std::cout << name << ": " << (p.ok() ? p->description : std::string(p.status().message())) << "\n";
    }
    return 0;
  }
  if (preset.empty() == config_path.empty()) return Fail("give exactly one of --preset or --config");
  if (out.empty()) return Fail("--out DIR is required");

  monologue::ModelConfig config;
  bool mimi_only = false;
  if (!preset.empty()) {
    auto p = monologue::GetPreset(preset);
    if (!p.ok()) return Fail(std::string(p.status().message()));
    config = p->config;
    mimi_only = p->mimi_only;
  } else {
    // Load through the model-directory path so mimi_config_name resolves next to the file.
    auto json = monologue::ReadJsonFile(config_path);
    if (!json.ok()) return Fail(std::string(json.status().message()));
    auto parsed = monologue::ParseModelConfigJson(*json, config_path);
    if (!parsed.ok()) return Fail(std::string(parsed.status().message()));
    config = *parsed;
    if (config.mimi_config_name.has_value()) {
      const std::filesystem::path dir = std::filesystem::path(config_path).parent_path();
      auto mimi_path = monologue::ResolveModelFile(dir.empty() ? "." : dir, *config.mimi_config_name);
      if (!mimi_path.ok()) return Fail(std::string(mimi_path.status().message()));
      auto mimi_json = monologue::ReadJsonFile(*mimi_path);
      if (!mimi_json.ok()) return Fail(std::string(mimi_json.status().message()));
      auto mimi = monologue::ParseMimiConfigJson(*mimi_json, mimi_path->string());
      if (!mimi.ok()) return Fail(std::string(mimi.status().message()));
      config.mimi = *mimi;
    }
  }

  monologue::RandomModelOptions options;
  options.seed = seed;
  options.lm_dtype = dtype == "f32" ? at::kFloat : dtype == "f16" ? at::kHalf : at::kBFloat16;
  if (!tokenizer.empty()) options.tokenizer = tokenizer;
  options.config_only = config_only;
  options.write_mimi = !no_mimi;
  auto result = monologue::WriteRandomModelDir(config, mimi_only, out, options);
  if (!result.ok()) return Fail(std::string(result.status().message()));
  for (const auto& file : result->files) {
    std::cout << "wrote " << file.path.string() << " (" << file.what << ", " << file.bytes << " bytes)\n";
  }
  for (const auto& note : result->notes) std::cout << "note: " << note << "\n";
  return 0;
}
