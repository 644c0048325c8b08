// libtorch implementation of dialogue_engine.h.
#include "dialogue/dialogue_engine.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/model_config.h"
#include "core/lm/lm_gen.h"
#include "core/lm/lm_model.h"
#include "core/mimi/mimi_loader.h"
#include "core/mimi/mimi_model.h"
#include "core/session/audio_inbox.h"
#include "core/session/slot_table.h"
#include "core/text/text_tokenizer.h"
#include "core/util/device_dtype.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "dialogue/dialogue_engine_builder.h"

namespace monologue {

namespace fs = std::filesystem;

namespace {
// The seed when none is given (any fixed value: runs are reproducible by default).
constexpr uint64_t kDefaultSeed = 4242;  // what the reference's run_inference passes to seed_all
}  // namespace

struct DialogueSession::EngineState {
  // Immutable after Load.
  DialogueModelInfo info;
  std::shared_ptr<const TextTokenizer> tokenizer;  // null: no kText events
  std::unique_ptr<MimiModel> mimi;
  std::shared_ptr<const LmModel> lm;
  c10::Device device = c10::Device(c10::kCPU);
  int batch = 0;
  int64_t num_codebooks = 0;
  int64_t dep_q = 0;
  bool independent_slots = true;
  bool compact = true;  // compact_steps (with independent_slots)

  // Model state: only Step() touches it (under step_mu).
  std::mutex step_mu;
  std::unique_ptr<LmGen> gen;
  MimiStreamState mimi_state;

  struct Slot : SlotBase<DialogueEvent> {
    uint64_t seed = 0;
    std::optional<lm::SamplingParams> text_sampling, audio_sampling;  // this session's own (independent slots)
    bool warmed = false;  // the first (duplicated-frame) step is done
    AudioInbox audio;
    int64_t frames = 0;
  };
  std::unique_ptr<SlotTable<Slot>> slots;  // sized in Finish
  // Time spent in each part of the steps (under the slot table's lock).
  double encode_seconds = 0, lm_seconds = 0, decode_seconds = 0;

  void StartStream(Slot& slot) {
    slot.warmed = false;
    slot.audio.Restart();
    slot.frames = 0;
  }

