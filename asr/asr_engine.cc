// libtorch implementation of asr_engine.h.
#include "asr/asr_engine.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "asr/asr_engine_builder.h"
#include "core/config/hf_cache.h"
#include "core/config/model_config.h"
#include "core/hub/hub.h"
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

namespace monologue {

namespace fs = std::filesystem;

struct AsrSession::EngineState {
  // Immutable after Load.
  AsrModelInfo info;
  std::shared_ptr<const TextTokenizer> tokenizer;  // null: no text / word events (benchmarks)
  std::unique_ptr<MimiModel> mimi;
  std::shared_ptr<const LmModel> lm;
  c10::Device device = c10::Device(c10::kCPU);
  int batch = 0;
  bool compact = true;  // AsrEngineOptions::compact_steps
  int64_t num_codebooks = 0;
  WordAlignerOptions align;

  // Model state: only Step() touches it (under step_mu).
  std::mutex step_mu;
  std::unique_ptr<LmGen> gen;
  MimiStreamState mimi_state;

  struct Slot : SlotBase<AsrEvent> {
    bool warmed = false;  // the initial-token step is done
    AudioInbox audio;     // left padding + input + (after Close) right padding
    int64_t frames = 0;
    bool end_of_turn_reported = false;
    std::unique_ptr<WordAligner> aligner;
  };
  std::unique_ptr<SlotTable<Slot>> slots;  // sized in Finish

  // Under step_mu: the model part of a compacted step (defined below).
  absl::Status CompactStep(const std::vector<uint8_t>& frame, const std::vector<uint8_t>& warm,
                           std::vector<float>& pcm, at::Tensor& text_cpu, at::Tensor& vad_cpu,
                           std::vector<int64_t>& row_of);

  void StartStream(Slot& slot) {
    slot.warmed = false;
    slot.audio.Restart(static_cast<size_t>(info.pad_left_samples));
    slot.frames = 0;
    slot.end_of_turn_reported = false;
    slot.aligner = std::make_unique<WordAligner>(tokenizer.get(), align);
  }

  // Under mu: a closed stream with no complete frame left ends (last segment's words, then kEnd).
  void MaybeFinish(Slot& slot) {
    if (!slot.in_use || !slot.closed || slot.ended || !slot.warmed || slot.in_step) return;
    if (slot.audio.available() >= static_cast<size_t>(info.frame_size)) return;
    for (AsrWord& w : slot.aligner->Finish()) {
      AsrEvent e;
      e.kind = AsrEvent::Kind::kWord;
      e.step = slot.frames;
      e.word = std::move(w);
      slot.events.push_back(std::move(e));
    }
    AsrEvent end;
    end.kind = AsrEvent::Kind::kEnd;
    end.step = slot.frames;
    slot.events.push_back(std::move(end));
    slot.ended = true;
  }

