// LmModel's conditioning (TTS): the conditioners (LUT and tensor) and the fuser that turns their outputs into
// the sum and cross-attention inputs. Loading is in lm_model_load.cc, the runtime in lm_model.cc.
#include <ATen/ATen.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/lm/lm_model.h"
#include "core/util/torch_status.h"

namespace monologue {

namespace {

std::string ShapeStr(at::IntArrayRef shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

}  // namespace

// ---- Conditioning -------------------------------------------------------------------------------------

at::Tensor LmModel::Conditioner::Finish(at::Tensor cond, const at::Tensor& mask) const {
  if (output_proj.defined()) cond = at::linear(cond, output_proj);
  at::Tensor maskf = mask.to(at::kFloat).unsqueeze(-1);
  if (learnt_padding.defined()) return cond * maskf + learnt_padding * (1 - maskf);
  return cond * maskf;
}

absl::StatusOr<LmCondition> LmModel::ConditionFromText(
    const std::string& name, const std::vector<std::optional<std::string>>& values) const {
  auto it = conditioners_.find(name);
  if (it == conditioners_.end() || it->second.config.type != ConditionerConfig::Type::kLut) {
    return absl::NotFoundError(absl::StrCat("LM: no LUT conditioner named '", name, "'"));
  }
  const Conditioner& cond = it->second;
  if (values.empty()) return absl::InvalidArgumentError(absl::StrCat("conditioner '", name, "': no values"));
  std::vector<int64_t> tokens;
  std::vector<uint8_t> present;
  for (const auto& v : values) {
    if (!v.has_value()) {
      tokens.push_back(cond.config.n_bins);
      present.push_back(0);
      continue;
    }
    const auto& pv = cond.config.possible_values;
    if (pv.empty()) {
      return absl::UnimplementedError(absl::StrCat(
          "conditioner '", name, "': the hash-trick tokenizer (no possible_values) is not supported"));
    }
    auto found = std::find(pv.begin(), pv.end(), *v);
    if (found == pv.end()) {
      return absl::InvalidArgumentError(absl::StrCat("conditioner '", name, "': value '", *v,
                                                     "' is not one of the possible values [",
                                                     absl::StrJoin(pv, ", "), "]"));
    }
    tokens.push_back(found - pv.begin());
    present.push_back(1);
  }
  return GuardTorch(absl::StrCat("conditioner '", name, "'"), [&]() -> LmCondition {
    const int64_t batch = static_cast<int64_t>(values.size());
    at::Tensor tok = at::tensor(tokens, at::kLong).view({batch, 1}).to(device_);
    at::Tensor mask = at::tensor(std::vector<int64_t>(present.begin(), present.end()), at::kLong)
                          .view({batch, 1})
                          .to(device_, at::kBool);
    return LmCondition{cond.Finish(at::embedding(cond.embed, tok), mask), mask};
  });
}

absl::StatusOr<LmCondition> LmModel::ConditionFromTensor(const std::string& name, const at::Tensor& x,
                                                         const at::Tensor& mask) const {
  auto it = conditioners_.find(name);
  if (it == conditioners_.end() || it->second.config.type != ConditionerConfig::Type::kTensor) {
    return absl::NotFoundError(absl::StrCat("LM: no tensor conditioner named '", name, "'"));
  }
  const Conditioner& cond = it->second;
  if (x.dim() != 3 || x.size(2) != cond.config.dim || mask.dim() != 2 || mask.size(0) != x.size(0) ||
      mask.size(1) != x.size(1)) {
    return absl::InvalidArgumentError(absl::StrCat("conditioner '", name, "': expected a [B, T, ",
                                                   cond.config.dim, "] tensor and a [B, T] mask, got ",
                                                   ShapeStr(x.sizes()), " and ", ShapeStr(mask.sizes())));
  }
  return GuardTorch(absl::StrCat("conditioner '", name, "'"), [&]() -> LmCondition {
    at::Tensor m = mask.to(device_, at::kBool);
    return LmCondition{cond.Finish(x.to(device_, at::kFloat), m), m};
  });
}

absl::StatusOr<LmFusedConditions> LmModel::Fuse(const std::map<std::string, LmCondition>& conditions) const {
  if (!config_.fuser.has_value()) return absl::FailedPreconditionError("LM: the model has no fuser");
  const FuserConfig& f = *config_.fuser;
  for (const auto* list : {&f.sum, &f.cross}) {
    for (const auto& name : *list) {
      if (!conditions.count(name)) {
        return absl::InvalidArgumentError(absl::StrCat("LM fuser: missing condition '", name, "'"));
      }
    }
  }
  return GuardTorch("LM fuser", [&]() -> absl::StatusOr<LmFusedConditions> {
    LmFusedConditions out;
    for (const auto& name : f.sum) {
      const at::Tensor& v = conditions.at(name).values;
      if (v.size(1) != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("LM fuser: sum condition '", name, "' must have length 1, got ", v.size(1)));
      }
      out.sum = out.sum.defined() ? out.sum + v : v;
    }
    for (const auto& name : f.cross) {
      const at::Tensor& v = conditions.at(name).values;
      out.cross = out.cross.defined() ? at::cat({out.cross, v}, 1) : v;
    }
    if (f.cross_attention_pos_emb && out.cross.defined()) {
      at::Tensor positions =
          at::arange(out.cross.size(1), at::TensorOptions().dtype(at::kLong).device(device_))
              .view({1, -1, 1});
      at::Tensor pos =
          lm::SinEmbedding(positions, out.cross.size(-1), 10000, at::kFloat).to(out.cross.scalar_type());
      out.cross = out.cross + f.cross_attention_pos_emb_scale * pos;
    }
    return out;
  });
}

}  // namespace monologue
