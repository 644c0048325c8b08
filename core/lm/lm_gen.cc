#include "core/lm/lm_gen.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace monologue {

namespace {
std::string Shape(const at::Tensor& t) { return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]"); }
}  // namespace

absl::StatusOr<LmGenOptions> LmGenOptionsFromJson(const nlohmann::json& json, LmGenOptions base) {
  if (json.is_null()) return base;
  if (!json.is_object()) return absl::InvalidArgumentError("lm_gen_config: must be an object");
  for (const auto& [key, value] : json.items()) {
    auto number = [&]() -> absl::StatusOr<double> {
      if (!value.is_number()) {
        return absl::InvalidArgumentError(absl::StrCat("lm_gen_config: key '", key, "' must be a number"));
      }
      return value.get<double>();
    };
    // Temperatures are finite and >= 0, top-k a whole number >= 1, as a sampling step needs them (a value
    // out of range used to surface later as if a flag were wrong).
    auto temperature = [&]() -> absl::StatusOr<double> {
      ASSIGN_OR_RETURN(double t, number());
      if (!(t >= 0 && std::isfinite(t))) {
        return absl::InvalidArgumentError(
            absl::StrCat("lm_gen_config: ", key, " must be a finite number >= 0 (got ", value.dump(), ")"));
      }
      return t;
    };
    auto top_k = [&]() -> absl::StatusOr<int64_t> {
      ASSIGN_OR_RETURN(double k, number());
      if (!(k >= 1 && k <= 1e9 && k == std::floor(k))) {
        return absl::InvalidArgumentError(
            absl::StrCat("lm_gen_config: ", key, " must be a whole number >= 1 (got ", value.dump(), ")"));
      }
      return static_cast<int64_t>(k);
    };
    auto boolean = [&]() -> absl::StatusOr<bool> {
      if (!value.is_boolean()) {
        return absl::InvalidArgumentError(absl::StrCat("lm_gen_config: key '", key, "' must be a boolean"));
      }
      return value.get<bool>();
    };
    if (key == "temp") {
      ASSIGN_OR_RETURN(base.audio.temperature, temperature());
    } else if (key == "temp_text") {
      ASSIGN_OR_RETURN(base.text.temperature, temperature());
    } else if (key == "top_k") {
      ASSIGN_OR_RETURN(base.audio.top_k, top_k());
    } else if (key == "top_k_text") {
      ASSIGN_OR_RETURN(base.text.top_k, top_k());
    } else if (key == "use_sampling") {
      ASSIGN_OR_RETURN(bool b, boolean());
      base.text.use_sampling = base.audio.use_sampling = b;
    } else if (key == "cfg_coef") {
      ASSIGN_OR_RETURN(base.cfg_coef, number());
      if (!std::isfinite(base.cfg_coef)) {
        return absl::InvalidArgumentError(
            absl::StrCat("lm_gen_config: cfg_coef must be finite (got ", value.dump(), ")"));
      }
    } else if (key == "cfg_is_no_text") {
      ASSIGN_OR_RETURN(base.cfg_is_no_text, boolean());
    } else if (key == "check" || key == "support_out_of_sync") {
      ASSIGN_OR_RETURN(bool ignored, boolean());
      (void)ignored;  // no effect here: outputs are always per slot (see lm_gen.h)
    } else {
      return absl::InvalidArgumentError(absl::StrCat("lm_gen_config: unknown key '", key, "'"));
    }
  }
  return base;
}

absl::StatusOr<LmGenOptions> LmGenOptionsFromConfig(const nlohmann::json& json, const std::string& source) {
  auto options = LmGenOptionsFromJson(json);
  if (!options.ok())
    return absl::Status(options.status().code(), absl::StrCat(source, ": ", options.status().message()));
  return options;
}

