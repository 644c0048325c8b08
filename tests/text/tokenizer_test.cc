#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/text/text_tokenizer.h"

namespace monologue {
namespace {

using ::testing::HasSubstr;

const std::string kModel = std::string(MONOLOGUE_TEST_DATA_DIR) + "/tokenizers/tiny_en_fr_400.model";
// Recorded with the reference Python sentencepiece by tests/reference/make_tokenizer.sh.
const std::string kExpected =
    std::string(MONOLOGUE_TEST_DATA_DIR) + "/tokenizers/tiny_en_fr_400_expected.json";

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TmpPath(const std::string& name) {
  const char* env = std::getenv("MONOLOGUE_TEST_TMP");
  return std::string(env != nullptr ? env : ".") + "/" + name;
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = TextTokenizer::Load(kModel);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    tokenizer_ = loaded->release();
    expected_ = new nlohmann::json(nlohmann::json::parse(ReadBytes(kExpected)));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete expected_;
  }
  static const TextTokenizer& tok() { return *tokenizer_; }
  static const nlohmann::json& expected() { return *expected_; }

 private:
  static inline TextTokenizer* tokenizer_ = nullptr;
  static inline nlohmann::json* expected_ = nullptr;
};

TEST_F(TokenizerTest, IdsPiecesAndDecodingMatchPythonSentencePiece) {
  ASSERT_GE(expected()["texts"].size(), 10u);
  for (const nlohmann::json& item : expected()["texts"]) {
    const std::string text = item["text"].get<std::string>();
    SCOPED_TRACE(text);
    EXPECT_EQ(tok().Encode(text), item["ids"].get<std::vector<int>>());
    EXPECT_EQ(tok().EncodeAsPieces(text), item["pieces"].get<std::vector<std::string>>());
    auto decoded = tok().Decode(item["ids"].get<std::vector<int>>());
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, item["decoded"].get<std::string>());
  }
}

TEST_F(TokenizerTest, VocabularyMatchesPython) {
  EXPECT_EQ(tok().vocab_size(), expected()["vocab_size"].get<int>());
  EXPECT_EQ(tok().vocab_size(), 400);
  const auto pieces = expected()["pieces"].get<std::vector<std::string>>();
  ASSERT_EQ(static_cast<int>(pieces.size()), tok().vocab_size());
  for (int id = 0; id < tok().vocab_size(); ++id) {
    auto piece = tok().IdToPiece(id);
    ASSERT_TRUE(piece.ok()) << piece.status();
    EXPECT_EQ(*piece, pieces[id]) << id;
    EXPECT_EQ(tok().PieceToId(pieces[id]), id) << pieces[id];
  }
  EXPECT_EQ(tok().PieceToId("no-such-piece"), 0);  // <unk>
}

TEST_F(TokenizerTest, SpecialIdsFollowTheModelConventions) {
  EXPECT_EQ(tok().unk_id(), expected()["unk_id"].get<int>());
  EXPECT_EQ(tok().bos_id(), expected()["bos_id"].get<int>());
  EXPECT_EQ(tok().eos_id(), expected()["eos_id"].get<int>());
  EXPECT_EQ(tok().pad_id(), expected()["pad_id"].get<int>());
  // The fixed conventions of the Kyutai vocabularies, which the test model reproduces.
  EXPECT_EQ(tok().unk_id(), kTextEndOfPaddingId);
  EXPECT_EQ(tok().bos_id(), kTextBosId);
  EXPECT_EQ(tok().eos_id(), kTextEosId);
  EXPECT_EQ(tok().pad_id(), kTextPadId);
  EXPECT_EQ(*tok().IdToPiece(kTextPadId), "<pad>");
  EXPECT_EQ(*tok().IdToPiece(kTextBosId), "<s>");
  EXPECT_EQ(*tok().IdToPiece(kTextEosId), "</s>");
  EXPECT_EQ(kTextMainSpeakerId, 1);
  EXPECT_EQ(kTextOtherSpeakerId, 2);
  EXPECT_TRUE(IsSilentTextId(0));
  EXPECT_TRUE(IsSilentTextId(3));
  EXPECT_FALSE(IsSilentTextId(1));
  EXPECT_FALSE(IsSilentTextId(4));
  // text_card is the LM's initial token, one past the vocabulary: not an id the tokenizer knows.
  const int text_card = tok().vocab_size();
  EXPECT_EQ(TextInitialTokenId(text_card), 400);
  auto initial = tok().IdToPiece(TextInitialTokenId(text_card));
  EXPECT_EQ(initial.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(initial.status().message()), HasSubstr("400"));
  EXPECT_THAT(std::string(initial.status().message()), HasSubstr(kModel));
  EXPECT_FALSE(tok().IdToPiece(-1).ok());
}

