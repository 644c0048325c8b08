// What a run of timed streaming steps means for a live stream: the spread of the step times, and the two
// ways a 2-core machine can fall behind real time for a while and catch up. A mean step under 80 ms keeps
// up over the run; these say what the slow stretches inside it cost a listener.
#pragma once

#include <span>

namespace monologue::cli {

struct StepStats {
  double mean_ms = 0;
  double p50_ms = 0;
  double p95_ms = 0;
  double max_ms = 0;
  // Synthesis: the engine runs flat out and a player starts at the first timed frame, then takes one frame
  // per `frame_ms`. The least pre-roll that plays every timed frame without a gap (0: the engine stayed
  // ahead all along).
  double playback_buffer_ms = 0;
  // Transcription: frame i's audio is complete at (i + 1) * frame_ms and its step starts once both the
  // audio and the previous step are done. The longest a frame's result comes after its audio (its own step
  // time when the engine keeps up; more while a backlog lasts).
  double live_lag_ms = 0;
};

// `step_ms`: the timed steps' durations in order (at least one).
StepStats SummarizeSteps(std::span<const double> step_ms, double frame_ms = 80.0);

}  // namespace monologue::cli
