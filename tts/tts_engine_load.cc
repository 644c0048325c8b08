// Loading a TTS engine (tts_engine.h's Load, tts_engine_builder.h's Create): options and config checked, the
// model info derived from config.json's tts_config and conditioners, the LM's sampling and the hooks through
// which the per-slot state machine drives the text stream and the audio delay forces codebooks.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/config/model_config.h"
#include "core/lm/lm_gen.h"
#include "core/lm/lm_model.h"
#include "core/mimi/mimi_loader.h"
#include "core/mimi/mimi_model.h"
#include "core/text/text_tokenizer.h"
#include "core/util/device_dtype.h"
#include "core/util/status_macros.h"
#include "tts/tts_conditions.h"
#include "tts/tts_engine.h"
#include "tts/tts_engine_builder.h"
#include "tts/tts_engine_state.h"
#include "tts/tts_settings.h"

namespace monologue {

namespace fs = std::filesystem;

namespace {

// The model directory's config, when it is a TTS model whose synthesis settings pass their checks.
absl::StatusOr<ModelConfig> LoadTtsConfig(const std::string& model_dir) {
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  if (config.model_type != ModelType::kTts) {
    return absl::InvalidArgumentError(
        absl::StrCat("model directory ", model_dir, " holds a '", ModelTypeName(config.model_type),
                     "' model; synthesis needs a text-to-speech model (config.json model_type \"tts\", e.g. "
                     "kyutai/tts-1.6b-en_fr)"));
  }
  RETURN_IF_ERROR(tts::ReadTtsSettings(config, (fs::path(model_dir) / "config.json").string()).status());
  return config;
}

}  // namespace

absl::Status TtsEngine::CheckConfig(const std::string& model_dir) {
  return LoadTtsConfig(model_dir).status();
}

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
  // Settings checked before any weight is read: a bad config fails in milliseconds, not after gigabytes.
  ASSIGN_OR_RETURN(ModelConfig config, LoadTtsConfig(model_dir));
  ASSIGN_OR_RETURN(at::ScalarType dtype, ParseDtype(options.dtype, device, config.lm.int8_checkpoint));
  ASSIGN_OR_RETURN(ModelFiles files, ResolveModelFiles(model_dir, config, options.lora_path));

  auto shared = std::make_shared<TtsSession::EngineState>();
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
  auto shared = std::make_shared<TtsSession::EngineState>();
  shared->device = mimi.device();
  shared->batch = options.batch_size;
  shared->options = options;
  shared->tokenizer = std::move(tokenizer);
  shared->lm = std::move(lm);
  shared->mimi = std::make_unique<MimiModel>(mimi);
  return Finish(std::move(shared), config, "(in memory)");
}