  // Under mu: the outputs of one step for a slot that consumed a frame.
  void ConsumeToken(Slot& slot, int token, const float* vad) {
    const int64_t f = slot.frames;
    for (AsrWord& w : slot.aligner->Push(token)) {
      AsrEvent e;
      e.kind = AsrEvent::Kind::kWord;
      e.step = f;
      e.word = std::move(w);
      slot.events.push_back(std::move(e));
    }
    const int64_t frame_start = f * info.frame_size;
    const int64_t frame_end = frame_start + info.frame_size;
    const bool holds_input =
        frame_end > info.pad_left_samples && frame_start < info.pad_left_samples + slot.audio.pushed();
    const double time_s = static_cast<double>(frame_end - info.pad_left_samples) / info.sample_rate;
    if (vad != nullptr && holds_input) {
      AsrEvent e;
      e.kind = AsrEvent::Kind::kVad;
      e.step = f;
      e.time_s = time_s;
      e.vad.assign(vad, vad + info.num_vad_heads);
      slot.events.push_back(std::move(e));
      if (info.num_vad_heads > 2 && vad[2] > 0.5f && !slot.end_of_turn_reported) {
        AsrEvent eot;
        eot.kind = AsrEvent::Kind::kEndOfTurn;
        eot.step = f;
        eot.time_s = time_s;
        slot.events.push_back(std::move(eot));
        slot.end_of_turn_reported = true;
      }
    }
    if (!IsSilentTextId(token)) {
      slot.end_of_turn_reported = false;
    }
#ifdef MONOLOGUE_HAVE_SENTENCEPIECE
    if (!IsSilentTextId(token) && tokenizer != nullptr) {
      auto piece = tokenizer->PrintablePiece(token);
      AsrEvent e;
      e.kind = AsrEvent::Kind::kText;
      e.step = f;
      e.token = token;
      e.text = piece.ok() ? *piece : std::string();
      slot.events.push_back(std::move(e));
    }
#endif
    slot.frames++;
  }
};

namespace {

// A delay in seconds from stt_config: 0 when absent (run_inference's default), else a number from 0 to 60 s
// (the released models: 0.5 and 2.5 s delays, 0 and 1 s prefixes). Padding of that length is made for every
// stream, so a value far outside would fail mid-transcript (1e9 aborted in a vector's length check).
absl::StatusOr<double> SttNumber(const ModelConfig& config, const char* key, const std::string& source) {
  constexpr double kMaxSeconds = 60;
  if (!config.stt_config.contains(key)) return 0.0;
  const auto& v = config.stt_config.at(key);
  if (!v.is_number()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": stt_config.", key, " must be a number"));
  }
  const double value = v.get<double>();
  if (!(value >= 0 && value <= kMaxSeconds)) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": stt_config.", key, " must be from 0 to ",
                                                   kMaxSeconds, " seconds (got ", v.dump(), ")"));
  }
  return value;
}

// The model directory's config, when it is an STT model whose stt_config delays pass their checks.
absl::StatusOr<ModelConfig> LoadSttConfig(const std::string& model_dir) {
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  if (config.model_type != ModelType::kStt) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model directory ", model_dir, " holds a '", ModelTypeName(config.model_type),
        "' model; transcription needs a speech-to-text model (config.json model_type \"stt\", e.g. "
        "kyutai/stt-1b-en_fr or kyutai/stt-2.6b-en)"));
  }
  const std::string source = (fs::path(model_dir) / "config.json").string();
  RETURN_IF_ERROR(SttNumber(config, "audio_delay_seconds", source).status());
  RETURN_IF_ERROR(SttNumber(config, "audio_silence_prefix_seconds", source).status());
  RETURN_IF_ERROR(LmGenOptionsFromConfig(config.lm_gen_config, source).status());
  return config;
}

}  // namespace

// ---- AsrSession -------------------------------------------------------------------------------------------

AsrSession::AsrSession(std::shared_ptr<EngineState> shared, int slot, uint64_t generation)
    : shared_(std::move(shared)), slot_(slot), generation_(generation) {}

AsrSession::~AsrSession() {
  shared_->slots->Release({slot_, generation_}, [](EngineState::Slot& s) {
    s.audio.Release();
    s.aligner.reset();
  });
}

absl::Status AsrSession::PushAudio(std::span<const float> samples) {
  auto& table = *shared_->slots;
  std::lock_guard<std::mutex> lock(table.mu());
  auto& s = table.at(slot_);
  if (s.closed) return absl::FailedPreconditionError("asr session: PushAudio after Close");
  absl::Status st = s.audio.Push(samples);
  if (st.ok()) table.NotifyWorkLocked();
  return st;
}

absl::Status AsrSession::Close() {
  auto& table = *shared_->slots;
  std::lock_guard<std::mutex> lock(table.mu());
  auto& s = table.at(slot_);
  if (s.closed) return absl::OkStatus();
  s.closed = true;
  s.audio.AppendZeros(static_cast<size_t>(shared_->info.pad_right_samples));
  shared_->MaybeFinish(s);
  table.NotifyWorkLocked();
  table.NotifyEvents();
  return absl::OkStatus();
}

absl::Status AsrSession::Reset() {
  generation_ =
      shared_->slots->Restart({slot_, generation_}, [&](EngineState::Slot& s) { shared_->StartStream(s); })
          .generation;
  return absl::OkStatus();
}

std::vector<AsrEvent> AsrSession::PollEvents() { return shared_->slots->TakeEvents(slot_); }

