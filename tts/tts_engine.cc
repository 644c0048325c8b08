// libtorch implementation of tts_engine.h.
#include "tts/tts_engine.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/config/hf_cache.h"
#include "core/config/model_config.h"
#include "core/hub/hub.h"
#include "core/io/safetensors.h"
#include "core/lm/lm_gen.h"
#include "core/lm/lm_model.h"
#include "core/mimi/mimi_loader.h"
#include "core/mimi/mimi_model.h"
#include "core/session/slot_table.h"
#include "core/text/text_tokenizer.h"
#include "core/util/device_dtype.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "tts/tts_script.h"
#include "tts/tts_engine_builder.h"
#include "tts/tts_state_machine.h"

namespace monologue {

namespace fs = std::filesystem;

struct TtsSession::Shared {
  // Immutable after Load.
  TtsModelInfo info;
  TtsEngineOptions options;
  ModelConfig config;
  std::shared_ptr<const TextTokenizer> tokenizer;
  std::unique_ptr<MimiModel> mimi;
  std::shared_ptr<const LmModel> lm;
  c10::Device device = c10::Device(c10::kCPU);
  int batch = 0;
  bool real_cfg = false;         // doubled batch (model without the cfg conditioner, cfg_coef != 1)
  int voice_frames = 125;        // speaker_wavs length every voice must have (fixed cross-attention size)
  std::vector<int64_t> audio_delays;  // delay of each generated audio stream (streams 1..n_q)
  tts::TokenIds ids;
  tts::StateMachineOptions machine_options;

  // Model state: only Step() touches it (under step_mu).
  std::mutex step_mu;
  std::unique_ptr<LmGen> gen;
  MimiStreamState mimi_state;

  struct Slot : SlotBase<TtsEvent> {
    TtsSessionOptions options;
    LmFusedConditions conditions;  // 1 row (2 with real CFG: conditional, null)
    std::unique_ptr<tts::ScriptBuilder> script;
    std::unique_ptr<tts::StateMachine> machine;
    int64_t words_pushed = 0;  // entries with tokens
    bool held = false;
    int64_t step = 0;  // steps executed
    std::optional<TtsWord> open_word;  // consumed, waiting for its end time
    int64_t words_done = 0;
    std::vector<int64_t> fed;
    std::vector<int64_t> codes;
  };
  std::unique_ptr<SlotTable<Slot>> slots;  // sized in Finish

  // Per-step context read by the LmGen hooks (set by Step under step_mu).
  std::vector<uint8_t> step_exec;
  std::vector<uint64_t> step_generation;
  std::vector<int64_t> step_index;
  at::Tensor step_bonus;  // f32 [B] or undefined

  void StartStream(Slot& slot) {
    tts::ScriptOptions script_options;
    script_options.multi_speaker = info.multi_speaker;
    script_options.padding_between = slot.options.padding_between;
    script_options.frame_rate = info.frame_rate;
    script_options.ids = ids;
    std::shared_ptr<const TextTokenizer> tok = tokenizer;
    slot.script = std::make_unique<tts::ScriptBuilder>(
        [tok](std::string_view word) { return tok->Encode(word); }, script_options);
    slot.machine = std::make_unique<tts::StateMachine>(machine_options);
    slot.words_pushed = 0;
    slot.held = false;
    slot.step = 0;
    slot.open_word.reset();
    slot.words_done = 0;
    slot.fed.clear();
    slot.codes.clear();
  }

  void AddEntries(Slot& slot, std::vector<tts::Entry> entries) {
    for (const tts::Entry& e : entries) slot.words_pushed += e.tokens.empty() ? 0 : 1;
    slot.machine->Append(std::move(entries));
    slots->NotifyWorkLocked();
  }

  // Under mu: a word was consumed at `step`; the previous one ends there.
  void OnWord(Slot& slot, const tts::TimedWord& word) {
    const double t = static_cast<double>(word.step) / info.frame_rate;
    if (slot.open_word.has_value()) {
      slot.open_word->end_s = t;
      EmitWord(slot);
    }
    TtsWord w;
    w.text = word.text;
    w.step = word.step;
    w.start_s = t;
    slot.open_word = w;
    slot.words_done++;
  }

