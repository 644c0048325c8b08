// Verbosity of FFmpeg's own log lines. By default monologue prints none: FFmpeg errors are folded into
// the absl::Status messages of the decoder and writers instead.
#pragma once

namespace monologue {

// `av_log_level` is an FFmpeg AV_LOG_* value (e.g. 16 = AV_LOG_ERROR, 24 = AV_LOG_WARNING, 32 = AV_LOG_INFO,
// -8 = AV_LOG_QUIET, the default). Process-wide.
void SetFfmpegLogLevel(int av_log_level);

}  // namespace monologue
