#include "core/session/audio_inbox.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace monologue {

void AudioInbox::Restart(size_t leading_zeros) {
  samples_.assign(leading_zeros, 0.0f);
  read_pos_ = 0;
  pushed_ = 0;
}

void AudioInbox::Release() {
  samples_.clear();
  samples_.shrink_to_fit();
  read_pos_ = 0;
}

absl::Status AudioInbox::Push(std::span<const float> samples) {
  if (available() + samples.size() > max_pending_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "audio pushed too far ahead of the model: ", available(), " samples are waiting and ", samples.size(),
        " more would exceed the bound of ", max_pending_, " (push at the pace of the steps)"));
  }
  // Drop what the model consumed once that is most of the buffer (amortised O(1) per sample).
  if (read_pos_ > (size_t{1} << 20) && read_pos_ * 2 > samples_.size()) {
    samples_.erase(samples_.begin(), samples_.begin() + static_cast<std::ptrdiff_t>(read_pos_));
    read_pos_ = 0;
  }
  samples_.insert(samples_.end(), samples.begin(), samples.end());
  pushed_ += static_cast<int64_t>(samples.size());
  return absl::OkStatus();
}

void AudioInbox::AppendZeros(size_t n) { samples_.insert(samples_.end(), n, 0.0f); }

void AudioInbox::Take(size_t n, float* out) {
  std::copy_n(samples_.begin() + static_cast<std::ptrdiff_t>(read_pos_), n, out);
  read_pos_ += n;
}

}  // namespace monologue
