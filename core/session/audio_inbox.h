// The input audio of one streaming session that the model has not consumed yet: samples pushed from any
// thread, taken one frame at a time by the model step. Shared by the modes that listen (speech recognition,
// dialogue). Bounded: a caller that pushes far ahead of the model gets RESOURCE_EXHAUSTED instead of growing
// memory without limit (the server paces its clients long before this; the CLI pushes whole files).
// Not thread-safe by itself: the engine's slot lock guards it. Torch-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"

namespace monologue {

class AudioInbox {
 public:
  // Unconsumed samples allowed: 2 hours at 24 kHz (~690 MB of f32), far beyond any paced stream.
  static constexpr size_t kDefaultMaxPending = size_t{2} * 3600 * 24000;

  explicit AudioInbox(size_t max_pending = kDefaultMaxPending) : max_pending_(max_pending) {}

  // Empties it for a new stream, starting with `leading_zeros` samples of silence (not counted as pushed).
  void Restart(size_t leading_zeros = 0);
  // Frees its memory (the session left).
  void Release();

  // Input samples; RESOURCE_EXHAUSTED (nothing appended) when the unconsumed samples would exceed the bound.
  absl::Status Push(std::span<const float> samples);
  // Padding the stream adds itself (flush zeros at the end): not counted as pushed, not bounded.
  void AppendZeros(size_t n);

  size_t available() const { return samples_.size() - read_pos_; }
  // Copies the next `n` samples (n <= available()) to `out` and consumes them.
  void Take(size_t n, float* out);
  // Input samples pushed since Restart (padding excluded).
  int64_t pushed() const { return pushed_; }

 private:
  size_t max_pending_;
  std::vector<float> samples_;
  size_t read_pos_ = 0;
  int64_t pushed_ = 0;
};

}  // namespace monologue