  void EmitWord(Slot& slot) {
    TtsEvent e;
    e.kind = TtsEvent::Kind::kWord;
    e.step = slot.open_word->step;
    e.word = std::move(*slot.open_word);
    slot.open_word.reset();
    slot.events.push_back(std::move(e));
  }

  // Under mu: the slot's last step is done.
  void Finish(Slot& slot) {
    if (slot.open_word.has_value()) {
      const int64_t end = slot.machine->end_step().value_or(slot.step);
      slot.open_word->end_s = static_cast<double>(end) / info.frame_rate;
      EmitWord(slot);
    }
    TtsEvent e;
    e.kind = TtsEvent::Kind::kEnd;
    e.step = slot.step;
    slot.events.push_back(std::move(e));
    slot.ended = true;
  }

  bool Done(const Slot& slot) const {
    if (slot.step >= options.max_steps) return true;
    auto end = slot.machine->end_step();
    return end.has_value() && slot.step >= *end + info.delay_steps + options.final_padding;
  }
};

namespace {

absl::StatusOr<double> TtsNumber(const ModelConfig& config, const char* key, double fallback,
                                 const std::string& source) {
  if (!config.tts_config.contains(key)) return fallback;
  const auto& v = config.tts_config.at(key);
  if (!v.is_number()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": tts_config.", key, " must be a number"));
  }
  return v.get<double>();
}

// The reference formats the distilled CFG value with "{:.1f}".
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
  return t.to(at::kFloat);
}

}  // namespace

// ---- TtsSession -------------------------------------------------------------------------------------------

TtsSession::TtsSession(std::shared_ptr<Shared> shared, int slot, uint64_t generation)
    : shared_(std::move(shared)), slot_(slot), generation_(generation) {}

TtsSession::~TtsSession() {
  shared_->slots->Release({slot_, generation_}, [](Shared::Slot& s) {
    s.script.reset();
    s.machine.reset();
    s.fed = {};
    s.codes = {};
  });
}

absl::Status TtsSession::PushText(std::string_view text) {
  return shared_->slots->With(slot_, [&](Shared::Slot& s) -> absl::Status {
    if (s.closed) return absl::FailedPreconditionError("tts session: PushText after Close");
    ASSIGN_OR_RETURN(std::vector<tts::Entry> entries, s.script->Push(text));
    shared_->AddEntries(s, std::move(entries));
    return absl::OkStatus();
  });
}

absl::Status TtsSession::EndTurn() {
  return shared_->slots->With(slot_, [&](Shared::Slot& s) -> absl::Status {
    if (s.closed) return absl::FailedPreconditionError("tts session: EndTurn after Close");
    ASSIGN_OR_RETURN(std::vector<tts::Entry> entries, s.script->EndTurn());
    shared_->AddEntries(s, std::move(entries));
    return absl::OkStatus();
  });
}

absl::Status TtsSession::Close() {
  return shared_->slots->With(slot_, [&](Shared::Slot& s) -> absl::Status {
    if (s.closed) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::vector<tts::Entry> entries, s.script->Finish());
    shared_->AddEntries(s, std::move(entries));
    if (s.words_pushed == 0) {
      return absl::InvalidArgumentError(
          "tts session: no text to speak (empty, or nothing the tokenizer can represent)");
    }
    s.closed = true;
    s.machine->Close();
    shared_->slots->NotifyWorkLocked();
    return absl::OkStatus();
  });
}

absl::Status TtsSession::Reset() {
  generation_ = shared_->slots->Restart({slot_, generation_}, [&](Shared::Slot& s) { shared_->StartStream(s); })
                    .generation;
  return absl::OkStatus();
}

void TtsSession::Hold(bool hold) {
  shared_->slots->With(slot_, [&](Shared::Slot& s) {
    if (s.generation != generation_ || s.held == hold) return;
    s.held = hold;
    shared_->slots->NotifyWorkLocked();
  });
}

std::vector<TtsEvent> TtsSession::PollEvents() { return shared_->slots->TakeEvents(slot_); }

std::vector<TtsEvent> TtsSession::WaitEvents(std::chrono::milliseconds timeout) {
  return shared_->slots->WaitEvents(slot_, timeout);
}

