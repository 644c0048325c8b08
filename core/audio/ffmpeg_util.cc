#include "core/audio/ffmpeg_util.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/audio/audio_log.h"

extern "C" {
#include <libavutil/log.h>
}

namespace monologue {
namespace {

int g_print_level = AV_LOG_QUIET;
thread_local std::string t_last_error;

void LogCallback(void* avcl, int level, const char* fmt, va_list args) {
  if (level > AV_LOG_ERROR && level > g_print_level) return;
  char line[1024];
  int print_prefix = 1;
  va_list copy;
  va_copy(copy, args);
  av_log_format_line2(avcl, level, fmt, copy, line, sizeof(line), &print_prefix);
  va_end(copy);
  if (level <= AV_LOG_ERROR) {
    std::string text = std::string(absl::StripTrailingAsciiWhitespace(line));
    if (!text.empty()) t_last_error = std::move(text);
  }
  if (level <= g_print_level) std::fputs(line, stderr);
}

}  // namespace

void SetFfmpegLogLevel(int av_log_level) {
  audio_internal::InstallFfmpegLogCallback();
  g_print_level = av_log_level;
  av_log_set_level(std::max(av_log_level, AV_LOG_VERBOSE));
}

namespace audio_internal {

void InstallFfmpegLogCallback() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Let everything reach the callback; it filters (FFmpeg's own level would drop error lines we keep).
    av_log_set_level(AV_LOG_VERBOSE);
    av_log_set_callback(LogCallback);
  });
}

void ClearLastFfmpegError() { t_last_error.clear(); }

std::string FfmpegErrorText(int averror) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(averror, buf, sizeof(buf));
  std::string text = buf;
  if (!t_last_error.empty() && t_last_error.find(text) == std::string::npos) {
    absl::StrAppend(&text, " (FFmpeg: ", t_last_error, ")");
  }
  return text;
}

absl::Status FfmpegStatus(int averror, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", FfmpegErrorText(averror));
  if (averror == AVERROR(ENOENT)) return absl::NotFoundError(message);
  if (averror == AVERROR(EACCES)) return absl::PermissionDeniedError(message);
  if (averror == AVERROR(ENOMEM)) return absl::ResourceExhaustedError(message);
  if (averror == AVERROR_INVALIDDATA) return absl::InvalidArgumentError(message);
  return absl::InternalError(message);
}

}  // namespace audio_internal
}  // namespace monologue
