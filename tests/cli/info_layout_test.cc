// `monologue info` on checkpoints in the reference's state_dict naming (tests/data/layouts, written by
// tests/reference/make_layout_fixtures.py): it names the attention key layout of every weight file, accepts
// the per-step naming for the LM (with a per-step depformer) and Mimi, and lists every problem of a broken
// set.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/io/safetensors.h"
#include "nlohmann/json.hpp"
#include "tests/common/process.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;

const fs::path kData(MONOLOGUE_TEST_DATA_DIR);

using test_process::RunResult;

std::string Slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

fs::path Scratch(const std::string& name) {
  const char* base = std::getenv("MONOLOGUE_TEST_TMP");
  fs::path dir = fs::path(base != nullptr ? base : ".") / "info_layout" / name;
  fs::create_directories(dir);
  return dir;
}

RunResult Info(const std::string& args) { return test_process::RunMonologue("info " + args); }

// The Moshi-like fixture's config with the tiny Mimi and test tokenizer next to `weights`.
fs::path MoshiDir(const std::string& name, const fs::path& weights) {
  const fs::path dir = Scratch(name);
  nlohmann::json config = nlohmann::json::parse(Slurp(kData / "lm" / "moshi" / "config.json"));
  config["mimi_name"] = (kData / "mimi" / "tiny_mimi.safetensors").string();
  config["mimi_config_name"] = (kData / "mimi" / "tiny_mimi_config.json").string();
  config["tokenizer_name"] = (kData / "tokenizers" / "tiny_en_fr_400.model").string();
  std::ofstream(dir / "config.json") << config.dump(1);
  fs::copy_file(weights, dir / "model.safetensors", fs::copy_options::overwrite_existing);
  return dir;
}

TEST(InfoLayout, NamesThePerStepLayoutAndAcceptsIt) {
  const std::string per_step = "attention keys: per-step (in_projs.{i}.weight, out_projs.{i}.weight)";
  RunResult mimi = Info((kData / "layouts" / "mimi_state_dict.safetensors").string() + " --mimi-config " +
                  (kData / "mimi" / "tiny_mimi_config.json").string());
  EXPECT_EQ(mimi.exit_code, 0) << mimi.err;
  EXPECT_NE(mimi.out.find(per_step), std::string::npos) << mimi.out;

  const fs::path dir = MoshiDir("moshi", kData / "layouts" / "moshi_state_dict.safetensors");
  RunResult lm = Info(dir.string());
  EXPECT_EQ(lm.exit_code, 0) << lm.err;
  EXPECT_NE(lm.out.find("lm weights: model.safetensors"), std::string::npos) << lm.out;
  EXPECT_NE(lm.out.find(per_step), std::string::npos) << lm.out;
  EXPECT_NE(lm.out.find("attention keys: released (in_proj_weight, out_proj.weight)"), std::string::npos)
      << lm.out;  // the tiny Mimi
  RunResult json = Info(dir.string() + " --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json report = nlohmann::json::parse(json.out);
  bool found = false;
  for (const auto& f : report["files"]) {
    if (f["role"] == "lm weights") {
      EXPECT_EQ(f["attention_keys"], "per-step (in_projs.{i}.weight, out_projs.{i}.weight)");
      found = true;
    }
  }
  EXPECT_TRUE(found) << json.out;
}

TEST(InfoLayout, ListsEveryProblemOfAnIncompletePerStepSet) {
  auto file = SafeTensorsFile::Open((kData / "layouts" / "moshi_state_dict.safetensors").string());
  ASSERT_TRUE(file.ok()) << file.status();
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const SafeTensorInfo& info : (*file)->tensors()) {
    if (info.name == "depformer.layers.1.self_attn.out_projs.5.weight") continue;
    tensors.emplace_back(info.name, *(*file)->Load(info.name));
  }
  const fs::path broken = Scratch("broken") / "weights.safetensors";
  ASSERT_TRUE(WriteSafeTensors(broken.string(), tensors).ok());
  RunResult r = Info(MoshiDir("broken-dir", broken).string());
  EXPECT_NE(r.exit_code, 0);
  const std::string all = r.out + r.err;
  EXPECT_NE(all.find("missing tensor depformer.layers.1.self_attn.out_proj.weight [256, 32]"),
            std::string::npos)
      << all;
  for (int i : {0, 1, 2, 3, 4, 6, 7}) {
    const std::string part =
        "unexpected tensor depformer.layers.1.self_attn.out_projs." + std::to_string(i) + ".weight";
    EXPECT_NE(all.find(part), std::string::npos) << part << "\n" << all;
  }
}

}  // namespace
}  // namespace monologue
