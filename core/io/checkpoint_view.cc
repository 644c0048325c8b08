#include "core/io/checkpoint_view.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/torch_status.h"

namespace monologue {
namespace {

constexpr char kReleased[] = "released (in_proj_weight, out_proj.weight)";
constexpr char kLinear[] = "linear (in_proj.weight, out_proj.weight)";
constexpr char kPerStep[] = "per-step (in_projs.{i}.weight, out_projs.{i}.weight)";
constexpr char kLora[] = "LoRA (lora_A/lora_B)";
constexpr char kFrozen[] = "LoRA-wrapped (frozen_W.weight)";

struct Mapped {
  std::string name;   // released name
  int64_t part = -1;  // per-step index, -1 when a plain rename
  std::string layout;
};

// The released name of one file tensor name.
Mapped MapName(const std::string& raw, std::set<std::string>& seen_layouts) {
  std::string name = raw;
  if (absl::EndsWith(name, ".frozen_W.weight")) {
    name = name.substr(0, name.size() - std::string("frozen_W.weight").size()) + "weight";
    seen_layouts.insert(kFrozen);
  }
  // `_scb`: the per-row scales of a bitsandbytes int8 weight (config `quantize: true`), mapped like their
  // weights (the reference's hook handles both suffixes).
  static const std::regex kPerStepRe(
      R"(^(.*\.)?(in_projs|out_projs)\.(\d+)\.(weight|weight_scb|lora_A\.weight|lora_B\.weight)$)");
  static const std::regex kFusedRe(
      R"(^(.*\.)?(in_proj_weight|in_proj\.weight|out_proj\.weight|in_proj\.lora_[AB]\.weight|out_proj\.lora_[AB]\.weight)(_scb)?$)");
  std::smatch m;
  int64_t part = -1;
  // An index too large for int64 names no weight set: left as it is, the schema check reports the tensor.
  if (std::regex_match(name, m, kPerStepRe) && absl::SimpleAtoi(m[3].str(), &part)) {
    const std::string prefix = m[1].str(), which = m[2].str(), suffix = m[4].str();
    Mapped out;
    out.part = part;
    if (suffix == "weight" || suffix == "weight_scb") {
      out.name = prefix + (which == "in_projs" ? "in_proj_weight" : "out_proj.weight") +
                 (suffix == "weight_scb" ? "_scb" : "");
      out.layout = kPerStep;
    } else {
      out.name = prefix + (which == "in_projs" ? "in_proj." : "out_proj.") + suffix;
      out.layout = kLora;
    }
    return out;
  }
  if (std::regex_match(name, m, kFusedRe)) {
    const std::string prefix = m[1].str(), which = m[2].str(), scb = m[3].str();
    if (!scb.empty() && absl::StrContains(which, "lora_")) return Mapped{name, -1, ""};
    Mapped out;
    if (which == "in_proj.weight") {
      out.name = prefix + "in_proj_weight" + scb;
      out.layout = kLinear;
    } else {
      out.name = name;
      out.layout = absl::StrContains(which, "lora_") ? kLora : kReleased;
    }
    return out;
  }
  return Mapped{name, -1, ""};
}

}  // namespace

CheckpointView::CheckpointView(std::shared_ptr<const SafeTensorsFile> file) : file_(std::move(file)) {
  // released name -> (part index -> file tensor)
  std::map<std::string, std::map<int64_t, const SafeTensorInfo*>> parts;
  std::map<std::string, std::vector<const SafeTensorInfo*>> plain;
  std::map<std::string, std::string> layout_of;
  std::set<std::string> frozen;
  for (const SafeTensorInfo& info : file_->tensors()) {
    std::set<std::string> extra;
    Mapped m = MapName(info.name, extra);
    if (!extra.empty()) frozen.insert(m.name);
    if (!m.layout.empty()) layout_of[m.name] = m.layout;
    if (m.part >= 0) {
      parts[m.name][m.part] = &info;
    } else {
      plain[m.name].push_back(&info);
    }
  }
  std::vector<const SafeTensorInfo*> keep_raw;  // tensors left under their own names
  for (auto& [name, list] : plain) {
    if (list.size() == 1 && !parts.count(name)) {
      SafeTensorInfo t = *list[0];
      sources_[name] = {t.name};
      t.name = name;
      tensors_.push_back(std::move(t));
    } else {
      for (const SafeTensorInfo* t : list) keep_raw.push_back(t);  // two spellings of one tensor
    }
  }
  for (auto& [name, by_index] : parts) {
    bool ok = !plain.count(name) && by_index.rbegin()->first + 1 == static_cast<int64_t>(by_index.size());
    const SafeTensorInfo* first = by_index.begin()->second;
    int64_t rows = 0;
    // Weights are 2-D parts with one column count; int8 scales (`_scb`) 1-D parts.
    const size_t dims = absl::EndsWith(name, "_scb") ? 1 : 2;
    for (const auto& [i, t] : by_index) {
      ok = ok && t->dtype == first->dtype && t->shape.size() == dims && first->shape.size() == dims &&
           (dims == 1 || t->shape[1] == first->shape[1]);
      if (ok) rows += t->shape[0];
    }
    if (!ok) {
      for (const auto& [i, t] : by_index) keep_raw.push_back(t);
      continue;
    }
    SafeTensorInfo t;
    t.name = name;
    t.dtype = first->dtype;
    t.shape = dims == 1 ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, first->shape[1]};
    std::vector<std::string>& src = sources_[name];
    for (const auto& [i, p] : by_index) src.push_back(p->name);
    tensors_.push_back(std::move(t));
  }
  for (const SafeTensorInfo* t : keep_raw) {
    sources_[t->name] = {t->name};
    tensors_.push_back(*t);
  }
  std::sort(tensors_.begin(), tensors_.end(),
            [](const SafeTensorInfo& a, const SafeTensorInfo& b) { return a.name < b.name; });
  std::set<std::string> layouts;
  for (const auto& [name, layout] : layout_of) layouts.insert(layout);
  if (!frozen.empty()) layouts.insert(kFrozen);
  for (const char* l : {kReleased, kLinear, kPerStep, kLora, kFrozen}) {
    if (layouts.count(l)) layouts_.push_back(l);
  }
}