TEST_F(TokenizerTest, EncodeAddsNoBosOrEos) {
  for (const std::string text : {"Hello world.", "Bonjour le monde.", "a", ""}) {
    for (int id : tok().Encode(text)) {
      EXPECT_NE(id, kTextBosId) << text;
      EXPECT_NE(id, kTextEosId) << text;
      EXPECT_NE(id, kTextPadId) << text;
    }
  }
  EXPECT_TRUE(tok().Encode("").empty());
  // Characters outside the vocabulary come out as <unk> = 0.
  std::vector<int> ids = tok().Encode("日");
  EXPECT_NE(std::find(ids.begin(), ids.end(), 0), ids.end());
}

TEST_F(TokenizerTest, EnglishAndFrenchRoundTrip) {
  for (const std::string text : {
           "The children played in the garden until the sun went down.",
           "Could you repeat that more slowly? I did not catch the last part.",
           "Les élèves étudient le français, l'anglais et les mathématiques.",
           "À quelle heure la bibliothèque ouvre-t-elle le dimanche ?",
           "Noël approche : œuvre, cœur, sœur.",
           "An unseen sentence about quantum kumquats and zebras.",
       }) {
    std::vector<int> ids = tok().Encode(text);
    ASSERT_FALSE(ids.empty());
    auto decoded = tok().Decode(ids);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, text);
  }
}

TEST_F(TokenizerTest, PrintableTextFollowsTheReferencePrinters) {
  const nlohmann::json& stream = expected()["stream"];
  const auto ids = stream["ids"].get<std::vector<int>>();
  auto printed = tok().PrintableText(ids);
  ASSERT_TRUE(printed.ok()) << printed.status();
  EXPECT_EQ(*printed, stream["printed"].get<std::string>());
  EXPECT_EQ(*printed, " Bonjour tout le monde hello world</s>");  // the reference prints EOS's piece

  EXPECT_EQ(*tok().PrintablePiece(kTextEndOfPaddingId), "");
  EXPECT_EQ(*tok().PrintablePiece(kTextPadId), "");
  // Word-initial pieces start with a space: '▁' -> ' '.
  int word_initial = 0;
  for (int id = 4; id < tok().vocab_size(); ++id) {
    const std::string piece = *tok().IdToPiece(id);
    const std::string shown = *tok().PrintablePiece(id);
    EXPECT_EQ(shown.find("\xE2\x96\x81"), std::string::npos) << piece;
    if (piece.rfind("\xE2\x96\x81", 0) == 0) {
      EXPECT_EQ(shown, std::string(" ").append(piece, 3));
      ++word_initial;
    } else {
      EXPECT_EQ(shown, piece);
    }
  }
  EXPECT_GT(word_initial, 50);
  auto bad = tok().PrintableText({4, 5, 400});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("400"));
}