  // Under mu: a closed stream with no complete frame left ends (the padding to the input length, then kEnd).
  void MaybeFinish(Slot& slot) {
    if (!slot.in_use || !slot.closed || slot.ended || !slot.warmed || slot.in_step) return;
    if (slot.audio.available() >= static_cast<size_t>(info.frame_size)) return;
    const int64_t tail = slot.audio.pushed() - slot.frames * info.frame_size;
    if (tail > 0) {
      DialogueEvent pad;
      pad.kind = DialogueEvent::Kind::kAudio;
      pad.frame = slot.frames;
      pad.time_s = static_cast<double>(slot.frames) / info.frame_rate;
      pad.audio.assign(static_cast<size_t>(tail), 0.0f);
      slot.events.push_back(std::move(pad));
    }
    DialogueEvent end;
    end.kind = DialogueEvent::Kind::kEnd;
    end.frame = slot.frames;
    end.time_s = static_cast<double>(slot.audio.pushed()) / info.sample_rate;
    slot.events.push_back(std::move(end));
    slot.ended = true;
  }
};

namespace {

absl::Status CheckMoshi(const ModelConfig& config, const std::string& model_dir) {
  if (config.model_type != ModelType::kMoshi || config.lm.dep_q <= 0) {
    const char* what = config.model_type == ModelType::kStt
                           ? " (a speech-to-text model: use `monologue transcribe`)"
                       : config.model_type == ModelType::kTts ? " (a text-to-speech model)"
                                                              : "";
    return absl::InvalidArgumentError(absl::StrCat(
        "model directory ", model_dir, " holds a '", ModelTypeName(config.model_type), "' model", what,
        "; dialogue needs a full-duplex Moshi model (config.json model_type \"moshi\" with dep_q > 0, or the "
        "legacy layout, e.g. kyutai/moshiko-pytorch-bf16, kyutai/moshika-pytorch-bf16, "
        "kyutai/moshika-rl-seamless)"));
  }
  // The checkpoint's sampling settings, before any weight is read.
  const std::string source = config.legacy ? model_dir : model_dir + "/config.json";
  return LmGenOptionsFromConfig(config.lm_gen_config, source).status();
}

}  // namespace

// ---- DialogueSession --------------------------------------------------------------------------------------

absl::Status DialogueEngine::CheckConfig(const std::string& model_dir) {
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  return CheckMoshi(config, model_dir);
}

DialogueSession::DialogueSession(std::shared_ptr<EngineState> shared, int slot, uint64_t generation)
    : shared_(std::move(shared)), slot_(slot), generation_(generation) {}

DialogueSession::~DialogueSession() {
  shared_->slots->Release({slot_, generation_}, [](EngineState::Slot& s) { s.audio.Release(); });
}

absl::Status DialogueSession::PushAudio(std::span<const float> samples) {
  auto& table = *shared_->slots;
  std::lock_guard<std::mutex> lock(table.mu());
  auto& s = table.at(slot_);
  if (s.closed) return absl::FailedPreconditionError("dialogue session: PushAudio after Close");
  absl::Status st = s.audio.Push(samples);
  if (st.ok()) table.NotifyWorkLocked();
  return st;
}

absl::Status DialogueSession::Close() {
  auto& table = *shared_->slots;
  std::lock_guard<std::mutex> lock(table.mu());
  auto& s = table.at(slot_);
  if (s.closed) return absl::OkStatus();
  s.closed = true;
  shared_->MaybeFinish(s);
  table.NotifyWorkLocked();
  table.NotifyEvents();
  return absl::OkStatus();
}

absl::Status DialogueSession::Reset() {
  generation_ =
      shared_->slots->Restart({slot_, generation_}, [&](EngineState::Slot& s) { shared_->StartStream(s); })
          .generation;
  return absl::OkStatus();
}

std::vector<DialogueEvent> DialogueSession::PollEvents() { return shared_->slots->TakeEvents(slot_); }

std::vector<DialogueEvent> DialogueSession::WaitEvents(std::chrono::milliseconds timeout) {
  return shared_->slots->WaitEvents(slot_, timeout);
}

bool DialogueSession::finished() const {
  return shared_->slots->With(slot_, [](const EngineState::Slot& s) { return s.ended; });
}

int64_t DialogueSession::samples_pushed() const {
  return shared_->slots->With(slot_, [](const EngineState::Slot& s) { return s.audio.pushed(); });
}

int64_t DialogueSession::frames_done() const {
  return shared_->slots->With(slot_, [](const EngineState::Slot& s) { return s.frames; });
}

// ---- DialogueEngine ---------------------------------------------------------------------------------------

DialogueEngine::DialogueEngine(std::shared_ptr<DialogueSession::EngineState> shared)
    : shared_(std::move(shared)) {}
DialogueEngine::~DialogueEngine() = default;

absl::StatusOr<std::unique_ptr<DialogueEngine>> DialogueEngine::Load(const std::string& model_dir,
                                                                     const DialogueEngineOptions& options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch size must be >= 1 (got ", options.batch_size, ")"));
  }
  if (options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("threads must be >= 0 (got ", options.threads, ")"));
  }
  if (options.threads > 0) at::set_num_threads(options.threads);
  ASSIGN_OR_RETURN(c10::Device device, ParseDevice(options.device));
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  ASSIGN_OR_RETURN(at::ScalarType dtype, ParseDtype(options.dtype, device, config.lm.int8_checkpoint));
  RETURN_IF_ERROR(CheckMoshi(config, model_dir));
  ASSIGN_OR_RETURN(ModelFiles files, ResolveModelFiles(model_dir, config, options.lora_path));

  auto shared = std::make_shared<DialogueSession::EngineState>();
  shared->device = device;
  shared->batch = options.batch_size;
