// DecodeTranscript (asr/transcript.h): the text of a finished STT token stream, against the transcript the
// reference Python sentencepiece recorded for the same ids (tests/reference/make_tokenizer.sh).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "asr/transcript.h"
#include "core/text/text_tokenizer.h"
#include "nlohmann/json.hpp"

namespace monologue {
namespace {

const std::string kTokenizers = std::string(MONOLOGUE_TEST_DATA_DIR) + "/tokenizers/";

nlohmann::json ExpectedStream() {
  std::ifstream in(kTokenizers + "tiny_en_fr_400_expected.json");
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str())["stream"];
}

TEST(DecodeTranscriptTest, DropsControlIdsAndDecodesTheRestAsTheReference) {
  auto tokenizer = TextTokenizer::Load(kTokenizers + "tiny_en_fr_400.model");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const nlohmann::json stream = ExpectedStream();
  const auto ids = stream["ids"].get<std::vector<int>>();
  auto transcript = DecodeTranscript(**tokenizer, ids);
  ASSERT_TRUE(transcript.ok()) << transcript.status();
  EXPECT_EQ(*transcript, stream["transcript"].get<std::string>());
  EXPECT_EQ(*transcript, "Bonjour tout le monde hello world");
  // EOS (2) is dropped, unlike the streaming printer which shows its piece.
  EXPECT_EQ(*(*tokenizer)->PrintableText(ids), " Bonjour tout le monde hello world</s>");
}

TEST(DecodeTranscriptTest, AnIdOutsideTheVocabularyIsAnError) {
  auto tokenizer = TextTokenizer::Load(kTokenizers + "tiny_en_fr_400.model");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto transcript = DecodeTranscript(**tokenizer, {0, 217, (*tokenizer)->vocab_size()});
  EXPECT_FALSE(transcript.ok());
}

}  // namespace
}  // namespace monologue
