#include "core/mimi/mimi_loader.h"

#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/io/checkpoint_view.h"
#include "core/io/safetensors.h"
#include "core/model/checkpoint_schema.h"
#include "core/model/random_model.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace monologue {

absl::StatusOr<MimiConfig> LoadMimiConfig(const std::string& config_json) {
  if (config_json.empty()) return MimiConfig{};
  std::ifstream in(config_json);
  if (!in) return absl::NotFoundError(absl::StrCat(config_json, ": cannot open the Mimi config"));
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json json = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(config_json, ": not valid JSON"));
  return ParseMimiConfigJson(json, config_json);
}

absl::StatusOr<MimiModel> LoadMimiFile(const std::string& path, const MimiConfig& config,
                                       c10::Device device) {
  // Any attention key layout the reference accepts (released, in_proj.weight, in_projs.{i}/out_projs.{i}).
  ASSIGN_OR_RETURN(auto view, CheckpointView::Open(path));
  absl::Status valid = ValidateCheckpoint(*view, ExpectedMimiTensors(config));
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a Mimi checkpoint for this configuration: ", valid.message()));
  }
  mimi::TensorLookup lookup = [view](const std::string& name) { return view->Load(name); };
  return MimiModel::Load(std::move(lookup), path, config, device);
}

absl::StatusOr<MimiModel> RandomMimi(const MimiConfig& config, uint64_t seed, c10::Device device) {
  auto specs = std::make_shared<std::map<std::string, TensorSpec>>();
  for (TensorSpec& s : ExpectedMimiTensors(config)) specs->emplace(s.name, std::move(s));
  mimi::TensorLookup lookup = [specs, seed](const std::string& name) -> absl::StatusOr<at::Tensor> {
    auto it = specs->find(name);
    if (it == specs->end()) return absl::NotFoundError(name);
    return RandomTensorFor(it->second, seed);
  };
  return MimiModel::Load(std::move(lookup), absl::StrCat("random Mimi (seed ", seed, ")"), config, device);
}

}  // namespace monologue
