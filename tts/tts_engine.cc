// libtorch implementation of tts_engine.h: the engine's batch step and session admission. The engine state is
// tts/tts_engine_state.h; the session API and a slot's stream lifecycle are tts/tts_session.cc; the LM
// conditions tts/tts_conditions.cc; Load and TtsEngineBuilder tts/tts_engine_load.cc.
#include "tts/tts_engine.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "tts/tts_conditions.h"
#include "tts/tts_engine_state.h"

namespace monologue {

namespace fs = std::filesystem;

TtsEngine::TtsEngine(std::shared_ptr<TtsSession::EngineState> shared) : shared_(std::move(shared)) {}
TtsEngine::~TtsEngine() = default;

absl::StatusOr<std::unique_ptr<TtsSession>> TtsEngine::OpenSession(const TtsSessionOptions& options) {
  auto& sh = *shared_;
  const TtsModelInfo& info = sh.info;
  // Forced padding steps after each word: the DSM scripts use 1; 100 is 8 s of silence per word (and keeps
  // the state machine's step counts far from overflowing).
  constexpr int kMaxPaddingBetween = 100;
  if (options.padding_between < 0 || options.padding_between > kMaxPaddingBetween) {
    return absl::InvalidArgumentError(absl::StrCat("padding between words must be from 0 to ",
                                                   kMaxPaddingBetween, " steps (got ",
                                                   options.padding_between, ")"));
  }
  if (options.temp.has_value() && (*options.temp < 0 || !std::isfinite(*options.temp))) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be a finite number >= 0 (got ", *options.temp, ")"));
  }
  if ((options.temp.has_value() || options.seed.has_value()) && !sh.options.independent_slots) {
    return absl::InvalidArgumentError("per-session temperature and seed need independent slots");
  }
  if (!std::isfinite(options.padding_bonus)) return absl::InvalidArgumentError("padding bonus must be finite");
  if (info.multi_speaker && options.voices.empty()) {
    return absl::InvalidArgumentError("this model needs a voice (--voice NAME or a .safetensors voice file)");
  }
  if (static_cast<int>(options.voices.size()) > info.max_speakers) {
    return absl::InvalidArgumentError(absl::StrCat(options.voices.size(), " voices given; this model takes at most ",
                                                   info.max_speakers));
  }
  if (info.cfg_distilled) {
    const double coef = options.cfg_coef.value_or(sh.options.cfg_coef);
    const bool valid = std::any_of(info.cfg_values.begin(), info.cfg_values.end(),
                                   [&](double v) { return std::abs(v - coef) < 1e-9; });
    if (!valid) {
      std::vector<std::string> values;
      for (double v : info.cfg_values) values.push_back(tts::CfgValue(v));
      return absl::InvalidArgumentError(absl::StrCat("cfg coefficient ", coef, " is not one this model was distilled for (",
                                                     absl::StrJoin(values, ", "), ")"));
    }
  }
  std::vector<at::Tensor> voices;
  for (const std::string& path : options.voices) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat("voice file ", path, " does not exist"));
    ASSIGN_OR_RETURN(at::Tensor v, tts::LoadVoice(path, info.speaker_dim, sh.voice_frames));
    voices.push_back(std::move(v));
  }
  LmFusedConditions conditions;
  RETURN_IF_ERROR(GuardTorch("tts session conditions", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(conditions, tts::SlotConditions(sh.condition_context(), options, voices));
    return absl::OkStatus();
  }));

  ASSIGN_OR_RETURN(SlotTicket t, sh.slots->Acquire([&](TtsSession::EngineState::Slot& s) {
    s.options = options;
    s.conditions = conditions;
    sh.StartStream(s);
  }));
  return std::unique_ptr<TtsSession>(new TtsSession(shared_, t.index, t.generation));
}