#ifdef MONOLOGUE_HAVE_SENTENCEPIECE
  ASSIGN_OR_RETURN(shared->tokenizer, TextTokenizer::LoadForModel(files.tokenizer.string(), config.lm.text_card));
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
  ASSIGN_OR_RETURN(shared->lm, LmModel::LoadFile(config.lm, files.lm.string(), lm_options));
  ASSIGN_OR_RETURN(MimiModel mimi, LoadMimiFile(files.mimi.string(), config.mimi, device));
  shared->mimi = std::make_unique<MimiModel>(std::move(mimi));
  shared->info.lora = !files.lora.empty();
  return DialogueEngineBuilder::Finish(std::move(shared), config, options, model_dir, DtypeName(dtype));
}

absl::StatusOr<std::unique_ptr<DialogueEngine>> DialogueEngineBuilder::Finish(
    std::shared_ptr<DialogueSession::EngineState> shared, const ModelConfig& config,
    const DialogueEngineOptions& options, const std::string& model_dir, const std::string& dtype_name) {
  const std::string source = config.legacy ? model_dir : model_dir + "/config.json";
  shared->num_codebooks = config.mimi_codebooks();
  RETURN_IF_ERROR(shared->mimi->SetNumCodebooks(shared->num_codebooks));
  shared->dep_q = config.lm.dep_q;
  if (shared->num_codebooks < config.lm.n_q - config.lm.dep_q || shared->num_codebooks < shared->dep_q) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the LM reads ", config.lm.n_q - config.lm.dep_q,
                                                   " and writes ", shared->dep_q,
                                                   " audio streams but Mimi has ", shared->num_codebooks));
  }
  if (config.lm.card > shared->mimi->cardinality()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the LM's card ", config.lm.card,
                                                   " exceeds Mimi's ", shared->mimi->cardinality(), " bins"));
  }
  // The user's audio is encoded by Mimi and read by the LM's audio embeddings (card rows plus the initial
  // token): a codec with more bins than the card is another model's, and its codes would fail mid-stream.
  if (shared->mimi->cardinality() > config.lm.card) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": Mimi's codes take ", shared->mimi->cardinality(),
                     " values but the LM's audio embeddings hold ", config.lm.card,
                     " (card): the model needs the Mimi it was trained with"));
  }

  ASSIGN_OR_RETURN(LmGenOptions gen_options, LmGenOptionsFromConfig(config.lm_gen_config, source));
  const DialogueSampling& o = options.sampling;
  if (o.temp.has_value()) gen_options.audio.temperature = *o.temp;
  if (o.temp_text.has_value()) gen_options.text.temperature = *o.temp_text;
  if (o.top_k.has_value()) gen_options.audio.top_k = *o.top_k;
  if (o.top_k_text.has_value()) gen_options.text.top_k = *o.top_k_text;
  for (double t : {gen_options.audio.temperature, gen_options.text.temperature}) {
    if (!(t >= 0)) return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0 (got ", t, ")"));
  }
  if (o.top_k.has_value() && *o.top_k < 1) {
    return absl::InvalidArgumentError(absl::StrCat("top-k must be >= 1 (got ", *o.top_k, ")"));
  }
  if (o.top_k_text.has_value() && *o.top_k_text < 1) {
    return absl::InvalidArgumentError(absl::StrCat("text top-k must be >= 1 (got ", *o.top_k_text, ")"));
  }
  gen_options.seed = o.seed.value_or(kDefaultSeed);
  gen_options.per_slot_generators = options.independent_slots;
  shared->independent_slots = options.independent_slots;
  shared->compact = options.compact_steps && options.independent_slots;
  ASSIGN_OR_RETURN(shared->gen, LmGen::Create(shared->lm, options.batch_size, gen_options));
  shared->mimi_state = shared->mimi->NewState(options.batch_size);

  DialogueModelInfo& info = shared->info;
  info.model_dir = model_dir;
  info.sample_rate = static_cast<int>(shared->mimi->sample_rate());
  info.frame_size = static_cast<int>(shared->mimi->frame_size());
  info.frame_rate = shared->mimi->frame_rate();
  info.dep_q = static_cast<int>(shared->dep_q);
  info.num_codebooks = static_cast<int>(shared->num_codebooks);
  info.text_card = static_cast<int>(config.lm.text_card);
  const bool sampling = gen_options.audio.use_sampling;
  info.temp = sampling ? gen_options.audio.temperature : 0.0;
  info.temp_text = gen_options.text.use_sampling ? gen_options.text.temperature : 0.0;
  info.top_k = static_cast<int>(gen_options.audio.top_k);
  info.top_k_text = static_cast<int>(gen_options.text.top_k);
  info.seed = *gen_options.seed;
  info.device = shared->device.str();
  info.dtype = dtype_name;
  info.lm_weights = DescribeQuantization(shared->lm->quantization());
  shared->slots =
      std::make_unique<SlotTable<DialogueSession::EngineState::Slot>>(options.batch_size, "dialogue");
  return std::unique_ptr<DialogueEngine>(new DialogueEngine(std::move(shared)));
}

