// `monologue chat`'s output files (chat.h): Moshi's side as WAV, the text as JSON, the codes as safetensors.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "cli/chat.h"

#if defined(MONOLOGUE_HAVE_DIALOGUE) && defined(MONOLOGUE_HAVE_FFMPEG)
#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "core/audio/audio_writer.h"
#include "core/io/output_file.h"
#include "core/io/safetensors.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace monologue::cli::chat {

namespace fs = std::filesystem;

absl::StatusOr<std::string> ChatAudioFormat(const std::string& path, bool stereo) {
  std::string ext = path == "-" ? "" : fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext.empty() || ext == ".wav") return std::string("wav");
  if (ext == ".ogg" || ext == ".opus") {
    if (stereo) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot write ", path, ": --stereo writes WAV (Ogg/Opus output is mono)"));
    }
    return std::string("ogg");
  }
  return absl::InvalidArgumentError(absl::StrCat("cannot write ", path, ": no audio format for '", ext,
                                                 "' (.wav, .ogg or .opus, or - for WAV on stdout)"));
}

absl::Status WriteAudio(const std::string& path, const std::vector<float>& left,
                        const std::vector<float>* right) {
  ASSIGN_OR_RETURN(const std::string format, ChatAudioFormat(path, right != nullptr));
  if (format == "ogg") {
    ASSIGN_OR_RETURN(OutputFile output, OutputFile::Prepare(path));
    AudioWriterOptions options;
    options.format = "ogg";
    auto writer = OpenAudioWriter(output.write_path(), options);
    if (!writer.ok())
      return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", writer.status().message()));
    absl::Status st = (*writer)->Write(left);
    if (st.ok()) st = (*writer)->Close();
    if (!st.ok()) return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", st.message()));
    return output.Commit();
  }
  const int channels = right != nullptr ? 2 : 1;
  const uint32_t frames = static_cast<uint32_t>(left.size());
  const uint32_t data_bytes = frames * channels * 2;
  std::string bytes;
  bytes.reserve(44 + data_bytes);
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  auto u16 = [&](uint16_t v) {
    bytes.push_back(static_cast<char>(v & 0xff));
    bytes.push_back(static_cast<char>(v >> 8));
  };
  bytes += "RIFF";
  u32(36 + data_bytes);
  bytes += "WAVEfmt ";
  u32(16);
  u16(1);
  u16(static_cast<uint16_t>(channels));
  u32(24000);
  u32(24000 * channels * 2);
  u16(static_cast<uint16_t>(channels * 2));
  u16(16);
  bytes += "data";
  u32(data_bytes);
  auto sample = [&](float x) {
    float v = std::isfinite(x) ? x : 0.0f;
    // As the reference's sphn.write_wav: x * 32767 truncated, clamped.
    long q = static_cast<long>(std::clamp(static_cast<double>(v) * 32767.0, -32768.0, 32767.0));
    u16(static_cast<uint16_t>(static_cast<int16_t>(q)));
  };
  for (uint32_t i = 0; i < frames; ++i) {
    sample(left[i]);
    if (right != nullptr) sample(i < right->size() ? (*right)[i] : 0.0f);
  }
  if (path == "-") {
    if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size() || std::fflush(stdout) != 0) {
      return absl::UnavailableError(absl::StrCat("cannot write the audio to stdout: ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }
  return WriteFileReplacing(path, bytes);
}

absl::Status WriteText(const Job& job, const std::string& path, const std::string& model, double prepend_s,
                       double duration_s) {
  nlohmann::json pieces = nlohmann::json::array(), words = nlohmann::json::array();
  std::string text;
  nlohmann::json word;
  for (const Piece& p : job.pieces) {
    auto round6 = [](double t) { return std::round(t * 1e6) / 1e6; };
    const double start = round6(p.start - prepend_s), end = round6(p.start - prepend_s + 0.08);
    pieces.push_back({{"text", p.text}, {"token", p.token}, {"start", start}, {"end", end}});
    text += p.text;
    const bool starts_word = !p.text.empty() && p.text[0] == ' ';
    if (starts_word || word.is_null()) {
      if (!word.is_null()) words.push_back(word);
      const size_t b = p.text.find_first_not_of(' ');
      word = {{"text", b == std::string::npos ? std::string() : p.text.substr(b)},
              {"start", start},
              {"end", end}};
    } else {
      word["text"] = word["text"].get<std::string>() + p.text;
      word["end"] = end;
    }
  }
  if (!word.is_null()) words.push_back(word);
  const size_t b = text.find_first_not_of(' ');
  nlohmann::json out = {
      {"input", job.input},       {"model", model},
      {"seed", job.seed},         {"prepend_silence_s", prepend_s},
      {"duration_s", duration_s}, {"text", b == std::string::npos ? std::string() : text.substr(b)},
      {"pieces", pieces},         {"words", words}};
  return WriteFileReplacing(path, out.dump(1) + "\n");
}

absl::Status WriteCodes(const Job& job, const std::string& path, int dep_q) {
  const int64_t frames = static_cast<int64_t>(job.tokens.size());
  at::Tensor codes = at::zeros({1, dep_q, frames}, at::kLong);
  at::Tensor text = at::zeros({frames}, at::kLong);
  auto c = codes.accessor<int64_t, 3>();
  for (int64_t f = 0; f < frames; ++f) {
    text[f] = job.tokens[static_cast<size_t>(f)];
    for (int k = 0; k < dep_q; ++k) c[0][k][f] = job.codes[static_cast<size_t>(f)][static_cast<size_t>(k)];
  }
  return WriteSafeTensors(path, {{"codes", codes}, {"text_tokens", text}});
}

}  // namespace monologue::cli::chat

#endif
