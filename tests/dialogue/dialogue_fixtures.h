// The dialogue fixtures (tests/reference/make_dialogue_fixtures.py): the tiny-moshi-8 model regenerated from
// its deterministic weights (same bytes as `monologue-make-model --preset tiny-moshi-8 --dtype f32 --seed
// 0`), its config variants, and the reference records. Needs only monologue_core (shared with tests/cli).
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "core/model/presets.h"
#include "core/model/random_model.h"
#include "nlohmann/json.hpp"

namespace monologue::dialogue_test {

namespace fs = std::filesystem;

inline std::string DataDir() { return std::string(MONOLOGUE_TEST_DATA_DIR) + "/dialogue"; }
inline std::string ClipPath(const std::string& clip) {
  return std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr/" + clip;
}

inline nlohmann::json Cases() {
  std::ifstream in(DataDir() + "/cases.json");
  EXPECT_TRUE(in.good());
  return nlohmann::json::parse(in);
}

// The model directory of a variant ("base", "gencfg", "lora"), written once per test process below the
// working directory (test_main.cc gives each process its own). Variants share the base weights by absolute
// path.
inline std::string ModelDir(const std::string& variant = "base") {
  const fs::path root = fs::absolute("dialogue-models");
  const fs::path base = root / "base";
  if (!fs::exists(base / "config.json")) {
    auto preset = GetPreset("tiny-moshi-8");
    EXPECT_TRUE(preset.ok()) << preset.status();
    RandomModelOptions options;
    options.seed = 0;
    options.lm_dtype = at::kFloat;
    options.tokenizer = fs::path(MONOLOGUE_TEST_DATA_DIR) / "tokenizers" / "tiny_en_fr_400.model";
    auto written = WriteRandomModelDir(preset->config, false, base, options);
    EXPECT_TRUE(written.ok()) << written.status();
  }
  if (variant == "base") return base.string();
  const fs::path dir = root / variant;
  if (!fs::exists(dir / "config.json")) {
    fs::create_directories(dir);
    std::ifstream in(base / "config.json");
    nlohmann::json cfg = nlohmann::json::parse(in);
    for (const char* key : {"moshi_name", "mimi_name", "mimi_config_name", "tokenizer_name"}) {
      cfg[key] = (base / cfg[key].get<std::string>()).string();
    }
    const nlohmann::json meta = Cases();
    if (variant == "gencfg") {
      cfg["lm_gen_config"] = meta["gencfg"];
    } else if (variant == "lora") {
      cfg["lora"] = true;
      cfg["lora_rank"] = meta["lora_rank"];
      cfg["lora_scaling"] = meta["lora_scaling"];
      cfg["lora_name"] = DataDir() + "/lora.safetensors";
    } else {
      ADD_FAILURE() << "unknown variant " << variant;
    }
    std::ofstream(dir / "config.json") << cfg.dump(2) << "\n";
  }
  return dir.string();
}

struct Reference {
  std::vector<int> text_tokens;         // [F]
  std::vector<std::vector<int>> codes;  // [F][8]
  std::vector<float> pcm;               // [samples] or empty
  nlohmann::json meta;
};

inline Reference LoadReference(const std::string& name) {
  Reference ref;
  ref.meta = Cases()["cases"][name];
  auto file = SafeTensorsFile::Open(DataDir() + "/ref_" + name + ".safetensors");
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return ref;
  at::Tensor text = *(*file)->Load("text_tokens");
  at::Tensor codes = *(*file)->Load("codes");
  for (int64_t f = 0; f < text.size(0); ++f) {
    ref.text_tokens.push_back(static_cast<int>(text[f].item<int64_t>()));
    std::vector<int> row;
    for (int64_t k = 0; k < codes.size(0); ++k) row.push_back(static_cast<int>(codes[k][f].item<int64_t>()));
    ref.codes.push_back(row);
  }
  if ((*file)->Find("pcm") != nullptr) {
    at::Tensor pcm = (*file)->Load("pcm")->contiguous();
    ref.pcm.assign(pcm.data_ptr<float>(), pcm.data_ptr<float>() + pcm.numel());
  }
  return ref;
}

// ||a - b|| / ||b||.
inline double RelativeL2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace monologue::dialogue_test