bool TtsSession::finished() const {
  return shared_->slots->With(slot_, [](const Shared::Slot& s) { return s.ended; });
}

std::vector<int64_t> TtsSession::text_tokens() const {
  return shared_->slots->With(slot_, [](const Shared::Slot& s) { return s.fed; });
}

std::vector<int64_t> TtsSession::codes() const {
  return shared_->slots->With(slot_, [](const Shared::Slot& s) { return s.codes; });
}

int64_t TtsSession::steps_done() const {
  return shared_->slots->With(slot_, [](const Shared::Slot& s) { return s.step; });
}

int64_t TtsSession::words_done() const {
  return shared_->slots->With(slot_, [](const Shared::Slot& s) { return s.words_done; });
}

// ---- TtsEngine --------------------------------------------------------------------------------------------

TtsEngine::TtsEngine(std::shared_ptr<TtsSession::Shared> shared) : shared_(std::move(shared)) {}
TtsEngine::~TtsEngine() = default;

namespace {

// The conditions of one slot: the conditional row, then (real CFG) the null row.
// What the conditions of a slot depend on.
struct ConditionContext {
  const LmModel* lm = nullptr;
  int64_t max_speakers = 0;
  int64_t voice_frames = 0;
  bool real_cfg = false;
  double default_cfg = 1.0;
  c10::Device device = c10::Device(c10::kCPU);
};

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

}  // namespace

absl::StatusOr<std::unique_ptr<TtsEngine>> TtsEngine::Load(const std::string& model_dir,
                                                           const TtsEngineOptions& options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch size must be >= 1 (got ", options.batch_size, ")"));
  }
  if (options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("threads must be >= 0 (got ", options.threads, ")"));
  }
  if (options.temp < 0) return absl::InvalidArgumentError("temperature must be >= 0");
  if (options.top_k < 1 || options.top_k_text < 1) return absl::InvalidArgumentError("top-k must be >= 1");
  if (options.max_steps < 1 || options.final_padding < 0 || options.initial_padding < 0 ||
      options.max_padding < 0) {
    return absl::InvalidArgumentError("padding counts must be >= 0 and max steps >= 1");
  }
  if (options.threads > 0) at::set_num_threads(options.threads);
  ASSIGN_OR_RETURN(c10::Device device, ParseDevice(options.device));
  ASSIGN_OR_RETURN(at::ScalarType dtype, ParseDtype(options.dtype, device));
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  const std::string source = (fs::path(model_dir) / "config.json").string();
  if (config.model_type != ModelType::kTts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model directory ", model_dir, " holds a '", ModelTypeName(config.model_type),
        "' model; synthesis needs a text-to-speech model (config.json model_type \"tts\", e.g. "
        "kyutai/tts-1.6b-en_fr)"));
  }
  ASSIGN_OR_RETURN(ModelFiles files, ResolveModelFiles(model_dir, config, options.lora_path));

  auto shared = std::make_shared<TtsSession::Shared>();
  auto& sh = *shared;
  sh.device = device;
  sh.batch = options.batch_size;
  sh.options = options;
#ifdef MONOLOGUE_HAVE_SENTENCEPIECE
  ASSIGN_OR_RETURN(sh.tokenizer, TextTokenizer::LoadForModel(files.tokenizer.string(), config.lm.text_card));
#else
  return absl::FailedPreconditionError(
      "this build has no sentencepiece (MONOLOGUE_WITH_SENTENCEPIECE=OFF): cannot load the text tokenizer " +
      files.tokenizer.string());
#endif

  LmLoadOptions lm_options;
  lm_options.dtype = dtype;
  lm_options.device = device;
  lm_options.lora_path = files.lora.string();
  lm_options.lora_scaling = config.lora_scaling;
  ASSIGN_OR_RETURN(sh.lm, LmModel::LoadFile(config.lm, files.lm.string(), lm_options));
  ASSIGN_OR_RETURN(MimiModel mimi, LoadMimiFile(files.mimi.string(), config.mimi, device));
  sh.mimi = std::make_unique<MimiModel>(std::move(mimi));
  return TtsEngineBuilder::Finish(std::move(shared), config, model_dir);
}

