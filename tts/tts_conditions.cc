// The LM conditions of a synthesis slot (tts_conditions.h).
#include "tts/tts_conditions.h"

#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/io/safetensors.h"
#include "core/util/status_macros.h"

namespace monologue::tts {

std::string CfgValue(double coef) { return absl::StrFormat("%.1f", coef); }

absl::StatusOr<at::Tensor> LoadVoice(const std::string& path, int64_t dim, int64_t frames) {
  ASSIGN_OR_RETURN(auto file, SafeTensorsFile::Open(path));
  if (!file->Contains("speaker_wavs")) {
    return absl::InvalidArgumentError(
        absl::StrCat("voice file ", path, " has no `speaker_wavs` tensor: not a voice embedding"));
  }
  ASSIGN_OR_RETURN(at::Tensor t, file->Load("speaker_wavs"));
  if (t.dim() != 3 || t.size(0) != 1 || t.size(1) != dim || t.size(2) != frames) {
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    return absl::InvalidArgumentError(absl::StrCat("voice file ", path, ": speaker_wavs has shape [",
                                                   absl::StrJoin(shape, ", "), "], this model needs [1, ", dim,
                                                   ", ", frames, "]"));
  }
  if (!at::isFloatingType(t.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat("voice file ", path, ": speaker_wavs is not floating point"));
  }
  at::Tensor voice = t.to(at::kFloat);
  // A NaN or infinity would reach every cross-attention score of the stream: the speech would be noise.
  if (!voice.isfinite().all().item<bool>()) {
    return absl::InvalidArgumentError(
        absl::StrCat("voice file ", path, ": speaker_wavs holds NaN or infinite values"));
  }
  return voice;
}

absl::StatusOr<LmFusedConditions> SlotConditions(const ConditionContext& sh, const TtsSessionOptions& o,
                                                 const std::vector<at::Tensor>& voices) {
  const LmModel& lm = *sh.lm;
  const auto& conditioners = lm.config().conditioners;
  const int rows = sh.real_cfg ? 2 : 1;
  std::map<std::string, LmCondition> conds;
  for (const auto& [name, cc] : conditioners) {
    if (cc.type == ConditionerConfig::Type::kLut) {
      std::optional<std::string> value;
      if (name == "control") value = "ok";
      if (name == "cfg") value = CfgValue(o.cfg_coef.value_or(sh.default_cfg));
      std::vector<std::optional<std::string>> values = {value};
      if (rows == 2) values.push_back(std::nullopt);  // null condition: learnt padding
      ASSIGN_OR_RETURN(conds[name], lm.ConditionFromText(name, values));
    } else {
      const int64_t speakers = sh.max_speakers, frames = sh.voice_frames, dim = cc.dim;
      at::Tensor x = at::zeros({1, speakers, frames, dim}, at::kFloat);
      at::Tensor mask = at::zeros({1, speakers, frames}, at::kBool);
      for (size_t i = 0; i < voices.size(); ++i) {
        x[0][static_cast<int64_t>(i)].copy_(voices[i][0].transpose(0, 1));
        mask[0][static_cast<int64_t>(i)].fill_(true);
      }
      x = x.view({1, speakers * frames, dim});
      mask = mask.view({1, speakers * frames});
      if (rows == 2) {
        x = at::cat({x, at::zeros_like(x)}, 0);
        mask = at::cat({mask, at::zeros_like(mask)}, 0);
      }
      ASSIGN_OR_RETURN(conds[name], lm.ConditionFromTensor(name, x.to(sh.device), mask.to(sh.device)));
    }
  }
  return lm.Fuse(conds);
}

// Null conditions for every row (what idle slots hold).
absl::StatusOr<LmFusedConditions> NullConditions(const ConditionContext& sh, int64_t rows) {
  const LmModel& lm = *sh.lm;
  std::map<std::string, LmCondition> conds;
  for (const auto& [name, cc] : lm.config().conditioners) {
    if (cc.type == ConditionerConfig::Type::kLut) {
      ASSIGN_OR_RETURN(conds[name], lm.ConditionFromText(
                                        name, std::vector<std::optional<std::string>>(rows, std::nullopt)));
    } else {
      const int64_t len = sh.max_speakers * sh.voice_frames;
      ASSIGN_OR_RETURN(conds[name],
                       lm.ConditionFromTensor(name, at::zeros({rows, len, cc.dim}, at::kFloat).to(sh.device),
                                              at::zeros({rows, len}, at::kBool).to(sh.device)));
    }
  }
  return lm.Fuse(conds);
}

}  // namespace monologue::tts
