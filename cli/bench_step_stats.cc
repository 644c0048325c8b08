#include "cli/bench_step_stats.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace monologue::cli {

StepStats SummarizeSteps(std::span<const double> step_ms, double frame_ms) {
  StepStats s;
  if (step_ms.empty()) return s;
  std::vector<double> sorted(step_ms.begin(), step_ms.end());
  std::sort(sorted.begin(), sorted.end());
  // Nearest rank: the smallest step time with at least q of the steps at or under it.
  auto quantile = [&](double q) {
    const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size()) - 1e-9));
    return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
  };
  s.p50_ms = quantile(0.5);
  s.p95_ms = quantile(0.95);
  s.max_ms = sorted.back();
  double produced = 0;  // synthesis: frame i is out at the sum of the first i + 1 steps
  double done = 0;      // transcription: frame i's step ends here
  for (size_t i = 0; i < step_ms.size(); ++i) {
    produced += step_ms[i];
    const double due = produced - step_ms[0] - frame_ms * static_cast<double>(i);
    s.playback_buffer_ms = std::max(s.playback_buffer_ms, due);
    const double audio_ready = frame_ms * static_cast<double>(i + 1);
    done = std::max(done, audio_ready) + step_ms[i];
    s.live_lag_ms = std::max(s.live_lag_ms, done - audio_ready);
  }
  s.mean_ms = produced / static_cast<double>(step_ms.size());
  return s;
}

}  // namespace monologue::cli