absl::StatusOr<std::unique_ptr<DialogueEngine>> DialogueEngineBuilder::Create(
    const ModelConfig& config, std::shared_ptr<const LmModel> lm, const MimiModel& mimi,
    std::shared_ptr<const TextTokenizer> tokenizer, const DialogueEngineOptions& options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch size must be >= 1 (got ", options.batch_size, ")"));
  }
  RETURN_IF_ERROR(CheckMoshi(config, "(in memory)"));
  auto shared = std::make_shared<DialogueSession::EngineState>();
  shared->device = mimi.device();
  shared->batch = options.batch_size;
  shared->tokenizer = std::move(tokenizer);
  shared->lm = std::move(lm);
  shared->mimi = std::make_unique<MimiModel>(mimi);
  const at::ScalarType dtype = shared->lm->weights_dtype();
  return Finish(std::move(shared), config, options, "(in memory)", DtypeName(dtype));
}

absl::StatusOr<std::unique_ptr<DialogueSession>> DialogueEngine::OpenSession(std::optional<uint64_t> seed) {
  return OpenSession(seed, DialogueSampling{});
}

absl::StatusOr<std::unique_ptr<DialogueSession>> DialogueEngine::OpenSession(std::optional<uint64_t> seed,
                                                                            const DialogueSampling& sampling) {
  const DialogueModelInfo& info = shared_->info;
  std::optional<lm::SamplingParams> text, audio;
  if (sampling.temp.has_value() || sampling.top_k.has_value() || sampling.temp_text.has_value() ||
      sampling.top_k_text.has_value()) {
    if (!shared_->independent_slots) {
      return absl::InvalidArgumentError("per-session sampling settings need independent slots");
    }
    const double temp = sampling.temp.value_or(info.temp), temp_text = sampling.temp_text.value_or(info.temp_text);
    const int top_k = sampling.top_k.value_or(info.top_k), top_k_text = sampling.top_k_text.value_or(info.top_k_text);
    if (!(temp >= 0) || !(temp_text >= 0) || !std::isfinite(temp) || !std::isfinite(temp_text)) {
      return absl::InvalidArgumentError("temperatures must be finite and >= 0");
    }
    if (top_k < 1 || top_k_text < 1) return absl::InvalidArgumentError("top-k must be >= 1");
    audio = lm::SamplingParams{temp > 0, temp, top_k};
    text = lm::SamplingParams{temp_text > 0, temp_text, top_k_text};
  }
  const uint64_t slot_seed = seed.value_or(info.seed);
  ASSIGN_OR_RETURN(SlotTicket t, shared_->slots->Acquire([&](DialogueSession::EngineState::Slot& s) {
    s.seed = slot_seed;
    s.text_sampling = text;
    s.audio_sampling = audio;
    shared_->StartStream(s);
  }));
  return std::unique_ptr<DialogueSession>(new DialogueSession(shared_, t.index, t.generation));
}