std::vector<AsrEvent> AsrSession::WaitEvents(std::chrono::milliseconds timeout) {
  return shared_->slots->WaitEvents(slot_, timeout);
}

bool AsrSession::finished() const {
  return shared_->slots->With(slot_, [](const EngineState::Slot& s) { return s.ended; });
}

std::vector<int> AsrSession::text_tokens() const {
  return shared_->slots->With(
      slot_, [](const EngineState::Slot& s) { return s.aligner ? s.aligner->tokens() : std::vector<int>{}; });
}

int64_t AsrSession::samples_pushed() const {
  return shared_->slots->With(slot_, [](const EngineState::Slot& s) { return s.audio.pushed(); });
}

int64_t AsrSession::frames_done() const {
  return shared_->slots->With(slot_, [](const EngineState::Slot& s) { return s.frames; });
}

// ---- AsrEngine --------------------------------------------------------------------------------------------

AsrEngine::AsrEngine(std::shared_ptr<AsrSession::EngineState> shared) : shared_(std::move(shared)) {}
AsrEngine::~AsrEngine() = default;

absl::Status AsrEngine::CheckConfig(const std::string& model_dir) {
  return LoadSttConfig(model_dir).status();
}

absl::StatusOr<std::unique_ptr<AsrEngine>> AsrEngine::Load(const std::string& model_dir,
                                                           const AsrEngineOptions& options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch size must be >= 1 (got ", options.batch_size, ")"));
  }
  if (options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("threads must be >= 0 (got ", options.threads, ")"));
  }
  if (options.threads > 0) at::set_num_threads(options.threads);
  ASSIGN_OR_RETURN(c10::Device device, ParseDevice(options.device));
  // Settings checked before any weight is read: a bad config fails in milliseconds, not after gigabytes.
  ASSIGN_OR_RETURN(ModelConfig config, LoadSttConfig(model_dir));
  ASSIGN_OR_RETURN(at::ScalarType dtype, ParseDtype(options.dtype, device, config.lm.int8_checkpoint));
  ASSIGN_OR_RETURN(ModelFiles files, ResolveModelFiles(model_dir, config, options.lora_path));

  auto shared = std::make_shared<AsrSession::EngineState>();
  shared->device = device;
  shared->batch = options.batch_size;
#ifdef MONOLOGUE_HAVE_SENTENCEPIECE
  ASSIGN_OR_RETURN(shared->tokenizer, TextTokenizer::LoadForModel(files.tokenizer.string(), config.lm.text_card));
#else
  return absl::FailedPreconditionError(
      "this build has no sentencepiece (MONOLOGUE_WITH_SENTENCEPIECE=OFF): cannot load the text tokenizer " +
      files.tokenizer.string());
#endif
  const std::string source = (fs::path(model_dir) / "config.json").string();
  ASSIGN_OR_RETURN(double delay, SttNumber(config, "audio_delay_seconds", source));
  ASSIGN_OR_RETURN(double prefix, SttNumber(config, "audio_silence_prefix_seconds", source));

  LmLoadOptions lm_options;
  lm_options.dtype = dtype;
  lm_options.device = device;
  lm_options.lora_path = files.lora.string();
  lm_options.lora_scaling = config.lora_scaling;
  ASSIGN_OR_RETURN(shared->lm, LmModel::LoadFile(config.lm, files.lm.string(), lm_options));
  ASSIGN_OR_RETURN(MimiModel mimi, LoadMimiFile(files.mimi.string(), config.mimi, device));
  shared->mimi = std::make_unique<MimiModel>(std::move(mimi));
  return AsrEngineBuilder::Finish(std::move(shared), config, options, model_dir, delay, prefix, dtype);
}