absl::StatusOr<std::unique_ptr<LmGen>> LmGen::Create(std::shared_ptr<const LmModel> model, int64_t batch,
                                                     LmGenOptions options,
                                                     const LmFusedConditions& conditions) {
  if (model == nullptr) return absl::InvalidArgumentError("LmGen: no model");
  if (batch <= 0)
    return absl::InvalidArgumentError(absl::StrCat("LmGen: batch must be positive, got ", batch));
  const LmConfig& c = model->config();
  const bool cfg = options.cfg_coef != 1.0;
  const int64_t rows = cfg ? 2 * batch : batch;
  if (!options.cfg_is_masked_until.empty() &&
      static_cast<int64_t>(options.cfg_is_masked_until.size()) != batch) {
    return absl::InvalidArgumentError(absl::StrCat("LmGen: cfg_is_masked_until has ",
                                                   options.cfg_is_masked_until.size(), " entries for ", batch,
                                                   " slots"));
  }
  if (options.dep_q.has_value() && (*options.dep_q < 0 || *options.dep_q > c.dep_q)) {
    return absl::InvalidArgumentError(absl::StrCat("LmGen: dep_q override ", *options.dep_q,
                                                   " must be between 0 and the model's dep_q (", c.dep_q,
                                                   ")"));
  }
  const bool needs_sum = c.fuser.has_value() && !c.fuser->sum.empty();
  const bool needs_cross = c.cross_attention;
  if (needs_sum && !conditions.sum.defined()) {
    return absl::InvalidArgumentError(
        "LmGen: the model sums conditions into its input: conditions.sum is required");
  }
  if (needs_cross && !conditions.cross.defined()) {
    return absl::InvalidArgumentError(
        "LmGen: the model has cross-attention: conditions.cross (the cross-attention source) is required");
  }
  if (!needs_sum && conditions.sum.defined()) {
    return absl::InvalidArgumentError("LmGen: conditions.sum given but the model sums no condition");
  }
  if (!needs_cross && conditions.cross.defined()) {
    return absl::InvalidArgumentError("LmGen: conditions.cross given but the model has no cross-attention");
  }
  for (const at::Tensor* t : {&conditions.sum, &conditions.cross}) {
    if (t->defined() && (t->dim() != 3 || t->size(0) != rows || t->size(2) != c.dim ||
                         (t == &conditions.sum && t->size(1) != 1))) {
      return absl::InvalidArgumentError(
          absl::StrCat("LmGen: condition ", t == &conditions.sum ? "sum" : "cross", " has shape ", Shape(*t),
                       ", expected [", rows, t == &conditions.sum ? ", 1, " : ", S, ", c.dim, "]",
                       cfg ? " (CFG: conditional rows then null rows)" : ""));
    }
  }
  std::unique_ptr<LmGen> gen(new LmGen());
  gen->model_ = std::move(model);
  gen->options_ = std::move(options);
  gen->batch_ = batch;
  gen->rows_ = rows;
  gen->dep_q_ = gen->options_.dep_q.value_or(c.dep_q);
  gen->max_delay_ = c.max_delay();
  gen->cache_len_ = gen->max_delay_ + 2;
  const LmModel& m = *gen->model_;
  RETURN_IF_ERROR(GuardTorch("LmGen", [&] {
    const auto long_opts = at::TensorOptions().dtype(at::kLong).device(m.device());
    gen->cache_ = at::full({batch, c.num_streams(), gen->cache_len_}, -2, long_opts);
    gen->exec_ = at::ones({batch}, long_opts.dtype(at::kBool));
    gen->delays_ = at::tensor(c.delays, at::kLong).to(m.device());
    if (!gen->options_.cfg_is_masked_until.empty()) {
      gen->masked_until_ = at::tensor(gen->options_.cfg_is_masked_until, at::kLong).to(m.device());
    }
    if (gen->options_.seed.has_value()) {
      at::Generator g = at::globalContext().defaultGenerator(m.device()).clone();
      g.set_current_seed(*gen->options_.seed);
      gen->generator_ = g;
    }
    if (gen->options_.per_slot_generators) {
      for (int64_t i = 0; i < batch; ++i) {
        at::Generator g = at::globalContext().defaultGenerator(m.device()).clone();
        g.set_current_seed(gen->options_.seed.value_or(0));
        gen->slot_generators_.push_back(g);
      }
      gen->exec_host_.assign(static_cast<size_t>(batch), 1);
    }
    gen->temporal_ = m.NewTemporalState(rows);
    gen->depformer_ = m.NewDepformerState(rows);
    if (conditions.sum.defined()) gen->cond_sum_ = conditions.sum.to(m.device(), m.dtype());
    if (conditions.cross.defined()) m.SetCrossSource(gen->temporal_, conditions.cross);
  }));
  return gen;
}

