#include "tests/mimi/mimi_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/deterministic_weights.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace monologue::mimi_test {

std::string DataPath(const std::string& name) {
  return absl::StrCat(MONOLOGUE_TEST_DATA_DIR, "/mimi/", name);
}

absl::StatusOr<MimiConfig> TinyConfig() {
  std::ifstream in(DataPath("tiny_mimi_config.json"));
  if (!in) return absl::NotFoundError("tiny_mimi_config.json missing");
  std::stringstream text;
  text << in.rdbuf();
  return ParseMimiConfigJson(nlohmann::json::parse(text.str()), DataPath("tiny_mimi_config.json"));
}

absl::StatusOr<MimiModel> LoadTiny(c10::Device device) {
  ASSIGN_OR_RETURN(MimiConfig config, TinyConfig());
  ASSIGN_OR_RETURN(auto file, SafeTensorsFile::Open(DataPath("tiny_mimi.safetensors")));
  return MimiModel::Load(*file, config, device);
}

absl::StatusOr<MimiModel> LoadReal(c10::Device device) {
  ASSIGN_OR_RETURN(auto cases, SafeTensorsFile::Open(DataPath("real_cases.safetensors")));
  ASSIGN_OR_RETURN(InitRuleMetadata rules, InitRuleMetadata::Parse(cases->metadata(), "real_cases.safetensors"));
  mimi::TensorLookup lookup = [rules = std::move(rules)](const std::string& name) { return rules.Tensor(name); };
  return MimiModel::Load(std::move(lookup), "deterministic real-architecture Mimi", MimiConfig{}, device);
}

at::Tensor Fixture(const SafeTensorsFile& file, const std::string& name) {
  absl::StatusOr<at::Tensor> t = file.Load(name);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? t->clone() : at::Tensor();
}

double Agreement(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) return 0.0;
  return a.cpu().eq(b.cpu()).to(at::kDouble).mean().item<double>();
}

double RelativeL2(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.cpu().to(at::kDouble), y = b.cpu().to(at::kDouble);
  return (x - y).norm().item<double>() / y.norm().item<double>();
}

at::Tensor StreamEncode(const MimiModel& model, MimiStreamState& state, const at::Tensor& pcm) {
  std::vector<at::Tensor> codes;
  const int64_t frame = model.frame_size();
  for (int64_t t = 0; t < pcm.size(2) / frame; ++t) {
    absl::StatusOr<at::Tensor> c = model.EncodeStep(state, pcm.narrow(2, t * frame, frame));
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return {};
    codes.push_back(*c);
  }
  return at::cat(codes, 2).cpu();
}

at::Tensor StreamDecode(const MimiModel& model, MimiStreamState& state, const at::Tensor& codes) {
  std::vector<at::Tensor> out;
  for (int64_t t = 0; t < codes.size(2); ++t) {
    absl::StatusOr<at::Tensor> p = model.DecodeStep(state, codes.narrow(2, t, 1));
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return {};
    out.push_back(*p);
  }
  return at::cat(out, 2).cpu();
}

}  // namespace monologue::mimi_test