absl::StatusOr<std::unique_ptr<TtsEngine>> TtsEngineBuilder::Create(const ModelConfig& config,
                                                                    std::shared_ptr<const LmModel> lm,
                                                                    const MimiModel& mimi,
                                                                    std::shared_ptr<const TextTokenizer> tokenizer,
                                                                    const TtsEngineOptions& options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch size must be >= 1 (got ", options.batch_size, ")"));
  }
  if (config.model_type != ModelType::kTts) {
    return absl::InvalidArgumentError("TtsEngineBuilder::Create: the config is not a TTS model");
  }
  if (tokenizer == nullptr) return absl::InvalidArgumentError("TtsEngineBuilder::Create: a tokenizer is required");
  auto shared = std::make_shared<TtsSession::Shared>();
  shared->device = mimi.device();
  shared->batch = options.batch_size;
  shared->options = options;
  shared->tokenizer = std::move(tokenizer);
  shared->lm = std::move(lm);
  shared->mimi = std::make_unique<MimiModel>(mimi);
  return Finish(std::move(shared), config, "(in memory)");
}

absl::StatusOr<std::unique_ptr<TtsEngine>> TtsEngineBuilder::Finish(std::shared_ptr<TtsSession::Shared> shared,
                                                                    const ModelConfig& config,
                                                                    const std::string& model_dir) {
  auto& sh = *shared;
  const TtsEngineOptions& options = sh.options;
  const std::string source = model_dir + "/config.json";
  const c10::Device device = sh.device;
  const at::ScalarType dtype = sh.lm->int8_weights() ? at::kChar : sh.lm->dtype();  // kChar: "int8"
  if (!config.tts_config.contains("audio_delay")) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": tts_config.audio_delay is missing"));
  }
  ASSIGN_OR_RETURN(double audio_delay, TtsNumber(config, "audio_delay", 0, source));
  ASSIGN_OR_RETURN(double ahead, TtsNumber(config, "second_stream_ahead", 0, source));
  ASSIGN_OR_RETURN(double max_speakers, TtsNumber(config, "max_speakers", 5, source));
  if (config.tts_config.value("multistream", false)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": tts_config.multistream models are not supported (no released model uses it)"));
  }
  if (audio_delay < 0 || ahead < 0 || max_speakers < 1) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": tts_config values out of range"));
  }
  const int64_t n_q = options.n_q > 0 ? options.n_q : config.lm.dep_q;
  if (config.lm.dep_q == 0) return absl::InvalidArgumentError(absl::StrCat(source, ": the model has no depformer"));
  if (n_q > config.lm.dep_q || n_q > config.lm.n_q) {
    return absl::InvalidArgumentError(absl::StrCat("--n-q ", n_q, ": the model generates at most ",
                                                   config.lm.dep_q, " codebooks"));
  }
  RETURN_IF_ERROR(sh.mimi->SetNumCodebooks(n_q));

  TtsModelInfo& info = sh.info;
  info.model_dir = model_dir;
  info.sample_rate = static_cast<int>(sh.mimi->sample_rate());
  info.frame_size = static_cast<int>(sh.mimi->frame_size());
  info.frame_rate = sh.mimi->frame_rate();
  info.delay_steps = static_cast<int>(audio_delay * info.frame_rate);
  info.max_delay = static_cast<int>(config.lm.max_delay());
  info.second_stream_ahead = static_cast<int>(ahead);
  info.num_codebooks = static_cast<int>(n_q);
  info.text_card = static_cast<int>(config.lm.text_card);
  const auto& conditioners = config.lm.conditioners;
  auto speaker = conditioners.find("speaker_wavs");
  info.multi_speaker = speaker != conditioners.end();
  info.max_speakers = static_cast<int>(max_speakers);
  info.speaker_dim = info.multi_speaker ? static_cast<int>(speaker->second.dim) : 0;
  auto cfg = conditioners.find("cfg");
  info.cfg_distilled = cfg != conditioners.end() && !cfg->second.possible_values.empty();
  if (info.cfg_distilled) {
    for (const std::string& v : cfg->second.possible_values) info.cfg_values.push_back(std::stod(v));
  }
  if (info.multi_speaker && config.model_id.contains("sig") && config.model_id.contains("epoch")) {
    const auto& sig = config.model_id.at("sig");
    const auto& epoch = config.model_id.at("epoch");
    info.voice_suffix = absl::StrCat(".", sig.is_string() ? sig.get<std::string>() : sig.dump(), "@",
                                     epoch.is_string() ? epoch.get<std::string>() : epoch.dump(), ".safetensors");
  }
  for (const auto& [name, cc] : conditioners) {
    if (cc.type == ConditionerConfig::Type::kTensor && name != "speaker_wavs") {
      return absl::InvalidArgumentError(absl::StrCat(source, ": unsupported tensor conditioner '", name, "'"));
    }
  }
  if (!info.multi_speaker) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": this TTS model has no speaker_wavs conditioner; models conditioned by an audio prefix "
                "(e.g. kyutai/tts-0.75b-en-public) are not supported yet"));
  }
  info.device = device.str();
  info.dtype = DtypeName(dtype);
  info.lm_weights = DescribeQuantization(sh.lm->quantization());

  sh.config = config;
  sh.real_cfg = !info.cfg_distilled && options.cfg_coef != 1.0;
  sh.ids.card = config.lm.text_card + 1;
  sh.machine_options.ids = sh.ids;
  sh.machine_options.second_stream_ahead = info.second_stream_ahead;
  sh.machine_options.max_padding = options.max_padding;
  sh.machine_options.initial_padding = options.initial_padding;
  for (int64_t q = 0; q < n_q; ++q) sh.audio_delays.push_back(config.lm.delays[static_cast<size_t>(q + 1)]);

  LmGenOptions gen;
  const bool sampling = options.temp > 0;
  gen.text = lm::SamplingParams{sampling, options.temp, options.top_k_text};
  gen.audio = lm::SamplingParams{sampling, options.temp, options.top_k};
  gen.cfg_coef = sh.real_cfg ? options.cfg_coef : 1.0;
  gen.cfg_is_no_text = true;  // TTSModel.generate's default
  gen.seed = options.seed;
  gen.per_slot_generators = options.independent_slots;
  gen.dep_q = n_q;
  TtsSession::Shared* raw = shared.get();
  gen.on_text_logits = [raw](at::Tensor& logits) {
    if (!raw->step_bonus.defined()) return;
    at::Tensor pad = logits.select(-1, raw->ids.pad);
    pad.add_(raw->step_bonus.to(pad.device(), pad.scalar_type()).view(pad.sizes()));
  };
  gen.on_text = [raw](at::Tensor& text) {
    at::Tensor cpu = text.to(at::kCPU).contiguous();
    std::vector<int64_t> fed(cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel());
    {
      std::lock_guard<std::mutex> lock(raw->slots->mu());
      for (int b = 0; b < raw->batch; ++b) {
        auto& s = raw->slots->at(b);
        if (!raw->step_exec[b] || !s.in_use || s.generation != raw->step_generation[b]) continue;
        tts::StateMachine::Output out = s.machine->Process(raw->step_index[b], fed[b]);
        fed[b] = out.fed;
        s.fed.push_back(out.fed);
        if (out.word.has_value()) raw->OnWord(s, *out.word);
      }
    }
    text.copy_(at::tensor(fed, at::kLong).to(text.device()));
  };
  gen.on_audio = [raw](at::Tensor& audio) {
    const int64_t B = raw->batch, Q = static_cast<int64_t>(raw->audio_delays.size());
    std::vector<uint8_t> forced(static_cast<size_t>(B * Q), 0);
    bool any = false;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t q = 0; q < Q; ++q) {
        if (raw->step_index[b] < raw->audio_delays[q] + raw->info.delay_steps) {
          forced[b * Q + q] = 1;
          any = true;
        }
      }
    }
    if (!any) return;
    at::Tensor mask = at::from_blob(forced.data(), {B, Q}, at::kByte).to(at::kBool).to(audio.device());
    audio.masked_fill_(mask.view(audio.sizes()), raw->ids.zero);
  };
  const int64_t rows = sh.real_cfg ? 2 * sh.batch : sh.batch;
  ASSIGN_OR_RETURN(LmFusedConditions null_conditions, NullConditions(ConditionContext{sh.lm.get(), sh.info.max_speakers, sh.voice_frames, sh.real_cfg, sh.options.cfg_coef, sh.device}, rows));
  ASSIGN_OR_RETURN(sh.gen, LmGen::Create(sh.lm, sh.batch, gen, null_conditions));
  sh.mimi_state = sh.mimi->NewState(sh.batch);
  sh.slots = std::make_unique<SlotTable<TtsSession::Shared::Slot>>(sh.batch, "synthesis");
  sh.step_exec.assign(sh.batch, 0);
  sh.step_generation.assign(sh.batch, 0);
  sh.step_index.assign(sh.batch, 0);
  return std::unique_ptr<TtsEngine>(new TtsEngine(std::move(shared)));
}