absl::StatusOr<std::unique_ptr<TtsEngine>> TtsEngineBuilder::Finish(
    std::shared_ptr<TtsSession::EngineState> shared, const ModelConfig& config,
    const std::string& model_dir) {
  auto& sh = *shared;
  const TtsEngineOptions& options = sh.options;
  const std::string source = model_dir + "/config.json";
  const c10::Device device = sh.device;
  const at::ScalarType dtype = sh.lm->weights_dtype();
  ASSIGN_OR_RETURN(const tts::TtsSettings settings, tts::ReadTtsSettings(config, source));
  const int64_t n_q = options.n_q > 0 ? options.n_q : config.lm.dep_q;
  if (config.lm.dep_q == 0) return absl::InvalidArgumentError(absl::StrCat(source, ": the model has no depformer"));
  if (n_q > config.lm.dep_q || n_q > config.lm.n_q) {
    return absl::InvalidArgumentError(absl::StrCat("--n-q ", n_q, ": the model generates at most ",
                                                   config.lm.dep_q, " codebooks"));
  }
  RETURN_IF_ERROR(sh.mimi->SetNumCodebooks(n_q));
  // The LM's audio tokens are Mimi's codes: an LM whose card exceeds Mimi's bins pairs with another codec.
  if (config.lm.card > sh.mimi->cardinality()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the LM's card ", config.lm.card,
                                                   " exceeds Mimi's ", sh.mimi->cardinality(), " bins"));
  }

  TtsModelInfo& info = sh.info;
  info.model_dir = model_dir;
  info.sample_rate = static_cast<int>(sh.mimi->sample_rate());
  info.frame_size = static_cast<int>(sh.mimi->frame_size());
  info.frame_rate = sh.mimi->frame_rate();
  info.delay_steps = static_cast<int>(settings.audio_delay_seconds * info.frame_rate);
  info.max_delay = static_cast<int>(config.lm.max_delay());
  info.second_stream_ahead = settings.second_stream_ahead;
  info.num_codebooks = static_cast<int>(n_q);
  info.text_card = static_cast<int>(config.lm.text_card);
  info.multi_speaker = true;
  info.max_speakers = settings.max_speakers;
  info.speaker_dim = settings.speaker_dim;
  info.cfg_distilled = !settings.cfg_values.empty();
  info.cfg_values = settings.cfg_values;
  info.voice_suffix = settings.voice_suffix;
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
  TtsSession::EngineState* raw = shared.get();
  // The hooks see the rows LmGen computes: every slot (exec-mask step) or a compacted step's bucket;
  // LmGen::step_slots() names each row's slot (-1: a row that does not advance).
  gen.on_text_logits = [raw](at::Tensor& logits) {
    if (!raw->step_bonus.defined()) return;
    const std::vector<int64_t>& slots = raw->gen->step_slots();
    std::vector<float> bonus(slots.size(), 0.0f);
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i] >= 0) bonus[i] = raw->step_bonus.data_ptr<float>()[slots[i]];  // CPU [B]
    }
    at::Tensor pad = logits.select(-1, raw->ids.pad);
    pad.add_(at::tensor(bonus, at::kFloat).to(pad.device(), pad.scalar_type()).view(pad.sizes()));
  };
  gen.on_text = [raw](at::Tensor& text) {
    at::Tensor cpu = text.to(at::kCPU).contiguous();
    std::vector<int64_t> fed(cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel());
    const std::vector<int64_t>& slots = raw->gen->step_slots();
    {
      std::lock_guard<std::mutex> lock(raw->slots->mu());
      for (size_t i = 0; i < slots.size(); ++i) {
        const int64_t b = slots[i];
        if (b < 0) continue;
        auto& s = raw->slots->at(static_cast<int>(b));
        if (!raw->step_exec[b] || !s.in_use || s.generation != raw->step_generation[b]) continue;
        tts::StateMachine::Output out = s.machine->Process(raw->step_index[b], fed[i]);
        fed[i] = out.fed;
        s.fed.push_back(out.fed);
        if (out.word.has_value()) raw->OnWord(s, *out.word);
      }
    }
    text.copy_(at::tensor(fed, at::kLong).to(text.device()));
  };
  gen.on_audio = [raw](at::Tensor& audio) {
    const std::vector<int64_t>& slots = raw->gen->step_slots();
    const int64_t rows = static_cast<int64_t>(slots.size()), Q = static_cast<int64_t>(raw->audio_delays.size());
    std::vector<uint8_t> forced(static_cast<size_t>(rows * Q), 0);
    bool any = false;
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t b = slots[static_cast<size_t>(i)];
      if (b < 0) continue;  // nothing of this row is kept
      for (int64_t q = 0; q < Q; ++q) {
        if (raw->step_index[b] < raw->audio_delays[q] + raw->info.delay_steps) {
          forced[i * Q + q] = 1;
          any = true;
        }
      }
    }
    if (!any) return;
    at::Tensor mask = at::from_blob(forced.data(), {rows, Q}, at::kByte).to(at::kBool).to(audio.device());
    audio.masked_fill_(mask.view(audio.sizes()), raw->ids.zero);
  };
  const int64_t rows = sh.real_cfg ? 2 * sh.batch : sh.batch;
  ASSIGN_OR_RETURN(LmFusedConditions null_conditions, tts::NullConditions(sh.condition_context(), rows));
  ASSIGN_OR_RETURN(sh.gen, LmGen::Create(sh.lm, sh.batch, gen, null_conditions));
  sh.mimi_state = sh.mimi->NewState(sh.batch);
  sh.slots = std::make_unique<SlotTable<TtsSession::EngineState::Slot>>(sh.batch, "synthesis");
  sh.step_exec.assign(sh.batch, 0);
  sh.step_generation.assign(sh.batch, 0);
  sh.step_index.assign(sh.batch, 0);
  return std::unique_ptr<TtsEngine>(new TtsEngine(std::move(shared)));
}

}  // namespace monologue
