// `monologue codec encode|decode`: audio <-> Mimi codes through the streaming codec.
//
//   monologue codec encode INPUT -o CODES.safetensors [--mimi FILE] [--mimi-config JSON] [--codebooks N]
//   monologue codec decode CODES.safetensors -o OUT.wav|OUT.ogg [--mimi FILE] [--mimi-config JSON]
//
// Encode reads any audio FFmpeg decodes (`-` = stdin) as 24 kHz mono, 1920-sample frame by frame (the last
// frame zero-padded), and streams it through the encoder: memory stays bounded whatever the length. The
// output holds int64 `codes` [1, N, frames] and metadata sample_rate, frame_rate, codebooks, samples.
// Decode streams the codes frame by frame into a WAV or Ogg/Opus writer (format from the extension).
// The checkpoint comes from --mimi or the MONOLOGUE_MIMI environment variable.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/command.h"
#include "cli/flag_checks.h"
#include "core/io/safetensors.h"
#include "core/mimi/mimi_loader.h"
#include "core/mimi/mimi_model.h"
#include "core/util/device_dtype.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#ifdef MONOLOGUE_HAVE_FFMPEG
#include "core/audio/audio_decoder.h"
#include "core/audio/audio_writer.h"
#include "core/io/output_file.h"
#endif

