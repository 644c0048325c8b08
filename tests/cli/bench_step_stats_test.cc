// The step-time summary the benches print: nearest-rank percentiles, the pre-roll a synthesis player needs,
// and the lag of a live stream's results, checked on step sequences worked out by hand.
#include "cli/bench_step_stats.h"

#include <gtest/gtest.h>

#include <vector>

namespace monologue::cli {
namespace {

TEST(BenchStepStatsTest, PercentilesAreNearestRank) {
  std::vector<double> steps;
  for (int i = 20; i >= 1; --i) steps.push_back(i);  // 20, 19, ..., 1: order must not matter
  const StepStats s = SummarizeSteps(steps);
  EXPECT_DOUBLE_EQ(s.mean_ms, 10.5);
  EXPECT_DOUBLE_EQ(s.p50_ms, 10);  // 10 of 20 at or under it
  EXPECT_DOUBLE_EQ(s.p95_ms, 19);  // 19 of 20
  EXPECT_DOUBLE_EQ(s.max_ms, 20);
  const StepStats one = SummarizeSteps(std::vector<double>{42});
  EXPECT_DOUBLE_EQ(one.p50_ms, 42);
  EXPECT_DOUBLE_EQ(one.p95_ms, 42);
}

TEST(BenchStepStatsTest, AnEngineAheadOfRealTimeNeedsNoBufferAndLagsByItsStep) {
  const StepStats s = SummarizeSteps(std::vector<double>{60, 60, 60, 60});
  EXPECT_DOUBLE_EQ(s.playback_buffer_ms, 0);
  EXPECT_DOUBLE_EQ(s.live_lag_ms, 60);  // each frame waits for its audio, then takes its step
}

TEST(BenchStepStatsTest, ASlowStretchCostsWhatItOverran) {
  // Frames out at 50, 100, 250, 400, 450 ms; a player from 50 ms needs frame i by 50 + 80 i: frame 3 is
  // 110 ms late (400 - 290), frame 2 40 ms (250 - 210).
  const std::vector<double> steps{50, 50, 150, 150, 50};
  const StepStats s = SummarizeSteps(steps);
  EXPECT_DOUBLE_EQ(s.playback_buffer_ms, 110);
  // Live audio: frame i ready at 80 (i + 1). Done at 130, 210, 390, 540, 590: lags 50, 50, 150, 220, 190.
  EXPECT_DOUBLE_EQ(s.live_lag_ms, 220);
  EXPECT_DOUBLE_EQ(s.mean_ms, 90);
}

TEST(BenchStepStatsTest, EarlySlackAbsorbsALaterSlowStep) {
  // Out at 40, 80, 120, 320: frame 3 due by 40 + 240 = 280, 40 ms late. Live: done at 120, 200, 280, 520
  // (audio at 80, 160, 240, 320): lag 200 for the slow frame.
  const StepStats s = SummarizeSteps(std::vector<double>{40, 40, 40, 200});
  EXPECT_DOUBLE_EQ(s.playback_buffer_ms, 40);
  EXPECT_DOUBLE_EQ(s.live_lag_ms, 200);
}

TEST(BenchStepStatsTest, NoStepsGiveZeros) {
  const StepStats s = SummarizeSteps({});
  EXPECT_EQ(s.mean_ms, 0);
  EXPECT_EQ(s.max_ms, 0);
}

}  // namespace
}  // namespace monologue::cli