absl::StatusOr<std::unique_ptr<AsrEngine>> AsrEngineBuilder::Finish(
    std::shared_ptr<AsrSession::EngineState> shared, const ModelConfig& config,
    const AsrEngineOptions& options, const std::string& model_dir, double delay, double prefix,
    at::ScalarType dtype) {
  const std::string source = model_dir + "/config.json";
  const c10::Device device = shared->device;
  shared->num_codebooks = config.mimi_codebooks();
  RETURN_IF_ERROR(shared->mimi->SetNumCodebooks(shared->num_codebooks));
  if (shared->num_codebooks < config.lm.n_q - config.lm.dep_q) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the LM reads ", config.lm.n_q - config.lm.dep_q,
                                                   " audio streams but Mimi gives ", shared->num_codebooks));
  }
  // Mimi's codes index the LM's audio embeddings (card rows plus the initial token): a codec with more bins
  // than the LM's card is another model's, and its codes would fail mid-stream as an index error.
  if (shared->mimi->cardinality() > config.lm.card) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": Mimi's codes take ", shared->mimi->cardinality(),
                     " values but the LM's audio embeddings hold ", config.lm.card,
                     " (card): the model needs the Mimi it was trained with"));
  }

  ASSIGN_OR_RETURN(LmGenOptions gen_options, LmGenOptionsFromConfig(config.lm_gen_config, source));
  const bool vad = options.vad && shared->lm->num_extra_heads() > 0;
  gen_options.compute_extra_heads = vad;
  gen_options.seed = 299792458;  // only matters for a sampling lm_gen_config (released STT: greedy)
  ASSIGN_OR_RETURN(shared->gen, LmGen::Create(shared->lm, options.batch_size, gen_options));
  shared->compact = options.compact_steps;
  shared->mimi_state = shared->mimi->NewState(options.batch_size);

  AsrModelInfo& info = shared->info;
  info.model_dir = model_dir;
  info.sample_rate = static_cast<int>(shared->mimi->sample_rate());
  info.frame_size = static_cast<int>(shared->mimi->frame_size());
  info.frame_rate = shared->mimi->frame_rate();
  info.audio_delay_seconds = delay;
  info.audio_silence_prefix_seconds = prefix;
  info.pad_left_samples = static_cast<int>(prefix * 24000);
  info.pad_right_samples = static_cast<int>((delay + 1.0) * 24000);
  info.num_vad_heads = vad ? static_cast<int>(shared->lm->num_extra_heads()) : 0;
  info.text_card = static_cast<int>(config.lm.text_card);
  info.num_codebooks = static_cast<int>(shared->num_codebooks);
  info.device = device.str();
  info.dtype = DtypeName(dtype);
  info.lm_weights = DescribeQuantization(shared->lm->quantization());
  shared->align.frame_rate = info.frame_rate;
  shared->align.offset_seconds = prefix + delay;
  shared->align.padding_id = static_cast<int>(config.lm.existing_text_padding_id);
  shared->slots =
      std::make_unique<SlotTable<AsrSession::EngineState::Slot>>(options.batch_size, "transcription");
  return std::unique_ptr<AsrEngine>(new AsrEngine(std::move(shared)));
}

absl::StatusOr<std::unique_ptr<AsrSession>> AsrEngine::OpenSession() {
  ASSIGN_OR_RETURN(SlotTicket t, shared_->slots->Acquire(
                                     [&](AsrSession::EngineState::Slot& s) { shared_->StartStream(s); }));
  return std::unique_ptr<AsrSession>(new AsrSession(shared_, t.index, t.generation));
}