absl::Status LmGen::SetConditions(const LmFusedConditions& conditions, const at::Tensor& rows) {
  return GuardTorch("LmGen::SetConditions", [&]() -> absl::Status {
    if (conditions.sum.defined()) {
      if (!cond_sum_.defined()) return absl::InvalidArgumentError("LmGen: the model sums no condition");
      at::Tensor s = conditions.sum.to(model_->device(), model_->dtype());
      if (rows.defined()) {
        cond_sum_.index_copy_(0, rows.to(model_->device()), s);
      } else {
        cond_sum_.copy_(s);
      }
    }
    if (conditions.cross.defined()) {
      if (!model_->config().cross_attention) {
        return absl::InvalidArgumentError("LmGen: the model has no cross-attention");
      }
      model_->SetCrossSource(temporal_, conditions.cross, rows);
    }
    return absl::OkStatus();
  });
}

absl::Status LmGen::SetExecMask(const at::Tensor& mask) {
  if (!mask.defined() || mask.dim() != 1 || mask.size(0) != batch_) {
    return absl::InvalidArgumentError(absl::StrCat("LmGen::SetExecMask: expected a bool [", batch_,
                                                   "] mask, got ",
                                                   mask.defined() ? Shape(mask) : std::string("none")));
  }
  return GuardTorch("LmGen::SetExecMask", [&] {
    at::Tensor m = mask.to(model_->device(), at::kBool);
    exec_.copy_(m);
    temporal_.exec_mask.copy_(cfg() ? m.repeat({2}) : m);
    if (!slot_generators_.empty()) {
      at::Tensor host = mask.to(at::kCPU, at::kByte).contiguous();
      exec_host_.assign(host.data_ptr<uint8_t>(), host.data_ptr<uint8_t>() + batch_);
    }
  });
}

absl::Status LmGen::SetSlotSeed(int64_t slot, uint64_t seed) {
  if (slot_generators_.empty()) {
    return absl::FailedPreconditionError(
        "LmGen::SetSlotSeed: the generator was made without per_slot_generators");
  }
  if (slot < 0 || slot >= batch_) {
    return absl::InvalidArgumentError(
        absl::StrCat("LmGen::SetSlotSeed: slot ", slot, " out of [0, ", batch_, ")"));
  }
  slot_generators_[static_cast<size_t>(slot)].set_current_seed(seed);
  return absl::OkStatus();
}

absl::Status LmGen::SetAudioDrawSkip(std::vector<uint8_t> skip) {
  if (!skip.empty() && static_cast<int64_t>(skip.size()) != batch_) {
    return absl::InvalidArgumentError(
        absl::StrCat("LmGen::SetAudioDrawSkip: expected ", batch_, " entries, got ", skip.size()));
  }
  audio_draw_skip_ = std::move(skip);
  return absl::OkStatus();
}

absl::Status LmGen::SetSlotSampling(int64_t slot, std::optional<lm::SamplingParams> text,
                                    std::optional<lm::SamplingParams> audio) {
  if (slot_generators_.empty()) {
    return absl::FailedPreconditionError(
        "LmGen::SetSlotSampling: the generator was made without per_slot_generators");
  }
  if (slot < 0 || slot >= batch_) {
    return absl::InvalidArgumentError(
        absl::StrCat("LmGen::SetSlotSampling: slot ", slot, " out of [0, ", batch_, ")"));
  }
  slot_text_params_.resize(static_cast<size_t>(batch_));
  slot_audio_params_.resize(static_cast<size_t>(batch_));
  slot_text_params_[static_cast<size_t>(slot)] = text;
  slot_audio_params_[static_cast<size_t>(slot)] = audio;
  return absl::OkStatus();
}

at::Tensor LmGen::Sample(const at::Tensor& logits, const lm::SamplingParams& params, bool audio) {
  const auto& overrides = audio ? slot_audio_params_ : slot_text_params_;
  const bool any_override =
      std::any_of(overrides.begin(), overrides.end(), [](const auto& p) { return p.has_value(); });
  if (slot_generators_.empty() || ((!params.use_sampling || params.temperature <= 0.0) && !any_override)) {
    return lm::SampleToken(logits, params, generator_);
  }
  const int64_t n = logits.size(0);
  std::vector<at::Tensor> rows;
  rows.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor row = logits.narrow(0, i, 1);
    const int64_t slot = row_slots_[static_cast<size_t>(i)];
    const size_t si = static_cast<size_t>(std::max<int64_t>(slot, 0));
    const bool skipped = audio && !audio_draw_skip_.empty() && slot >= 0 && audio_draw_skip_[si] != 0;
    const lm::SamplingParams& p =
        slot >= 0 && si < overrides.size() && overrides[si].has_value() ? *overrides[si] : params;
    if (slot >= 0 && !skipped) {
      rows.push_back(lm::SampleToken(row, p, slot_generators_[si]));
    } else {
      rows.push_back(row.argmax(-1));  // a paused slot: the token is not stored, and nothing is drawn
    }
  }
  return at::cat(rows, 0);
}