absl::StatusOr<int> TtsEngine::Step() {
  auto& sh = *shared_;
  std::lock_guard<std::mutex> step_lock(sh.step_mu);
  auto& table = *sh.slots;
  const int B = sh.batch;
  const int64_t Q = sh.info.num_codebooks;
  std::vector<uint8_t> reset(B, 0), exec(B, 0);
  std::vector<LmFusedConditions> new_conditions(B);
  std::vector<uint64_t> seeds(B, 0);
  std::vector<std::optional<double>> temps(B);
  std::vector<float> bonus(B, 0.0f);
  int active = 0;
  bool any_reset = false, any_bonus = false;
  {
    std::lock_guard<std::mutex> lock(table.mu());
    table.ClearWorkLocked();
    for (int b = 0; b < B; ++b) {
      auto& s = table.at(b);
      sh.step_exec[b] = 0;
      if (!s.in_use || s.ended) continue;
      if (s.needs_reset) {
        reset[b] = 1;
        any_reset = true;
        new_conditions[b] = s.conditions;
        seeds[b] = s.options.seed.value_or(sh.options.seed.value_or(c10::default_rng_seed_val));
        temps[b] = s.options.temp;
        s.needs_reset = false;
      }
      if (s.held || !s.machine->CanStep()) continue;
      exec[b] = 1;
      sh.step_exec[b] = 1;
      sh.step_generation[b] = s.generation;
      sh.step_index[b] = s.step;
      bonus[b] = static_cast<float>(s.options.padding_bonus);
      any_bonus = any_bonus || bonus[b] != 0.0f;
      ++active;
    }
  }
  if (active == 0 && !any_reset) {
    table.NotifyEvents();
    return 0;
  }
  const auto t0 = std::chrono::steady_clock::now();
  at::Tensor out_cpu, pcm_cpu;
  std::vector<uint8_t> decode(B, 0);
  bool any_decode = false;
  for (int b = 0; b < B; ++b) {
    decode[b] = exec[b] && sh.step_index[b] >= sh.info.delay_steps + sh.info.max_delay;
    any_decode = any_decode || decode[b];
  }
  // Compacted step: only the stepping slots run (one batch generator draws for every row: not then).
  const bool compact = sh.options.compact_steps && sh.options.independent_slots;
  std::vector<int64_t> exec_slots, decode_slots, decode_rows;
  std::vector<int64_t> row_of(static_cast<size_t>(B)), pcm_row_of(static_cast<size_t>(B));
  for (int b = 0; b < B; ++b) {
    row_of[static_cast<size_t>(b)] = compact ? static_cast<int64_t>(exec_slots.size()) : b;
    pcm_row_of[static_cast<size_t>(b)] = compact ? static_cast<int64_t>(decode_slots.size()) : b;
    if (decode[b]) {
      decode_slots.push_back(b);
      decode_rows.push_back(static_cast<int64_t>(exec_slots.size()));
    }
    if (exec[b]) exec_slots.push_back(b);
  }
  absl::Status st = GuardTorch("tts step", [&]() -> absl::Status {
    const auto byte = at::TensorOptions().dtype(at::kByte);
    if (any_reset) {
      at::Tensor mask = at::from_blob(reset.data(), {B}, byte).to(at::kBool).to(sh.device);
      RETURN_IF_ERROR(sh.mimi->Reset(sh.mimi_state, mask));
      RETURN_IF_ERROR(sh.gen->Reset(mask));
      for (int b = 0; b < B; ++b) {
        if (!reset[b]) continue;
        if (sh.options.independent_slots) {
          RETURN_IF_ERROR(sh.gen->SetSlotSeed(b, seeds[b]));
          std::optional<lm::SamplingParams> text, audio;
          if (temps[b].has_value()) {
            text = lm::SamplingParams{*temps[b] > 0, *temps[b], sh.options.top_k_text};
            audio = lm::SamplingParams{*temps[b] > 0, *temps[b], sh.options.top_k};
          }
          RETURN_IF_ERROR(sh.gen->SetSlotSampling(b, text, audio));
        }
        std::vector<int64_t> rows = {b};
        if (sh.real_cfg) rows.push_back(b + B);
        RETURN_IF_ERROR(sh.gen->SetConditions(new_conditions[b], at::tensor(rows, at::kLong)));
      }
    }
    if (!compact) {
      at::Tensor exec_mask = at::from_blob(exec.data(), {B}, byte).to(at::kBool).to(sh.device);
      RETURN_IF_ERROR(sh.gen->SetExecMask(exec_mask));
    }
    if (active == 0) return absl::OkStatus();
    const int64_t rows = compact ? static_cast<int64_t>(exec_slots.size()) : B;
    sh.step_bonus = any_bonus ? at::from_blob(bonus.data(), {B}, at::kFloat).clone() : at::Tensor();
    const int64_t inputs = sh.gen->num_input_streams();
    at::Tensor input =
        at::full({rows, inputs}, sh.ids.zero, at::TensorOptions().dtype(at::kLong).device(sh.device));
    // Skip the depformer while every stepping slot is inside the audio delay: its tokens are forced anyway.
    bool all_in_delay = sh.options.skip_depformer_in_delay;
    for (int b = 0; b < B && all_in_delay; ++b) {
      if (exec[b] && sh.step_index[b] >= sh.info.delay_steps) all_in_delay = false;
    }
    if (sh.options.independent_slots) {
      // Slots still inside the delay draw no audio, as their batch-1 run (which skips the depformer) does.
      std::vector<uint8_t> skip(B, 0);
      for (int b = 0; b < B; ++b) skip[b] = exec[b] && sh.step_index[b] < sh.info.delay_steps;
      RETURN_IF_ERROR(sh.gen->SetAudioDrawSkip(std::move(skip)));
    }
    at::Tensor replace;
    if (all_in_delay) {
      replace = at::full({rows, Q}, sh.ids.zero, at::TensorOptions().dtype(at::kLong).device(sh.device));
    }
    ASSIGN_OR_RETURN(LmStepResult result,
                     compact ? sh.gen->StepSlots(exec_slots, input, replace) : sh.gen->Step(input, replace));
    out_cpu = result.tokens.to(at::kCPU).contiguous();
    if (any_decode && compact) {
      at::Tensor tokens = result.tokens;
      if (decode_slots.size() != exec_slots.size()) {
        tokens = tokens.index_select(0, at::tensor(decode_rows, at::kLong).to(tokens.device()));
      }
      at::Tensor codes = tokens.narrow(1, 1, Q).clamp_min(0).unsqueeze(-1);
      ASSIGN_OR_RETURN(at::Tensor pcm, sh.mimi->DecodeStepSlots(sh.mimi_state, decode_slots, codes));
      pcm_cpu = pcm.clamp(-1.0, 1.0).to(at::kFloat).to(at::kCPU).contiguous();
    } else if (any_decode) {
      at::Tensor dmask = at::from_blob(decode.data(), {B}, byte).to(at::kBool).to(sh.device);
      at::Tensor codes = result.tokens.narrow(1, 1, Q).clamp_min(0).unsqueeze(-1);
      at::Tensor pcm = sh.mimi->DecodeStepUnchecked(sh.mimi_state, codes, dmask);
      pcm_cpu = pcm.clamp(-1.0, 1.0).to(at::kFloat).to(at::kCPU).contiguous();
    }
    return absl::OkStatus();
  });
  sh.step_bonus = at::Tensor();
  if (!st.ok()) {
    // Fail the slots of this step (their state is unknown) so nothing hangs; the others keep going.
    table.AbandonStep(sh.step_generation, [&](int b) { return exec[b] != 0; }, [&](auto& s) {
      if (!s.ended) sh.Finish(s);
    });
    return st;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (active == 0) return 0;

  std::lock_guard<std::mutex> lock(table.mu());
  table.RecordStepLocked(seconds);
  const int64_t* tokens = out_cpu.data_ptr<int64_t>();
  const int64_t width = out_cpu.size(1);
  const int F = sh.info.frame_size;
  for (int b = 0; b < B; ++b) {
    if (!exec[b]) continue;
    auto& s = table.at(b);
    if (!s.in_use || s.generation != sh.step_generation[b]) continue;  // left or reset meanwhile
    if (decode[b]) {
      const int64_t row = row_of[static_cast<size_t>(b)];
      s.codes.insert(s.codes.end(), tokens + row * width + 1, tokens + row * width + 1 + Q);
      TtsEvent e;
      e.kind = TtsEvent::Kind::kAudio;
      e.step = s.step;
      const float* p = pcm_cpu.data_ptr<float>() + pcm_row_of[static_cast<size_t>(b)] * F;
      e.audio.assign(p, p + F);
      s.events.push_back(std::move(e));
    }
    s.step++;
    if (sh.Done(s)) sh.Finish(s);
  }
  table.NotifyEvents();
  return active;
}

absl::Status TtsEngine::RunUntilIdle() {
  while (true) {
    ASSIGN_OR_RETURN(int n, Step());
    if (n == 0) return absl::OkStatus();
  }
}

bool TtsEngine::WaitForWork(std::chrono::milliseconds timeout) {
  return shared_->slots->WaitForWork(timeout);
}

void TtsEngine::Wake() { shared_->slots->NotifyWork(); }

const TtsModelInfo& TtsEngine::info() const { return shared_->info; }
int TtsEngine::batch_size() const { return shared_->batch; }
int TtsEngine::free_slots() const { return shared_->slots->free_slots(); }
int64_t TtsEngine::steps_run() const { return shared_->slots->steps_run(); }
double TtsEngine::step_seconds() const { return shared_->slots->step_seconds(); }

}  // namespace monologue