// One compacted step (AsrEngineOptions::compact_steps): Mimi encodes the slots with a frame, the LM steps
// the slots with a frame or a pending warm-up, each on its active rows only (core/util/step_rows.h). Fills
// text [n] / vad [n, H] on the CPU for the n stepped slots in slot order, and `row_of` (slot -> row).
absl::Status AsrSession::EngineState::CompactStep(const std::vector<uint8_t>& frame,
                                             const std::vector<uint8_t>& warm, std::vector<float>& pcm,
                                             at::Tensor& text_cpu, at::Tensor& vad_cpu,
                                             std::vector<int64_t>& row_of) {
  EngineState& sh = *this;
  const int B = sh.batch;
  const int F = sh.info.frame_size;
  std::vector<int64_t> exec_slots, frame_slots, frame_rows;  // frame_rows: rows of exec_slots with a frame
  for (int b = 0; b < B; ++b) {
    if (!frame[b] && !warm[b]) continue;
    row_of[static_cast<size_t>(b)] = static_cast<int64_t>(exec_slots.size());
    if (frame[b]) {
      frame_slots.push_back(b);
      frame_rows.push_back(static_cast<int64_t>(exec_slots.size()));
    }
    exec_slots.push_back(b);
  }
  const int64_t n = static_cast<int64_t>(exec_slots.size());
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  at::Tensor codes = at::zeros({n, sh.num_codebooks, 1}, long_opts.device(sh.device));
  if (!frame_slots.empty()) {
    at::Tensor x = at::from_blob(pcm.data(), {B, 1, F}, at::kFloat)
                       .index_select(0, at::tensor(frame_slots, at::kLong))
                       .to(sh.device);
    ASSIGN_OR_RETURN(at::Tensor frame_codes, sh.mimi->EncodeStepSlots(sh.mimi_state, frame_slots, x));
    if (frame_slots.size() == exec_slots.size()) {
      codes = frame_codes;
    } else {
      codes.index_copy_(0, at::tensor(frame_rows, at::kLong).to(sh.device), frame_codes);
    }
  }
  ASSIGN_OR_RETURN(LmStepResult result, sh.gen->StepSlots(exec_slots, codes));
  text_cpu = result.text_token.to(at::kCPU).contiguous();
  if (sh.info.num_vad_heads > 0 && !result.extra_heads.empty()) {
    std::vector<at::Tensor> heads;
    for (const at::Tensor& h : result.extra_heads) heads.push_back(h.select(-1, 0).reshape({n}));
    vad_cpu = at::stack(heads, 1).to(at::kFloat).to(at::kCPU).contiguous();  // [n, H]
  }
  return absl::OkStatus();
}