absl::StatusOr<std::shared_ptr<const CheckpointView>> CheckpointView::Open(const std::string& path) {
  auto file = SafeTensorsFile::Open(path);
  if (!file.ok()) return file.status();
  return std::make_shared<const CheckpointView>(*file);
}

const SafeTensorInfo* CheckpointView::Find(std::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const SafeTensorInfo& t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

std::vector<std::string> CheckpointView::SourceNames(std::string_view name) const {
  auto it = sources_.find(name);
  return it == sources_.end() ? std::vector<std::string>{} : it->second;
}

absl::StatusOr<at::Tensor> CheckpointView::Load(std::string_view name) const {
  auto it = sources_.find(name);
  if (it == sources_.end()) {
    return absl::NotFoundError(absl::StrCat(file_->path(), ": no tensor '", std::string(name), "'"));
  }
  if (it->second.size() == 1) return file_->Load(it->second[0]);
  std::vector<at::Tensor> parts;
  for (const std::string& src : it->second) {
    auto t = file_->Load(src);
    if (!t.ok()) return t.status();
    parts.push_back(*t);
  }
  return GuardTorch(absl::StrCat("merging ", absl::StrJoin(it->second, ", "), " from ", file_->path()),
                    [&]() -> at::Tensor { return at::cat(parts, 0); });
}

std::string CheckpointView::LayoutSummary() const {
  if (layouts_.empty()) return "none (no attention weights)";
  return absl::StrJoin(layouts_, " + ");
}

}  // namespace monologue