namespace monologue::cli {
namespace {

struct CodecFlags {
  std::string input;
  std::string output;
  std::string format;  // decode: wav or ogg (default: the output's extension; wav for -)
  std::string mimi;
  std::string mimi_config;
  int codebooks = 32;
  std::string device = "cpu";
  int threads = 0;
};

#ifdef MONOLOGUE_HAVE_FFMPEG

absl::StatusOr<MimiModel> LoadModel(const CodecFlags& f) {
  std::string path = f.mimi;
  if (path.empty()) {
    const char* env = std::getenv("MONOLOGUE_MIMI");
    if (env == nullptr || *env == '\0') {
      return absl::InvalidArgumentError("no Mimi checkpoint: pass --mimi FILE or set MONOLOGUE_MIMI");
    }
    path = env;
  }
  auto device = ParseDevice(f.device);  // the other commands' rules and messages
  if (!device.ok())
    return absl::Status(device.status().code(), absl::StrCat("--device: ", device.status().message()));
  if (f.threads > 0) at::set_num_threads(f.threads);
  ASSIGN_OR_RETURN(MimiConfig config, LoadMimiConfig(f.mimi_config));
  absl::StatusOr<MimiModel> model = LoadMimiFile(path, config, *device);
  if (!model.ok() && f.mimi_config.empty() && absl::StrContains(model.status().message(), "shape")) {
    // The released architecture was assumed: a Mimi of another one needs its config.
    return absl::Status(
        model.status().code(),
        absl::StrCat(model.status().message(),
                     "\n(the released Mimi's architecture was assumed: for another one pass its "
                     "config JSON with --mimi-config)"));
  }
  return model;
}

std::string LowerExtension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// Refused before the model is loaded: a name that says audio or text would get safetensors bytes.
absl::Status CheckCodesOutput(const std::string& path) {
  const std::string ext = LowerExtension(path);
  if (path == "-" || ext.empty() || ext == ".safetensors" || ext == ".sft") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("cannot write ", path,
                   ": codes are written as safetensors; name the output .safetensors (or - for stdout)"));
}

// "wav" or "ogg" for decode's output, from --format or the extension.
absl::StatusOr<std::string> DecodeFormat(const CodecFlags& f) {
  if (!f.format.empty()) return f.format;
  const std::string ext = LowerExtension(f.output);
  if (f.output == "-" || ext == ".wav") return std::string("wav");
  if (ext == ".ogg" || ext == ".opus") return std::string("ogg");
  return absl::InvalidArgumentError(absl::StrCat("cannot write ", f.output, ": no audio format for '", ext,
                                                 "' (.wav, .ogg or .opus; or --format wav|ogg)"));
}

absl::Status Encode(const CodecFlags& f) {
  RETURN_IF_ERROR(CheckCodesOutput(f.output));
  ASSIGN_OR_RETURN(MimiModel model, LoadModel(f));
  RETURN_IF_ERROR(model.SetNumCodebooks(f.codebooks));
  AudioDecoderOptions options;
  options.target_sample_rate = static_cast<int>(model.sample_rate());
  ASSIGN_OR_RETURN(std::unique_ptr<AudioDecoder> audio, AudioDecoder::Open(f.input, options));
  const int64_t frame = model.frame_size();
  MimiStreamState state = model.NewState(1);
  std::vector<at::Tensor> codes;
  std::vector<float> pending;
  int64_t total = 0;
  auto step = [&](const float* samples) -> absl::Status {
    at::Tensor pcm = at::from_blob(const_cast<float*>(samples), {1, 1, frame}, at::kFloat).clone();
    ASSIGN_OR_RETURN(at::Tensor c, model.EncodeStep(state, pcm));
    codes.push_back(c.cpu());
    return absl::OkStatus();
  };
  while (true) {
    ASSIGN_OR_RETURN(std::vector<float> chunk, audio->Read(static_cast<size_t>(frame) * 8));
    if (chunk.empty()) break;
    total += static_cast<int64_t>(chunk.size());
    pending.insert(pending.end(), chunk.begin(), chunk.end());
    size_t used = 0;
    for (; pending.size() - used >= static_cast<size_t>(frame); used += frame) {
      RETURN_IF_ERROR(step(pending.data() + used));
    }
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(used));
  }
  if (total == 0) return absl::InvalidArgumentError(absl::StrCat(f.input, ": no audio samples"));
  if (!pending.empty()) {
    pending.resize(frame, 0.0f);
    RETURN_IF_ERROR(step(pending.data()));
  }
  const at::Tensor all = at::cat(codes, 2).to(at::kLong).contiguous();
  std::map<std::string, std::string> meta = {
      {"sample_rate", std::to_string(model.sample_rate())},
      {"frame_rate", absl::StrCat(model.frame_rate())},
      {"codebooks", std::to_string(model.num_codebooks())},
      {"samples", std::to_string(total)},
  };
  RETURN_IF_ERROR(WriteSafeTensors(f.output == "-" ? "/dev/stdout" : f.output, {{"codes", all}}, meta));
  std::fprintf(stderr, "monologue codec encode: %.2f s of audio -> %lld frames x %lld codebooks in %s\n",
               static_cast<double>(total) / model.sample_rate(), static_cast<long long>(all.size(2)),
               static_cast<long long>(all.size(1)), f.output.c_str());
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> ReadCodes(const std::string& path) {
  ASSIGN_OR_RETURN(auto file, SafeTensorsFile::Open(path));
  const SafeTensorInfo* info = file->Find("codes");
  if (info == nullptr) return absl::InvalidArgumentError(absl::StrCat(path, ": no tensor 'codes'"));
  if (info->dtype != "I64" && info->dtype != "I32" && info->dtype != "I16") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": 'codes' must be an integer tensor (int64), got ", info->dtype));
  }
  if (info->shape.size() != 3 || info->shape[0] != 1) {
    return absl::InvalidArgumentError(absl::StrCat(path,
                                                   ": 'codes' must be shaped [1, codebooks, frames], got [",
                                                   absl::StrJoin(info->shape, ", "), "]"));
  }
  ASSIGN_OR_RETURN(at::Tensor codes, file->Load("codes"));
  return codes.to(at::kLong).clone();
}