TEST_F(TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  for (int id : {-1, -2, 400, 32000}) {
    auto decoded = tok().Decode({10, id});
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << id;
    EXPECT_THAT(std::string(decoded.status().message()), HasSubstr(std::to_string(id)));
    EXPECT_THAT(std::string(decoded.status().message()), HasSubstr(kModel));
  }
  // Control ids decode to nothing, as in sentencepiece.
  EXPECT_EQ(*tok().Decode({kTextBosId, kTextPadId, kTextEosId}), "");
}

TEST_F(TokenizerTest, InvalidUtf8DoesNotCrash) {
  const std::string bad = std::string("caf\xC3") + "\xFF\xFE" + " ok";
  std::vector<int> ids = tok().Encode(bad);
  EXPECT_FALSE(ids.empty());
  EXPECT_TRUE(tok().Decode(ids).ok());
}

TEST_F(TokenizerTest, ConcurrentEncodingIsConsistent) {
  const std::string text = "Je voudrais un café avec un peu de lait, s'il vous plaît.";
  const std::vector<int> want = tok().Encode(text);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      int good = 0;
      for (int i = 0; i < 200; ++i) good += tok().Encode(text) == want;
      ok[t] = good;
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(ok[t], 200);
}

TEST(TokenizerLoadTest, FromBytesMatchesLoad) {
  auto tok = TextTokenizer::FromBytes(ReadBytes(kModel), "in-memory model");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->name(), "in-memory model");
  EXPECT_EQ((*tok)->vocab_size(), 400);
  auto from_file = TextTokenizer::Load(kModel);
  ASSERT_TRUE(from_file.ok());
  EXPECT_EQ((*from_file)->name(), kModel);
  EXPECT_EQ((*tok)->Encode("Bonjour tout le monde"), (*from_file)->Encode("Bonjour tout le monde"));
}

void ExpectBadModel(const std::string& path, absl::StatusCode code) {
  auto tok = TextTokenizer::Load(path);
  ASSERT_FALSE(tok.ok()) << path;
  EXPECT_EQ(tok.status().code(), code) << tok.status();
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr(path));
}

TEST(TokenizerLoadTest, MissingOrCorruptFilesFailWithTheFileName) {
  ExpectBadModel(TmpPath("no_such_tokenizer.model"), absl::StatusCode::kNotFound);
  const char* env = std::getenv("MONOLOGUE_TEST_TMP");
  ExpectBadModel(env != nullptr ? env : ".", absl::StatusCode::kInvalidArgument);  // a directory

  const std::string empty = TmpPath("empty.model");
  WriteBytes(empty, "");
  ExpectBadModel(empty, absl::StatusCode::kInvalidArgument);

  const std::string text = TmpPath("text.model");
  WriteBytes(text, "this is not a sentencepiece model\n");
  ExpectBadModel(text, absl::StatusCode::kInvalidArgument);

  const std::string real = ReadBytes(kModel);
  const std::string truncated = TmpPath("truncated.model");
  WriteBytes(truncated, real.substr(0, real.size() / 2));
  ExpectBadModel(truncated, absl::StatusCode::kInvalidArgument);

  std::mt19937 rng(7);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  const std::string random = TmpPath("random.model");
  WriteBytes(random, noise);
  ExpectBadModel(random, absl::StatusCode::kInvalidArgument);

  // Bytes that parse as a (nonsensical) ModelProto: an empty piece, an empty trainer spec, a lone
  // piece with no special ids.
  for (const std::string& proto :
       {std::string("\x0a\x00", 2), std::string("\x12\x00", 2), std::string("\x0a\x03\x0a\x01x", 5)}) {
    const std::string path = TmpPath("tiny_proto.model");
    WriteBytes(path, proto);
    ExpectBadModel(path, absl::StatusCode::kInvalidArgument);
  }

  const std::string safetensors = TmpPath("weights.model");
  WriteBytes(safetensors, ReadBytes(std::string(MONOLOGUE_TEST_DATA_DIR) + "/io/python_shapes.safetensors"));
  ExpectBadModel(safetensors, absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace monologue