absl::StatusOr<std::unique_ptr<TtsSession>> TtsEngine::OpenSession(const TtsSessionOptions& options) {
  auto& sh = *shared_;
  const TtsModelInfo& info = sh.info;
  if (options.padding_between < 0) return absl::InvalidArgumentError("padding between words must be >= 0");
  if (options.temp.has_value() && (*options.temp < 0 || !std::isfinite(*options.temp))) {
    return absl::InvalidArgumentError("temperature must be >= 0");
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
      for (double v : info.cfg_values) values.push_back(CfgValue(v));
      return absl::InvalidArgumentError(absl::StrCat("cfg coefficient ", coef, " is not one this model was distilled for (",
                                                     absl::StrJoin(values, ", "), ")"));
    }
  }
  std::vector<at::Tensor> voices;
  for (const std::string& path : options.voices) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat("voice file ", path, " does not exist"));
    ASSIGN_OR_RETURN(at::Tensor v, LoadVoice(path, info.speaker_dim, sh.voice_frames));
    voices.push_back(std::move(v));
  }
  LmFusedConditions conditions;
  RETURN_IF_ERROR(GuardTorch("tts session conditions", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(conditions, SlotConditions(ConditionContext{sh.lm.get(), sh.info.max_speakers, sh.voice_frames, sh.real_cfg, sh.options.cfg_coef, sh.device}, options, voices));
    return absl::OkStatus();
  }));

  ASSIGN_OR_RETURN(SlotTicket t, sh.slots->Acquire([&](TtsSession::Shared::Slot& s) {
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
    at::Tensor exec_mask = at::from_blob(exec.data(), {B}, byte).to(at::kBool).to(sh.device);
    RETURN_IF_ERROR(sh.gen->SetExecMask(exec_mask));
    if (active == 0) return absl::OkStatus();
    sh.step_bonus = any_bonus ? at::from_blob(bonus.data(), {B}, at::kFloat).clone() : at::Tensor();
    const int64_t inputs = sh.gen->num_input_streams();
    at::Tensor input = at::full({B, inputs}, sh.ids.zero, at::TensorOptions().dtype(at::kLong).device(sh.device));
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
      replace = at::full({B, Q}, sh.ids.zero, at::TensorOptions().dtype(at::kLong).device(sh.device));
    }
    ASSIGN_OR_RETURN(LmStepResult result, sh.gen->Step(input, replace));
    out_cpu = result.tokens.to(at::kCPU).contiguous();
    if (any_decode) {
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
    std::lock_guard<std::mutex> lock(table.mu());
    for (int b = 0; b < B; ++b) {
      auto& s = table.at(b);
      if (exec[b] && s.in_use && s.generation == sh.step_generation[b] && !s.ended) sh.Finish(s);
    }
    table.NotifyEvents();
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
      s.codes.insert(s.codes.end(), tokens + b * width + 1, tokens + b * width + 1 + Q);
      TtsEvent e;
      e.kind = TtsEvent::Kind::kAudio;
      e.step = s.step;
      const float* p = pcm_cpu.data_ptr<float>() + static_cast<int64_t>(b) * F;
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

const TtsModelInfo& TtsEngine::info() const { return shared_->info; }
int TtsEngine::batch_size() const { return shared_->batch; }
int TtsEngine::free_slots() const { return shared_->slots->free_slots(); }
int64_t TtsEngine::steps_run() const { return shared_->slots->steps_run(); }
double TtsEngine::step_seconds() const { return shared_->slots->step_seconds(); }

}  // namespace monologue