absl::StatusOr<int> DialogueEngine::Step() {
  auto& sh = *shared_;
  std::lock_guard<std::mutex> step_lock(sh.step_mu);
  auto& table = *sh.slots;
  const int B = sh.batch;
  const int F = sh.info.frame_size;
  std::vector<uint8_t> reset(B, 0), warm(B, 0), frame(B, 0);
  std::vector<uint64_t> generation(B, 0), seeds(B, 0);
  std::vector<std::optional<lm::SamplingParams>> text_sampling(B), audio_sampling(B);
  std::vector<float> pcm(static_cast<size_t>(B) * F, 0.0f);
  int active = 0;
  bool any_reset = false, any_frame = false;
  {
    std::lock_guard<std::mutex> lock(table.mu());
    table.ClearWorkLocked();
    for (int b = 0; b < B; ++b) {
      auto& s = table.at(b);
      if (!s.in_use) continue;
      sh.MaybeFinish(s);
      if (s.ended) continue;
      if (s.needs_reset) {
        reset[b] = 1;
        any_reset = true;
        s.needs_reset = false;
        seeds[b] = s.seed;
        text_sampling[b] = s.text_sampling;
        audio_sampling[b] = s.audio_sampling;
      }
      if (!s.warmed) {
        warm[b] = 1;
      } else if (s.audio.available() >= static_cast<size_t>(F)) {
        s.audio.Take(static_cast<size_t>(F), pcm.data() + static_cast<ptrdiff_t>(b) * F);
        frame[b] = 1;
        any_frame = true;
      } else {
        continue;
      }
      generation[b] = s.generation;
      s.in_step = true;
      ++active;
    }
  }
  if (active == 0 && !any_reset) {
    table.NotifyEvents();
    return 0;
  }

  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  double t_encode = 0, t_lm = 0, t_decode = 0;
  at::Tensor text_cpu, codes_cpu, pcm_out_cpu;
  // Rows of the step's outputs: slot b's LM row and Mimi row (the slot itself unless compacted).
  std::vector<int64_t> row_of(static_cast<size_t>(B)), frame_row_of(static_cast<size_t>(B));
  std::vector<int64_t> exec_slots, frame_slots, frame_rows;  // frame_rows: LM rows of frame_slots
  for (int b = 0; b < B; ++b) {
    row_of[static_cast<size_t>(b)] = sh.compact ? static_cast<int64_t>(exec_slots.size()) : b;
    frame_row_of[static_cast<size_t>(b)] = sh.compact ? static_cast<int64_t>(frame_slots.size()) : b;
    if (frame[b]) {
      frame_slots.push_back(b);
      frame_rows.push_back(static_cast<int64_t>(exec_slots.size()));
    }
    if (frame[b] || warm[b]) exec_slots.push_back(b);
  }
  absl::Status st = GuardTorch("dialogue step", [&]() -> absl::Status {
    const auto byte_opts = at::TensorOptions().dtype(at::kByte);
    if (any_reset) {
      at::Tensor mask = at::from_blob(reset.data(), {B}, byte_opts).to(at::kBool).to(sh.device);
      RETURN_IF_ERROR(sh.mimi->Reset(sh.mimi_state, mask));
      RETURN_IF_ERROR(sh.gen->Reset(mask));
      if (sh.independent_slots) {
        for (int b = 0; b < B; ++b) {
          if (!reset[b]) continue;
          RETURN_IF_ERROR(sh.gen->SetSlotSeed(b, seeds[b]));
          RETURN_IF_ERROR(sh.gen->SetSlotSampling(b, text_sampling[b], audio_sampling[b]));
        }
      }
    }
    if (active == 0) {
      if (sh.compact) return absl::OkStatus();
      return sh.gen->SetExecMask(at::zeros({B}, at::TensorOptions().dtype(at::kBool)).to(sh.device));
    }
    if (sh.compact) {
      // Only the slots that advance: Mimi encodes the frame slots, the LM steps them and the warm-ups, Mimi
      // decodes the frame slots.
      const int64_t n = static_cast<int64_t>(exec_slots.size());
      const auto long_opts = at::TensorOptions().dtype(at::kLong).device(sh.device);
      auto t = Clock::now();
      at::Tensor codes = at::zeros({n, sh.num_codebooks, 1}, long_opts);
      at::Tensor rows = at::tensor(frame_rows, at::kLong).to(sh.device);
      const bool all_frames = frame_slots.size() == exec_slots.size();
      if (any_frame) {
        at::Tensor x = at::from_blob(pcm.data(), {B, 1, F}, at::kFloat)
                           .index_select(0, at::tensor(frame_slots, at::kLong))
                           .to(sh.device);
        ASSIGN_OR_RETURN(at::Tensor frame_codes, sh.mimi->EncodeStepSlots(sh.mimi_state, frame_slots, x));
        if (all_frames) {
          codes = frame_codes;
        } else {
          codes.index_copy_(0, rows, frame_codes);
        }
      }
      auto t1 = Clock::now();
      t_encode = std::chrono::duration<double>(t1 - t).count();
      ASSIGN_OR_RETURN(LmStepResult result, sh.gen->StepSlots(exec_slots, codes));
      text_cpu = result.tokens.select(1, 0).to(at::kCPU).contiguous();
      auto t2 = Clock::now();
      t_lm = std::chrono::duration<double>(t2 - t1).count();
      if (any_frame) {
        at::Tensor tokens = all_frames ? result.tokens : result.tokens.index_select(0, rows);
        at::Tensor audio = tokens.slice(1, 1, 1 + sh.dep_q).clamp_min(0).unsqueeze(-1);  // [n_frame, dep_q, 1]
        ASSIGN_OR_RETURN(at::Tensor out, sh.mimi->DecodeStepSlots(sh.mimi_state, frame_slots, audio));
        codes_cpu = tokens.slice(1, 1, 1 + sh.dep_q).to(at::kCPU).contiguous();
        pcm_out_cpu = out.to(at::kFloat).to(at::kCPU).contiguous();
        t_decode = std::chrono::duration<double>(Clock::now() - t2).count();
      }
      return absl::OkStatus();
    }
    at::Tensor frame_mask = at::from_blob(frame.data(), {B}, byte_opts).to(at::kBool).to(sh.device);
    auto t = Clock::now();
    at::Tensor codes;
    if (any_frame) {
      at::Tensor x = at::from_blob(pcm.data(), {B, 1, F}, at::kFloat)
                         .to(sh.device, /*non_blocking=*/false, /*copy=*/true);
      codes = sh.mimi->EncodeStepUnchecked(sh.mimi_state, x, frame_mask);
    } else {
      codes = at::zeros({B, sh.num_codebooks, 1}, at::TensorOptions().dtype(at::kLong).device(sh.device));
    }
    auto t1 = Clock::now();
    t_encode = std::chrono::duration<double>(t1 - t).count();
    std::vector<uint8_t> exec(B);
    for (int b = 0; b < B; ++b) exec[b] = frame[b] | warm[b];
    at::Tensor exec_mask = at::from_blob(exec.data(), {B}, byte_opts).to(at::kBool).to(sh.device);
    RETURN_IF_ERROR(sh.gen->SetExecMask(exec_mask));
    ASSIGN_OR_RETURN(LmStepResult result, sh.gen->Step(codes));
    // The output frame, delays undone: the text sampled one step earlier with this step's audio.
    text_cpu = result.tokens.select(1, 0).to(at::kCPU).contiguous();
    auto t2 = Clock::now();
    t_lm = std::chrono::duration<double>(t2 - t1).count();
    if (any_frame) {
      // Moshi's codebooks of this step, undelayed (-2 rows: slots that did not run a frame; masked).
      at::Tensor audio = result.tokens.slice(1, 1, 1 + sh.dep_q).clamp_min(0).unsqueeze(-1);  // [B, dep_q, 1]
      at::Tensor out = sh.mimi->DecodeStepUnchecked(sh.mimi_state, audio, frame_mask);        // [B, 1, F]
      codes_cpu = result.tokens.slice(1, 1, 1 + sh.dep_q).to(at::kCPU).contiguous();
      pcm_out_cpu = out.to(at::kFloat).to(at::kCPU).contiguous();
      t_decode = std::chrono::duration<double>(Clock::now() - t2).count();
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    table.AbandonStep(generation, [&](int b) { return warm[b] || frame[b]; }, [&](auto& s) { sh.MaybeFinish(s); });
    return st;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (active == 0) return 0;

  std::lock_guard<std::mutex> lock(table.mu());
  table.RecordStepLocked(seconds);
  sh.encode_seconds += t_encode;
  sh.lm_seconds += t_lm;
  sh.decode_seconds += t_decode;
  const int64_t* text = text_cpu.data_ptr<int64_t>();
  for (int b = 0; b < B; ++b) {
    if (!warm[b] && !frame[b]) continue;
    auto& s = table.at(b);
    if (!s.in_use || s.generation != generation[b]) continue;  // left or reset meanwhile
    s.in_step = false;
    if (warm[b]) {
      s.warmed = true;  // the duplicated first frame's step: its output is not part of the stream
    } else {
      const int token = static_cast<int>(text[row_of[static_cast<size_t>(b)]]);
      const int64_t frame_row = frame_row_of[static_cast<size_t>(b)];
      const int64_t f = s.frames;
      DialogueEvent e;
      e.kind = DialogueEvent::Kind::kAudio;
      e.frame = f;
      e.time_s = static_cast<double>(f) / sh.info.frame_rate;
      const float* p = pcm_out_cpu.data_ptr<float>() + frame_row * F;
      e.audio.assign(p, p + F);
      const int64_t* c = codes_cpu.data_ptr<int64_t>() + frame_row * sh.dep_q;
      e.codes.assign(c, c + sh.dep_q);
      e.token = token;
      s.events.push_back(std::move(e));
#ifdef MONOLOGUE_HAVE_SENTENCEPIECE
      if (!IsSilentTextId(token) && sh.tokenizer != nullptr) {
        auto piece = sh.tokenizer->PrintablePiece(token);
        DialogueEvent te;
        te.kind = DialogueEvent::Kind::kText;
        te.frame = f;
        te.time_s = static_cast<double>(f) / sh.info.frame_rate;
        te.token = token;
        te.text = piece.ok() ? *piece : std::string();
        s.events.push_back(std::move(te));
      }
#endif
      s.frames++;
    }
    sh.MaybeFinish(s);
  }
  table.NotifyEvents();
  return active;
}

bool DialogueEngine::WaitForWork(std::chrono::milliseconds timeout) {
  return shared_->slots->WaitForWork(timeout);
}

void DialogueEngine::Wake() { shared_->slots->NotifyWork(); }

absl::Status DialogueEngine::RunUntilIdle() {
  while (true) {
    ASSIGN_OR_RETURN(int n, Step());
    if (n == 0) return absl::OkStatus();
  }
}

const DialogueModelInfo& DialogueEngine::info() const { return shared_->info; }
int DialogueEngine::batch_size() const { return shared_->batch; }
int DialogueEngine::free_slots() const { return shared_->slots->free_slots(); }
int64_t DialogueEngine::steps_run() const { return shared_->slots->steps_run(); }
double DialogueEngine::step_seconds() const { return shared_->slots->step_seconds(); }
double DialogueEngine::encode_seconds() const {
  std::lock_guard<std::mutex> lock(shared_->slots->mu());
  return shared_->encode_seconds;
}
double DialogueEngine::lm_seconds() const {
  std::lock_guard<std::mutex> lock(shared_->slots->mu());
  return shared_->lm_seconds;
}
double DialogueEngine::decode_seconds() const {
  std::lock_guard<std::mutex> lock(shared_->slots->mu());
  return shared_->decode_seconds;
}

}  // namespace monologue
