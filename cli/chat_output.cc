// `monologue chat`'s output files (chat.h): Moshi's side as WAV, the text as JSON, the codes as safetensors.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "cli/chat.h"

#if defined(MONOLOGUE_HAVE_DIALOGUE) && defined(MONOLOGUE_HAVE_FFMPEG)
#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "core/io/safetensors.h"
#include "nlohmann/json.hpp"

namespace monologue::cli::chat {

namespace fs = std::filesystem;

absl::Status WriteWav(const std::string& path, const std::vector<float>& left,
                      const std::vector<float>* right) {
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
  std::error_code ec;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (fs::is_directory(path, ec))
    return absl::InvalidArgumentError(absl::StrCat("cannot write ", path, ": it is a directory"));
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      const std::string why = std::strerror(errno);
      out.close();
      fs::remove(tmp, ec);
      return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", why));
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(tmp, ec);  // the temporary copy is not left behind
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", why));
  }
  return absl::OkStatus();
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
  std::ofstream f(path, std::ios::binary);
  f << out.dump(1) << "\n";
  f.close();
  if (!f) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
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