absl::StatusOr<int> AsrEngine::Step() {
  auto& sh = *shared_;
  std::lock_guard<std::mutex> step_lock(sh.step_mu);
  auto& table = *sh.slots;
  const int B = sh.batch;
  const int F = sh.info.frame_size;
  std::vector<uint8_t> reset(B, 0), warm(B, 0), frame(B, 0);
  std::vector<uint64_t> generation(B, 0);
  std::vector<float> pcm(static_cast<size_t>(B) * F, 0.0f);
  std::vector<int64_t> row_of(static_cast<size_t>(B));  // slot -> row of the step's outputs
  for (int b = 0; b < B; ++b) row_of[static_cast<size_t>(b)] = b;
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
    table.NotifyEvents();  // (MaybeFinish may have ended a stream)
    return 0;
  }

  const auto t0 = std::chrono::steady_clock::now();
  at::Tensor text_cpu, vad_cpu;
  absl::Status st = GuardTorch("asr step", [&]() -> absl::Status {
    const auto bool_opts = at::TensorOptions().dtype(at::kBool);
    if (any_reset) {
      at::Tensor mask = at::from_blob(reset.data(), {B}, at::TensorOptions().dtype(at::kByte)).to(at::kBool);
      RETURN_IF_ERROR(sh.mimi->Reset(sh.mimi_state, mask.to(sh.device)));
      RETURN_IF_ERROR(sh.gen->Reset(mask.to(sh.device)));
    }
    if (active == 0) {
      // Only resets: leave every slot paused.
      return sh.compact ? absl::OkStatus() : sh.gen->SetExecMask(at::zeros({B}, bool_opts).to(sh.device));
    }
    if (sh.compact) return sh.CompactStep(frame, warm, pcm, text_cpu, vad_cpu, row_of);
    at::Tensor codes;
    if (any_frame) {
      at::Tensor frame_mask =
          at::from_blob(frame.data(), {B}, at::TensorOptions().dtype(at::kByte)).to(at::kBool).to(sh.device);
      at::Tensor x = at::from_blob(pcm.data(), {B, 1, F}, at::kFloat)
                         .to(sh.device, /*non_blocking=*/false, /*copy=*/true);
      codes = sh.mimi->EncodeStepUnchecked(sh.mimi_state, x, frame_mask);
    } else {
      codes = at::zeros({B, sh.num_codebooks, 1}, at::TensorOptions().dtype(at::kLong).device(sh.device));
    }
    std::vector<uint8_t> exec(B);
    for (int b = 0; b < B; ++b) exec[b] = frame[b] | warm[b];
    at::Tensor exec_mask =
        at::from_blob(exec.data(), {B}, at::TensorOptions().dtype(at::kByte)).to(at::kBool).to(sh.device);
    RETURN_IF_ERROR(sh.gen->SetExecMask(exec_mask));
    ASSIGN_OR_RETURN(LmStepResult result, sh.gen->Step(codes));
    text_cpu = result.text_token.to(at::kCPU).contiguous();
    if (sh.info.num_vad_heads > 0 && !result.extra_heads.empty()) {
      std::vector<at::Tensor> heads;
      for (const at::Tensor& h : result.extra_heads) heads.push_back(h.select(-1, 0).reshape({B}));
      vad_cpu = at::stack(heads, 1).to(at::kFloat).to(at::kCPU).contiguous();  // [B, H]
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    table.AbandonStep(generation, [&](int b) { return warm[b] || frame[b]; }, [&](auto& s) { sh.MaybeFinish(s); });
    return st;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (active == 0) return 0;

  std::lock_guard<std::mutex> lock(table.mu());
  table.RecordStepLocked(seconds);
  const int64_t* text = text_cpu.data_ptr<int64_t>();
  const float* vad = vad_cpu.defined() ? vad_cpu.data_ptr<float>() : nullptr;
  for (int b = 0; b < B; ++b) {
    if (!warm[b] && !frame[b]) continue;
    auto& s = table.at(b);
    if (!s.in_use || s.generation != generation[b]) continue;  // left or reset meanwhile
    s.in_step = false;
    if (warm[b]) {
      s.warmed = true;  // the initial-token step's output is not part of the stream
    } else {
      const int64_t row = row_of[static_cast<size_t>(b)];
      sh.ConsumeToken(s, static_cast<int>(text[row]), vad ? vad + row * sh.info.num_vad_heads : nullptr);
    }
    sh.MaybeFinish(s);
  }
  table.NotifyEvents();
  return active;
}

bool AsrEngine::WaitForWork(std::chrono::milliseconds timeout) {
  return shared_->slots->WaitForWork(timeout);
}

void AsrEngine::Wake() { shared_->slots->NotifyWork(); }

absl::Status AsrEngine::RunUntilIdle() {
  while (true) {
    ASSIGN_OR_RETURN(int n, Step());
    if (n == 0) return absl::OkStatus();
  }
}

const AsrModelInfo& AsrEngine::info() const { return shared_->info; }
int AsrEngine::batch_size() const { return shared_->batch; }
int AsrEngine::free_slots() const { return shared_->slots->free_slots(); }
int64_t AsrEngine::steps_run() const { return shared_->slots->steps_run(); }
double AsrEngine::step_seconds() const { return shared_->slots->step_seconds(); }

absl::StatusOr<std::unique_ptr<AsrEngine>> AsrEngineBuilder::Create(
    const ModelConfig& config, std::shared_ptr<const LmModel> lm, const MimiModel& mimi,
    std::shared_ptr<const TextTokenizer> tokenizer, const AsrEngineOptions& options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch size must be >= 1 (got ", options.batch_size, ")"));
  }
  if (config.model_type != ModelType::kStt) {
    return absl::InvalidArgumentError("AsrEngineBuilder::Create: the config is not an STT model");
  }
  auto shared = std::make_shared<AsrSession::EngineState>();
  shared->device = mimi.device();
  shared->batch = options.batch_size;
  shared->tokenizer = std::move(tokenizer);
  shared->lm = std::move(lm);
  shared->mimi = std::make_unique<MimiModel>(mimi);
  const std::string source = "in-memory STT model";
  ASSIGN_OR_RETURN(double delay, SttNumber(config, "audio_delay_seconds", source));
  ASSIGN_OR_RETURN(double prefix, SttNumber(config, "audio_silence_prefix_seconds", source));
  const at::ScalarType dtype = shared->lm->weights_dtype();
  return Finish(std::move(shared), config, options, "(in memory)", delay, prefix, dtype);
}

}  // namespace monologue
