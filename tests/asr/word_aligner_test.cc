// The word/timestamp rule against the reference's own function (DSM stt_from_file_pytorch.py,
// tokens_to_timestamped_text) on scripted and random token streams (tests/data/asr/timestamp_cases.json).
#include "asr/word_aligner.h"

#include <gtest/gtest.h>

#include "core/text/text_tokenizer.h"
#include "tests/asr/asr_test_util.h"

namespace monologue {
namespace {

std::unique_ptr<TextTokenizer> Tokenizer() {
  auto t = TextTokenizer::Load(asr_test::ModelDir() + "/tokenizer.model");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

TEST(WordAligner, MatchesReferenceTimestampFunction) {
  auto tokenizer = Tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const nlohmann::json cases = asr_test::ReadJson(asr_test::DataDir() + "/timestamp_cases.json");
  ASSERT_GE(cases.size(), 10u);
  size_t words = 0, multi = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    WordAlignerOptions options;
    options.offset_seconds = cases[i]["offset"].get<double>();
    const std::vector<int> tokens = cases[i]["tokens"].get<std::vector<int>>();
    const std::vector<AsrWord> got = AlignWords(*tokenizer, tokens, options);
    asr_test::ExpectWordsEqual(got, cases[i]["words"], "case " + std::to_string(i));
    words += got.size();
    for (size_t w = 1; w < got.size(); ++w) multi += got[w].start_s == got[w - 1].end_s ? 1 : 0;
  }
  EXPECT_GT(words, 50u);  // the cases really exercise the rule
  EXPECT_GT(multi, 0u);
}

TEST(WordAligner, WordsAreDecidedAtTheNextBoundary) {
  auto tokenizer = Tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const std::vector<int> hello = tokenizer->Encode("hello");
  const std::vector<int> world = tokenizer->Encode("world");
  ASSERT_FALSE(hello.empty());
  WordAlignerOptions options;
  options.offset_seconds = 0.5;
  WordAligner aligner(tokenizer.get(), options);
  std::vector<int> stream = {3, 0};
  stream.insert(stream.end(), hello.begin(), hello.end());
  stream.push_back(3);
  stream.push_back(3);
  const size_t boundary = stream.size();
  stream.push_back(0);
  stream.insert(stream.end(), world.begin(), world.end());
  for (size_t i = 0; i < stream.size(); ++i) {
    std::vector<AsrWord> out = aligner.Push(stream[i]);
    if (i == boundary) {
      ASSERT_EQ(out.size(), 1u);
      EXPECT_EQ(out[0].text, "hello");
      EXPECT_EQ(out[0].tokens, hello);
      EXPECT_DOUBLE_EQ(out[0].start_s, std::max(0.0, 2 / 12.5 - 0.5));
      EXPECT_DOUBLE_EQ(out[0].end_s, static_cast<double>(boundary) / 12.5 - 0.5);
    } else {
      EXPECT_TRUE(out.empty()) << i;
    }
  }
  std::vector<AsrWord> last = aligner.Finish();
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].text, "world");
  // No EOS: the last word ends with the stream (shorter than 12.5 frames).
  EXPECT_DOUBLE_EQ(last[0].end_s, static_cast<double>(stream.size()) / 12.5 - 0.5);
  EXPECT_TRUE(aligner.Finish().empty());
  EXPECT_TRUE(aligner.Push(0).empty());
}

}  // namespace
}  // namespace monologue