absl::Status LmGen::Reset(const at::Tensor& mask) {
  if (mask.defined() && (mask.dim() != 1 || mask.size(0) != batch_)) {
    return absl::InvalidArgumentError(
        absl::StrCat("LmGen::Reset: expected a bool [", batch_, "] mask, got ", Shape(mask)));
  }
  return GuardTorch("LmGen::Reset", [&] {
    at::Tensor m = mask.defined()
                       ? mask.to(model_->device(), at::kBool)
                       : at::ones({batch_}, at::TensorOptions().dtype(at::kBool).device(model_->device()));
    exec_.masked_fill_(m, true);
    if (!slot_generators_.empty()) {
      at::Tensor host = m.to(at::kCPU, at::kByte).contiguous();
      for (int64_t i = 0; i < batch_; ++i) {
        if (host.data_ptr<uint8_t>()[i] != 0) exec_host_[static_cast<size_t>(i)] = 1;
      }
    }
    model_->ResetTemporal(temporal_, cfg() ? m.repeat({2}) : m);
  });
}

at::Tensor LmGen::RunDepformer(LmDepformerState& state, const at::Tensor& text,
                               const at::Tensor& transformer_out, at::Tensor* logits_out) {
  const LmModel& m = *model_;
  const int64_t dep_q = dep_q_;
  std::vector<at::Tensor> inputs = m.DepformerInputs(transformer_out);
  std::vector<at::Tensor> tokens;
  std::vector<at::Tensor> all_logits;
  at::Tensor prev = text;
  for (int64_t k = 0; k < dep_q; ++k) {
    at::Tensor p = cfg() ? prev.repeat({2}) : prev;
    at::Tensor logits = m.DepformerStep(state, k, p, inputs[k]);
    if (cfg()) {
      auto halves = logits.chunk(2, 0);
      logits = halves[1] + (halves[0] - halves[1]) * options_.cfg_coef;
    }
    at::Tensor logits_f = logits.to(at::kFloat);
    if (logits_out != nullptr) all_logits.push_back(logits_f);
    prev = Sample(logits_f, options_.audio, /*audio=*/true);
    tokens.push_back(prev);
  }
  if (logits_out != nullptr) *logits_out = at::stack(all_logits, 1);
  return at::stack(tokens, 1);
}

