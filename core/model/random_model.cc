#include "core/model/random_model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <fstream>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/io/safetensors.h"
#include "core/model/deterministic_weights.h"
#include "core/model/safetensors_stream_writer.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<fs::path> PlainTarget(const fs::path& out, const std::string& name, const char* key) {
  if (name.empty() || absl::StartsWith(name, "hf://") || absl::StartsWith(name, "file://") ||
      fs::path(name).is_absolute()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot generate ", key, " '", name, "': only plain file names relative to the model directory"));
  }
  return out / name;
}

absl::Status WriteText(const fs::path& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) return absl::DataLossError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

uint64_t FileSize(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<uint64_t>(size);
}

}  // namespace

at::Tensor RandomTensorFor(const TensorSpec& spec, uint64_t seed) {
  if (spec.init_scale == 0.0f) return at::full(spec.shape, spec.init_offset, at::kFloat);
  return DeterministicTensor(seed, spec.name, spec.shape, spec.init_scale, spec.init_offset);
}

std::map<std::string, at::Tensor> RandomLmTensors(const LmConfig& config, uint64_t seed,
                                                  at::ScalarType weight_dtype) {
  std::map<std::string, at::Tensor> tensors;
  for (const TensorSpec& spec : ExpectedLmTensors(config)) {
    at::Tensor t = RandomTensorFor(spec, seed);
    if (spec.tensor_class == TensorClass::kWeight && t.scalar_type() != weight_dtype) t = t.to(weight_dtype);
    if (spec.tensor_class == TensorClass::kInt8Weight) t = t.to(at::kChar);
    tensors[spec.name] = std::move(t);
  }
  return tensors;
}

absl::Status WriteRandomCheckpoint(const std::string& path, const std::vector<TensorSpec>& specs,
                                   uint64_t seed, at::ScalarType weight_dtype) {
  std::vector<SafeTensorsStreamWriter::Entry> entries;
  entries.reserve(specs.size());
  for (const TensorSpec& spec : specs) {
    const at::ScalarType dtype = spec.tensor_class == TensorClass::kWeight       ? weight_dtype
                                 : spec.tensor_class == TensorClass::kInt8Weight ? at::kChar
                                                                                 : at::kFloat;
    entries.push_back({spec.name, dtype, spec.shape});
  }
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  ASSIGN_OR_RETURN(auto writer, SafeTensorsStreamWriter::Create(path, entries, {{"format", "pt"}}));
  for (size_t i = 0; i < specs.size(); ++i) {
    RETURN_IF_ERROR(GuardTorch(absl::StrCat("generating ", specs[i].name), [&]() -> absl::Status {
      at::Tensor t = RandomTensorFor(specs[i], seed);
      if (t.scalar_type() != entries[i].dtype) t = t.to(entries[i].dtype);
      return writer->Write(t);
    }));
  }
  return writer->Finish();
}

absl::StatusOr<GeneratedModel> WriteRandomModelDir(const ModelConfig& config, bool mimi_only,
                                                   const fs::path& out, const RandomModelOptions& options) {
  GeneratedModel result;
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec)
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", out.string(), ": ", ec.message()));

  if (!mimi_only) {
    RETURN_IF_ERROR(config.lm.Validate("generator config"));
    if (!config.legacy) {
      const fs::path path = out / "config.json";
      RETURN_IF_ERROR(WriteText(path, ModelConfigToJson(config).dump(2) + "\n"));
      result.files.push_back({path, FileSize(path), "config"});
    } else {
      result.notes.push_back("legacy layout: no config.json (Moshi 7B defaults apply)");
    }
  }
  RETURN_IF_ERROR(config.mimi.Validate("generator Mimi config"));
  if (config.mimi_config_name.has_value()) {
    ASSIGN_OR_RETURN(fs::path path, PlainTarget(out, *config.mimi_config_name, "mimi_config_name"));
    RETURN_IF_ERROR(WriteText(path, MimiConfigToJson(config.mimi).dump(2) + "\n"));
    result.files.push_back({path, FileSize(path), "mimi config"});
  }
  if (options.config_only) return result;

  if (!mimi_only && options.write_lm) {
    ASSIGN_OR_RETURN(fs::path path, PlainTarget(out, config.moshi_name, "moshi_name"));
    RETURN_IF_ERROR(
        WriteRandomCheckpoint(path.string(), ExpectedLmTensors(config.lm), options.seed, options.lm_dtype));
    result.files.push_back({path, FileSize(path), "lm weights"});
  }
  if (options.write_mimi) {
    ASSIGN_OR_RETURN(fs::path path, PlainTarget(out, config.mimi_name, "mimi_name"));
    RETURN_IF_ERROR(
        WriteRandomCheckpoint(path.string(), ExpectedMimiTensors(config.mimi), options.seed, at::kFloat));
    result.files.push_back({path, FileSize(path), "mimi weights"});
  }
  if (!mimi_only) {
    if (options.tokenizer.has_value()) {
      ASSIGN_OR_RETURN(fs::path path, PlainTarget(out, config.tokenizer_name, "tokenizer_name"));
      fs::create_directories(path.parent_path(), ec);
      fs::copy_file(*options.tokenizer, path, fs::copy_options::overwrite_existing, ec);
      if (ec) {
        return absl::NotFoundError(absl::StrCat("cannot copy tokenizer ", options.tokenizer->string(), " to ",
                                                path.string(), ": ", ec.message()));
      }
      result.files.push_back({path, FileSize(path), "tokenizer"});
    } else {
      result.notes.push_back(absl::StrCat("no --tokenizer given: ", config.tokenizer_name, " not written"));
    }
  }
  // TTS models conditioned on voices: a random voice in the kyutai/tts-voices layout (voices/NAME.<sig>@<epoch>
  // .safetensors, speaker_wavs [1, dim, 125] = 10 s of latent), so the directory synthesizes out of the box.
  auto speaker = config.lm.conditioners.find("speaker_wavs");
  if (!mimi_only && speaker != config.lm.conditioners.end()) {
    std::string suffix = ".safetensors";
    if (config.model_id.contains("sig") && config.model_id.contains("epoch")) {
      const auto& sig = config.model_id.at("sig");
      const auto& epoch = config.model_id.at("epoch");
      suffix = absl::StrCat(".", sig.is_string() ? sig.get<std::string>() : sig.dump(), "@",
                            epoch.is_string() ? epoch.get<std::string>() : epoch.dump(), ".safetensors");
    }
    const fs::path path = out / "voices" / absl::StrCat("random", suffix);
    fs::create_directories(path.parent_path(), ec);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(options.seed + 1);
    at::Tensor voice = at::randn({1, speaker->second.dim, 125}, gen, at::kFloat);
    RETURN_IF_ERROR(WriteSafeTensors(path.string(), {{"speaker_wavs", voice}}));
    result.files.push_back({path, FileSize(path), "voice"});
  }
  return result;
}

}  // namespace monologue
