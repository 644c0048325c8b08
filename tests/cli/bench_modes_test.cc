// `monologue bench synthesize | transcribe | chat` on the tiny presets: each prints its table with the step
// times' spread and what they mean for a live stream (a synthesis player's pre-roll, a live stream's lag),
// one row per batch size, the numbers consistent with each other.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "tests/common/process.h"

namespace monologue {
namespace {

using ::testing::HasSubstr;

// The numbers of the table row that starts with `batch` (right-aligned in 6 columns), after `header`.
std::vector<double> Row(const std::string& out, const std::string& header, int batch) {
  const size_t at = out.find(header);
  if (at == std::string::npos) return {};
  char start[16];
  std::snprintf(start, sizeof(start), "\n%6d ", batch);
  const size_t row = out.find(start, at);
  if (row == std::string::npos) return {};
  std::istringstream line(out.substr(row + 1, out.find('\n', row + 1) - row - 1));
  std::vector<double> values;
  for (double v; line >> v;) values.push_back(v);
  return values;
}

TEST(BenchModesCliTest, SynthesizeReportsTheSpreadAndThePlayersPreRoll) {
  const test_process::RunResult r = test_process::RunMonologue(
      std::string(
          "bench synthesize --preset tiny-tts --batch 1,2 --steps 6 --warmup 1 --ttfa-runs 1 --tokenizer ") +
      MONOLOGUE_TEST_DATA_DIR + "/tokenizers/tiny_en_fr_400.model");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string header =
      "step ms       p50       p95       max       RTF    x realtime (all streams)   buffer ms";
  ASSERT_THAT(r.out, HasSubstr(header));
  for (int batch : {1, 2}) {
    const std::vector<double> v = Row(r.out, header, batch);  // batch, mean, p50, p95, max, RTF, x, buffer
    ASSERT_EQ(v.size(), 8u) << r.out;
    EXPECT_LE(v[2], v[3]);
    EXPECT_LE(v[3], v[4]);
    EXPECT_LE(v[1], v[4]);
    EXPECT_NEAR(v[5], v[1] / 80.0, 1e-3);
    EXPECT_GE(v[7], 0.0);
  }
}

TEST(BenchModesCliTest, TranscribeReportsTheLiveLag) {
  const test_process::RunResult r =
      test_process::RunMonologue("bench transcribe --preset tiny-stt --batch 1 --steps 6 --warmup 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string header =
      "step ms       p50       p95       max       RTF    x realtime (all streams)      lag ms";
  const std::vector<double> v = Row(r.out, header, 1);  // batch, mean, p50, p95, max, RTF, x, lag
  ASSERT_EQ(v.size(), 8u) << r.out;
  EXPECT_LE(v[3], v[4]);
  // The tiny model is far ahead of real time: no backlog, each frame lags by its own step at most.
  EXPECT_LE(v[7], v[4] + 0.1);
  EXPECT_GT(v[7], 0.0);
}

TEST(BenchModesCliTest, ChatReportsTheLiveLag) {
  const test_process::RunResult r =
      test_process::RunMonologue("bench chat --preset tiny-moshi-8 --batch 1 --steps 6 --warmup 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string header = "max ms     encode         lm     decode       RTF    x realtime    lag ms";
  const std::vector<double> v = Row(r.out, header, 1);  // batch, mean, max, encode, lm, decode, RTF, x, lag
  ASSERT_EQ(v.size(), 9u) << r.out;
  EXPECT_LE(v[1], v[2]);
  EXPECT_LE(v[8], v[2] + 0.1);
  EXPECT_GT(v[8], 0.0);
}

}  // namespace
}  // namespace monologue