absl::Status Decode(const CodecFlags& f) {
  ASSIGN_OR_RETURN(const std::string format, DecodeFormat(f));
  ASSIGN_OR_RETURN(at::Tensor codes, ReadCodes(f.input));
  ASSIGN_OR_RETURN(MimiModel model, LoadModel(f));
  // Checked before the output is opened, so that a file already there is left as it was.
  if (codes.size(1) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(f.input, ": 'codes' [1, 0, ", codes.size(2),
                                                   "] has no codebooks (decoding needs at least one)"));
  }
  if (codes.size(1) > model.total_codebooks()) {
    return absl::InvalidArgumentError(absl::StrCat(f.input, ": 'codes' has ", codes.size(1),
                                                   " codebooks, the Mimi has ", model.total_codebooks()));
  }
  if (codes.numel() > 0) {
    const int64_t lo = codes.min().item<int64_t>(), hi = codes.max().item<int64_t>();
    if (lo < 0 || hi >= model.cardinality()) {
      return absl::InvalidArgumentError(absl::StrCat(f.input, ": codes must be in [0, ", model.cardinality(),
                                                     "), found values in [", lo, ", ", hi, "]"));
    }
  }
  AudioWriterOptions options;
  options.sample_rate = static_cast<int>(model.sample_rate());
  options.format = format;
  std::optional<OutputFile> output;  // a file replaces what was there once complete
  if (f.output != "-") {
    ASSIGN_OR_RETURN(OutputFile file, OutputFile::Prepare(f.output));
    output = std::move(file);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<AudioWriter> writer,
                   OpenAudioWriter(output.has_value() ? output->write_path() : std::string("-"), options));
  MimiStreamState state = model.NewState(1);
  for (int64_t t = 0; t < codes.size(2); ++t) {
    ASSIGN_OR_RETURN(at::Tensor pcm, model.DecodeStep(state, codes.narrow(2, t, 1)));
    const at::Tensor cpu = pcm.cpu().contiguous();
    RETURN_IF_ERROR(writer->Write(std::span<const float>(cpu.data_ptr<float>(), cpu.numel())));
  }
  RETURN_IF_ERROR(writer->Close());
  if (output.has_value()) RETURN_IF_ERROR(output->Commit());
  std::fprintf(stderr, "monologue codec decode: %lld frames x %lld codebooks -> %.2f s of audio in %s\n",
               static_cast<long long>(codes.size(2)), static_cast<long long>(codes.size(1)),
               static_cast<double>(codes.size(2) * model.frame_size()) / model.sample_rate(),
               f.output.c_str());
  return absl::OkStatus();
}

#else

absl::Status Encode(const CodecFlags&) {
  return absl::UnimplementedError("this build has no FFmpeg (MONOLOGUE_WITH_FFMPEG=OFF): cannot read audio");
}
absl::Status Decode(const CodecFlags&) {
  return absl::UnimplementedError("this build has no FFmpeg (MONOLOGUE_WITH_FFMPEG=OFF): cannot write audio");
}

#endif

void AddModelFlags(CLI::App* cmd, CodecFlags* f) {
  cmd->add_option("--mimi", f->mimi, "Mimi checkpoint (.safetensors); default: $MONOLOGUE_MIMI");
  cmd->add_option("--mimi-config", f->mimi_config,
                  "mimi_config_name JSON of a non-released architecture (default: the released one)");
  cmd->add_option("--device", f->device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_option("--threads", f->threads, "CPU threads (default: libtorch's choice)")->check(ThreadCount());
}

int Report(const char* what, const absl::Status& status) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "monologue codec %s: %s\n", what, std::string(status.message()).c_str());
  return 1;
}

}  // namespace

void RegisterCodecCommand(CLI::App& app, int& exit_code) {
  CLI::App* codec = app.add_subcommand("codec", "Mimi codec: audio <-> discrete codes (12.5 Hz)");
  codec->require_subcommand(1);

  auto enc = std::make_shared<CodecFlags>();
  CLI::App* encode = codec->add_subcommand("encode", "Audio file (any format, - = stdin) to codes");
  encode->add_option("INPUT", enc->input, "audio file, or - for stdin")->required();
  encode->add_option("-o,--output", enc->output, "codes file (.safetensors), or - for stdout")->required();
  encode->add_option("--codebooks", enc->codebooks, "codebooks to keep (1..32; Moshi uses 8, STT/TTS 32)")
      ->capture_default_str();
  AddModelFlags(encode, enc.get());
  encode->callback([enc, &exit_code]() {
    c10::InferenceMode guard;
    exit_code = Report("encode", GuardTorch("encode", [&] { return Encode(*enc); }));
  });

  auto dec = std::make_shared<CodecFlags>();
  CLI::App* decode = codec->add_subcommand("decode", "Codes to audio (.wav or .ogg/.opus)");
  decode->add_option("CODES", dec->input, "codes file from `codec encode`")->required();
  decode->add_option("-o,--output", dec->output, "audio file (.wav, .ogg, .opus), or - for stdout")
      ->required();
  decode
      ->add_option("--format", dec->format,
                   "wav or ogg (Ogg/Opus); default: the output's extension, wav for -")
      ->check(CLI::IsMember({"wav", "ogg"}));
  AddModelFlags(decode, dec.get());
  decode->callback([dec, &exit_code]() {
    c10::InferenceMode guard;
    exit_code = Report("decode", GuardTorch("decode", [&] { return Decode(*dec); }));
  });
}

}  // namespace monologue::cli