absl::Status LmGen::CheckStepInputs(int64_t b, const at::Tensor& input_tokens,
                                    const at::Tensor& depformer_replace, const char* what) const {
  const int64_t dep_q = dep_q_;
  const int64_t needed = num_input_streams();
  if (!input_tokens.defined() ||
      (input_tokens.dim() != 2 && !(input_tokens.dim() == 3 && input_tokens.size(2) == 1)) ||
      input_tokens.size(0) != b || input_tokens.size(1) < needed) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": input tokens must be [", b, ", >=", needed, "] or [", b, ", >=", needed,
                     ", 1], got ", input_tokens.defined() ? Shape(input_tokens) : std::string("none")));
  }
  if (depformer_replace.defined()) {
    if (dep_q == 0 || depformer_replace.dim() < 2 || depformer_replace.size(0) != b ||
        depformer_replace.size(1) != dep_q || depformer_replace.dim() > 3 ||
        (depformer_replace.dim() == 3 && depformer_replace.size(2) != 1)) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": depformer replacement tokens must be [", b, ", ",
                                                     dep_q, "(, 1)], got ", Shape(depformer_replace)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LmStepResult> LmGen::Step(const at::Tensor& input_tokens,
                                         const at::Tensor& depformer_replace) {
  RETURN_IF_ERROR(CheckStepInputs(batch_, input_tokens, depformer_replace, "LmGen::Step"));
  return GuardTorch("LmGen::Step", [&]() -> LmStepResult {
    StepState st;
    st.b = batch_;
    st.cache = cache_;
    st.exec = exec_;
    st.masked_until = masked_until_;
    st.cond_sum = cond_sum_;
    st.depformer = &depformer_;
    row_slots_.assign(static_cast<size_t>(batch_), -1);
    for (int64_t i = 0; i < batch_; ++i) {
      if (exec_host_.empty() || exec_host_[static_cast<size_t>(i)] != 0) row_slots_[static_cast<size_t>(i)] = i;
    }
    return StepCore(st, input_tokens, depformer_replace);
  });
}

absl::StatusOr<LmStepResult> LmGen::StepSlots(std::span<const int64_t> slots, const at::Tensor& input_tokens,
                                              const at::Tensor& depformer_replace) {
  const int64_t n = static_cast<int64_t>(slots.size());
  ASSIGN_OR_RETURN(StepRows rows, MakeStepRows(slots, batch_, model_->device()));
  RETURN_IF_ERROR(CheckStepInputs(n, input_tokens, depformer_replace, "LmGen::StepSlots"));
  return GuardTorch("LmGen::StepSlots", [&]() -> LmStepResult {
    const int64_t b = rows.rows;
    StepRows doubled;
    if (cfg()) doubled = rows.Doubled();
    StepState st;
    st.b = b;
    st.rows = &rows;
    st.temporal_rows = cfg() ? &doubled : &rows;
    st.cache = rows.Gather(cache_);
    st.exec = rows.active_mask;
    if (masked_until_.defined()) st.masked_until = rows.Gather(masked_until_);
    if (cond_sum_.defined()) st.cond_sum = st.temporal_rows->Gather(cond_sum_);
    auto dep = bucket_depformers_.find(b);
    if (dep == bucket_depformers_.end() && dep_q_ > 0) {
      dep = bucket_depformers_.emplace(b, model_->NewDepformerState(cfg() ? 2 * b : b)).first;
    }
    st.depformer = dep_q_ > 0 ? &dep->second : nullptr;
    row_slots_.assign(static_cast<size_t>(b), -1);
    for (int64_t i = 0; i < b; ++i) {
      if (rows.is_active[static_cast<size_t>(i)]) row_slots_[static_cast<size_t>(i)] = rows.slots[static_cast<size_t>(i)];
    }
    const int64_t needed = num_input_streams();
    at::Tensor in;
    if (needed > 0) {
      in = rows.Expand(input_tokens.reshape({n, -1}).narrow(1, 0, needed).to(model_->device(), at::kLong), -1);
    } else {
      in = at::zeros({b, 0}, at::TensorOptions().dtype(at::kLong).device(model_->device()));
    }
    at::Tensor replace;
    if (depformer_replace.defined()) {
      replace = rows.Expand(depformer_replace.reshape({n, dep_q_}).to(model_->device(), at::kLong), 0);
    }
    LmStepResult r = StepCore(st, in, replace);
    rows.ScatterActive(cache_, st.cache);
    // The active rows, in slot order.
    auto pick = [&](const at::Tensor& t) { return t.defined() ? rows.SelectActive(t) : t; };
    auto pick2 = [&](const at::Tensor& t) {
      return t.defined() && cfg() ? doubled.SelectActive(t) : pick(t);
    };
    LmStepResult out;
    out.tokens = pick(r.tokens);
    out.text_token = pick(r.text_token);
    out.audio_tokens = pick(r.audio_tokens);
    out.text_logits = pick(r.text_logits);
    out.audio_logits = pick(r.audio_logits);
    out.transformer_out = pick2(r.transformer_out);
    for (const at::Tensor& h : r.extra_heads) out.extra_heads.push_back(pick2(h));
    return out;
  });
}

at::Tensor LmGen::positions() const { return temporal_.positions.narrow(0, 0, batch_); }

at::Tensor LmGen::StepPositions(const StepState& st) const {
  at::Tensor p = positions();
  return st.rows != nullptr ? st.rows->Gather(p) : p;
}

LmStepResult LmGen::StepCore(StepState& st, const at::Tensor& input_tokens, const at::Tensor& depformer_replace) {
  const LmModel& m = *model_;
  const LmConfig& c = m.config();
  const int64_t streams = c.num_streams();
  const int64_t dep_q = dep_q_;
  const int64_t needed = streams - dep_q - 1;
  const int64_t b = st.b;
  const int64_t ct = cache_len_;
  const auto dev = m.device();
  at::Tensor& cache = st.cache;
  // The steps each row ran before this one (read before step 4 advances them).
  at::Tensor offsets = StepPositions(st);
  const at::Tensor& exec = st.exec;
  at::Tensor exec3 = exec.view({b, 1, 1});
  // 1. Write the caller's streams `delay` steps ahead.
  if (needed > 0) {
    at::Tensor in = input_tokens.reshape({b, -1}).narrow(1, 0, needed).to(dev, at::kLong);
    at::Tensor sub = cache.narrow(1, dep_q + 1, needed);
    at::Tensor idx =
        at::remainder(offsets.view({b, 1}) + delays_.narrow(0, dep_q + 1, needed).view({1, needed}), ct)
            .unsqueeze(-1);
    at::Tensor value = at::where(exec3, in.unsqueeze(-1), sub.gather(2, idx));
    sub.scatter_(2, idx, value);
  }
  // 2. Read this step's model input (initial tokens while a stream's delay has not elapsed).
  at::Tensor is_init = offsets.view({b, 1}).le(delays_.view({1, streams})) | exec.logical_not().view({b, 1});
  at::Tensor col = at::remainder(offsets, ct).view({b, 1, 1}).expand({b, streams, 1});
  at::Tensor x = at::where(is_init, m.initial_tokens().view({1, streams}), cache.gather(2, col).squeeze(2));
  // 3. CFG: null rows.
  if (cfg()) {
    at::Tensor second = x;
    if (st.masked_until.defined()) {
      at::Tensor limit = delays_.view({1, streams}) + st.masked_until.view({b, 1});
      at::Tensor zeroed = offsets.view({b, 1}).le(limit) & is_init.logical_not();
      second = x.masked_fill(zeroed, -1);
    }
    if (options_.cfg_is_no_text) {
      second = second.clone();
      second.select(1, 0).masked_fill_(is_init.select(1, 0).logical_not(), -1);
    }
    x = at::cat({x, second}, 0);
  }
  // 4. Temporal transformer and text head.
  LmModel::TextStep step = st.temporal_rows != nullptr
                               ? m.ForwardTextRows(temporal_, *st.temporal_rows, x, st.cond_sum)
                               : m.ForwardText(temporal_, x, st.cond_sum);
  at::Tensor text_logits = step.text_logits;
  if (cfg()) {
    auto halves = text_logits.chunk(2, 0);
    text_logits =
        options_.cfg_is_no_text ? halves[0] : halves[1] + (halves[0] - halves[1]) * options_.cfg_coef;
  }
  if (options_.on_text_logits) options_.on_text_logits(text_logits);
  // 5. Text token.
  at::Tensor text = Sample(text_logits.to(at::kFloat), options_.text, /*audio=*/false).view({b});
  if (options_.on_text) options_.on_text(text);
  // 6. Audio tokens.
  LmStepResult result;
  at::Tensor audio;
  if (dep_q > 0) {
    if (depformer_replace.defined()) {
      audio = depformer_replace.reshape({b, dep_q}).to(dev, at::kLong);
    } else {
      audio = RunDepformer(*st.depformer, text, step.transformer_out,
                           options_.keep_audio_logits ? &result.audio_logits : nullptr);
    }
    if (options_.on_audio) options_.on_audio(audio);
  }
  // 7. Store the generated tokens at the new column: the positions step 4 advanced (the executing rows).
  offsets = StepPositions(st);
  at::Tensor pos = at::remainder(offsets, ct).view({b, 1, 1});
  {
    at::Tensor sub = cache.narrow(1, 0, 1);
    sub.scatter_(2, pos, at::where(exec3, text.view({b, 1, 1}), sub.gather(2, pos)));
  }
  if (dep_q > 0) {
    at::Tensor sub = cache.narrow(1, 1, dep_q);
    at::Tensor idx = pos.expand({b, dep_q, 1});
    sub.scatter_(2, idx, at::where(exec3, audio.view({b, dep_q, 1}), sub.gather(2, idx)));
  }
  // 8. The output frame with the delays undone.
  at::Tensor out_idx =
      at::remainder(offsets.view({b, 1}) - max_delay_ + delays_.narrow(0, 0, dep_q + 1).view({1, -1}), ct)
          .unsqueeze(-1);
  at::Tensor out = cache.narrow(1, 0, dep_q + 1).gather(2, out_idx).squeeze(2);
  out = out.masked_fill((offsets.le(max_delay_) | exec.logical_not()).view({b, 1}), -2);

  result.tokens = out;
  result.text_token = text;
  result.audio_tokens = audio;
  result.text_logits = text_logits;
  result.transformer_out = step.transformer_out;
  if (options_.compute_extra_heads) result.extra_heads = m.ExtraHeads(step.transformer_out);
  return result;
}

}  // namespace monologue
