// script_to_entries rules, chunking invariance and the state machine's streaming gate. The entries of real
// texts are checked against the reference in tts_engine_test.cc (fixtures record the reference's entries).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tts/tts_script.h"
#include "tts/tts_state_machine.h"

namespace monologue::tts {
namespace {

// A stand-in tokenizer: one id per byte (ids >= 4), so entries show exactly which bytes made each word.
std::vector<int> FakeEncode(std::string_view word) {
  std::vector<int> ids;
  for (unsigned char c : word) ids.push_back(4 + c);
  return ids;
}

ScriptOptions Options(bool multi_speaker = true, int padding_between = 1) {
  ScriptOptions o;
  o.multi_speaker = multi_speaker;
  o.padding_between = padding_between;
  o.ids.card = 401;
  return o;
}

std::vector<std::string> Texts(const std::vector<Entry>& entries) {
  std::vector<std::string> out;
  // (StrCat rather than "<" + std::to_string(...): GCC 12 reports a false -Wrestrict in that operator+.)
  for (const Entry& e : entries) out.push_back(e.tokens.empty() ? absl::StrCat("<", e.padding, ">") : e.text);
  return out;
}

TEST(TtsScriptTest, NormalisesSplitsAndMarksSpeakers) {
  auto entries = ScriptToEntries(FakeEncode, Options(),
                                 {"Hello (big) world:  it\xE2\x80\x99s <break time=\"0.6s\"/>me", "Other  side"});
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ(Texts(*entries), (std::vector<std::string>{"Hello", "big", "world", "it's", "<8>", "me", "Other", "side"}));
  // Speaker tokens on each turn's first word; padding = padding_between + len(tokens) - 1.
  EXPECT_EQ((*entries)[0].tokens.front(), 1);
  EXPECT_EQ((*entries)[0].padding, 1 + 6 - 1);
  EXPECT_EQ((*entries)[1].tokens, FakeEncode("big"));
  EXPECT_EQ((*entries)[6].tokens.front(), 2);
}

TEST(TtsScriptTest, BreakDurationsRoundHalfToEven) {
  // Python's round(): 0.2 s * 12.5 = 2.5 -> 2, 0.6 s -> 7.5 -> 8, "1." and "2" parse as floats.
  auto entries = ScriptToEntries(FakeEncode, Options(false, 0),
                                 {"a<break time=\"0.2s\"/>b <break time=\"1.s\" > c<break  time=\"2s\">"});
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ(Texts(*entries), (std::vector<std::string>{"a", "<2>", "b", "<12>", "c", "<25>"}));
  auto bad = ScriptToEntries(FakeEncode, Options(), {"a <break time=\"1x5s\"/> b"});
  EXPECT_FALSE(bad.ok());
}

TEST(TtsScriptTest, SingleSpeakerModelsGetNoSpeakerToken) {
  auto entries = ScriptToEntries(FakeEncode, Options(/*multi_speaker=*/false), {"one two", "three"});
  ASSERT_TRUE(entries.ok());
  for (const Entry& e : *entries) EXPECT_EQ(e.tokens, FakeEncode(e.text));
}

// Text that is not UTF-8 is refused (the tokenizer would take the bytes as they are), naming the byte,
// whether the bad byte comes in the middle of a push or as a sequence left unfinished at the end; control
// characters separate words as spaces do.
TEST(TtsScriptTest, InvalidUtf8IsRefusedAndControlCharactersSeparateWords) {
  for (const std::string& bad :
       {std::string("abc \xff"), std::string("ok \xC0\xAF"),  // 0xff, an overlong '/'
        std::string("x \xED\xA0\x80"),                        // a UTF-16 surrogate
        std::string("y \xE2\x28\xA1")}) {                     // a broken continuation
    ScriptBuilder builder(FakeEncode, Options());
    auto r = builder.Push(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("not valid UTF-8"), std::string::npos) << r.status();
  }
  ScriptBuilder cut(FakeEncode, Options());
  ASSERT_TRUE(cut.Push("fine \xE2\x80").ok());  // may be completed by the next push...
  auto fin = cut.Finish();                      // ...but none comes
  ASSERT_FALSE(fin.ok());
  EXPECT_NE(fin.status().message().find("byte 0xe2"), std::string::npos) << fin.status();
  auto entries = ScriptToEntries(FakeEncode, Options(false),
                                 {std::string("a\x07"
                                              "b\x1b"
                                              "c\0d\x7f"
                                              "e\te",
                                              11)});
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ(Texts(*entries), (std::vector<std::string>{"a", "b", "c", "d", "e", "e"}));
  auto fine = ScriptToEntries(FakeEncode, Options(false), {"caf\xC3\xA9 \xF0\x9F\x98\x80 \xE2\x80\x89ok"});
  EXPECT_TRUE(fine.ok()) << fine.status();
}

TEST(TtsScriptTest, AnyChunkingGivesTheWholeTextsEntries) {
  const std::string text =
      "Bonjour\xC2\xA0tout le monde\xE2\x80\x99 (ok): <break time=\"0.5s\"/>streaming\ttext\n<break time=\"1.25s\"/> "
      "arrives  in pieces\xE2\x80\x89here.";
  auto whole = ScriptToEntries(FakeEncode, Options(), {text, "second turn"});
  ASSERT_TRUE(whole.ok());
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    ScriptBuilder builder(FakeEncode, Options());
    std::vector<Entry> got;
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t len = std::min<size_t>(text.size() - pos, 1 + rng() % 7);
      auto part = builder.Push(std::string_view(text).substr(pos, len));
      ASSERT_TRUE(part.ok());
      got.insert(got.end(), part->begin(), part->end());
      pos += len;
    }
    auto end = builder.EndTurn();
    ASSERT_TRUE(end.ok());
    got.insert(got.end(), end->begin(), end->end());
    auto second = builder.Push("second turn");
    got.insert(got.end(), second->begin(), second->end());
    auto fin = builder.Finish();
    got.insert(got.end(), fin->begin(), fin->end());
    ASSERT_EQ(Texts(got), Texts(*whole)) << "trial " << trial;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].tokens, (*whole)[i].tokens);
      EXPECT_EQ(got[i].padding, (*whole)[i].padding);
    }
  }
}

TEST(TtsStateMachineTest, StepsOnlyWhenTheLookaheadIsKnown) {
  StateMachineOptions o;
  o.ids.card = 401;
  o.second_stream_ahead = 2;
  StateMachine m(o);
  EXPECT_FALSE(m.CanStep());
  m.Append({Entry{{5}, "a", 0}, Entry{{}, "", 3}, Entry{{6}, "b", 0}});
  EXPECT_FALSE(m.CanStep());  // a pause entry does not count: 2 words < 1 + lookahead
  m.Append({Entry{{7}, "c", 0}});
  EXPECT_TRUE(m.CanStep());
  StateMachine closed(o);
  closed.Append({Entry{{5}, "a", 0}});
  closed.Close();
  EXPECT_TRUE(closed.CanStep());
}

}  // namespace
}  // namespace monologue::tts
