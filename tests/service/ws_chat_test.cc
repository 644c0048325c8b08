// `monologue serve --http`: /api/chat speaks the Moshi server's protocol as the web client and
// Full-Duplex-Bench's v1.5 client do (handshake byte 0x00; 0x01 + Ogg/Opus both ways; 0x02 + text pieces) and
// gives what the local dialogue engine gives for the same (Opus-decoded) input and seed: the same text
// pieces, and Moshi's audio as the same Opus stream; a full server, bad Ogg/Opus, an unknown kind and a
// repeated query parameter get 0x05 + error and the close.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "dialogue/dialogue_engine.h"
#include "service/http/ogg_opus_stream.h"
#include "service_test_util.h"
#include "ws_test_client.h"

namespace monologue::service_test {
namespace {

std::string OggOf(const std::vector<float>& pcm, bool finish) {
  auto encoder = OggOpusStreamEncoder::Create();
  EXPECT_TRUE(encoder.ok());
  std::string out;
  for (size_t i = 0; i < pcm.size(); i += 1920) {
    auto pages = (*encoder)->Encode(std::span<const float>(pcm.data() + i, std::min<size_t>(1920, pcm.size() - i)));
    EXPECT_TRUE(pages.ok());
    out += *pages;
  }
  if (finish) out += *(*encoder)->Finish();
  return out;
}

std::vector<float> Decode(const std::string& ogg) {
  auto decoder = OggOpusStreamDecoder::Create();
  EXPECT_TRUE(decoder.ok());
  auto pcm = (*decoder)->Decode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ogg.data()), ogg.size()));
  EXPECT_TRUE(pcm.ok()) << pcm.status();
  return pcm.ok() ? *pcm : std::vector<float>{};
}

class WsChatTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({"--dialogue", TinyMoshiModel(), "--max-dialogue-streams", "1", "--threads", "1", "--http",
                                 "127.0.0.1:0"},
                                /*with_stt=*/false);
    ASSERT_TRUE(server_->ok()) << "monologue serve did not start";
    http_ = server_->HttpAddress();
    ASSERT_FALSE(http_.empty());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static ServerProcess* server_;
  static std::string http_;
};
ServerProcess* WsChatTest::server_ = nullptr;
std::string WsChatTest::http_;

TEST_F(WsChatTest, TextAndAudioEqualTheLocalEngine) {
  const std::vector<float> clip = Clip("speech_en");
  // What the client sends: the clip as an Ogg/Opus stream (80 ms of audio per message, as FDB's client).
  const std::string ogg_in = OggOf(clip, /*finish=*/true);
  const std::vector<float> input = Decode(ogg_in);  // what the server hears
  const int64_t frames = static_cast<int64_t>(input.size()) / 1920;
  ASSERT_GT(frames, 20);

  // The local engine on the same input and seed.
  std::vector<std::string> want_pieces;
  std::vector<float> want_audio;
  {
    DialogueEngineOptions o;
    o.threads = 1;
    auto engine = DialogueEngine::Load(TinyMoshiModel(), o);
    ASSERT_TRUE(engine.ok()) << engine.status();
    auto session = (*engine)->OpenSession(1234);
    ASSERT_TRUE(session.ok());
    ASSERT_TRUE((*session)->PushAudio(input).ok() && (*engine)->RunUntilIdle().ok());
    for (const DialogueEvent& e : (*session)->PollEvents()) {
      if (e.kind == DialogueEvent::Kind::kAudio) want_audio.insert(want_audio.end(), e.audio.begin(), e.audio.end());
      if (e.kind == DialogueEvent::Kind::kText) want_pieces.push_back(e.text);
    }
  }
  ASSERT_EQ(static_cast<int64_t>(want_audio.size()), frames * 1920);
  ASSERT_FALSE(want_pieces.empty());

  WsClient client(http_, "/api/chat?seed=1234");
  ASSERT_TRUE(client.connected);
  auto handshake = client.Read();
  ASSERT_TRUE(handshake.has_value());
  EXPECT_EQ(handshake->data, std::string(1, '\0'));
  std::thread writer([&] {
    for (size_t i = 0; i < ogg_in.size(); i += 4000) {
      if (!client.Send(std::string(1, '\x01') + ogg_in.substr(i, 4000))) return;
    }
  });
  std::string ogg_out;
  std::vector<std::string> pieces;
  while (auto m = client.Read()) {
    ASSERT_FALSE(m->data.empty());
    if (m->data[0] == 1) ogg_out += m->data.substr(1);
    if (m->data[0] == 2) pieces.push_back(m->data.substr(1));
    ASSERT_NE(m->data[0], 5) << m->data.substr(1);
    // Every frame's text has come once every frame's audio has; then wait for silence.
    if (static_cast<int64_t>(pieces.size()) >= static_cast<int64_t>(want_pieces.size()) &&
        static_cast<int64_t>(Decode(ogg_out).size()) >= (frames - 1) * 1920) {
      client.read_timeout_ms = 1500;
    }
  }
  writer.join();
  EXPECT_EQ(pieces, want_pieces);
  // Moshi's audio: the same Opus stream as the local audio coded frame by frame (the server's encoder has
  // not flushed its last frame: compare what was sent).
  const std::vector<float> got = Decode(ogg_out);
  const std::vector<float> want = Decode(OggOf(want_audio, /*finish=*/false));
  ASSERT_GE(got.size(), static_cast<size_t>((frames - 1) * 1920));
  ASSERT_LE(got.size(), want.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  EXPECT_LT(std::sqrt(num / std::max(den, 1e-24)), 1e-3);
}

TEST_F(WsChatTest, FullServerBadOpusUnknownKindAndARepeatedParameterGetTheErrorKind) {
  {
    WsClient a(http_, "/api/chat");
    ASSERT_TRUE(a.connected);
    ASSERT_TRUE(a.Read().has_value());  // handshake: a holds the only slot
    WsClient b(http_, "/api/chat");
    ASSERT_TRUE(b.connected);
    auto error = b.Read();
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->data[0], 5);
    EXPECT_NE(error->data.find("no free dialogue slot"), std::string::npos) << error->data;
    EXPECT_FALSE(b.Read().has_value());
    EXPECT_TRUE(b.closed);
  }
  for (const std::string& bad : {std::string("\x01not an ogg page at all, not at all......", 41), std::string("\x09zz", 3)}) {
    // The slot of the connection above comes back once the server has seen it go.
    bool tested = false;
    for (int attempt = 0; attempt < 50 && !tested; ++attempt) {
      WsClient c(http_, "/api/chat");
      ASSERT_TRUE(c.connected);
      auto first = c.Read();
      ASSERT_TRUE(first.has_value());
      if (first->data[0] == 5) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      ASSERT_TRUE(c.Send(bad));
      std::string error;
      while (auto m = c.Read()) {
        if (!m->data.empty() && m->data[0] == 5) error = m->data.substr(1);
      }
      EXPECT_FALSE(error.empty());
      EXPECT_TRUE(c.closed);
      tested = true;
    }
    EXPECT_TRUE(tested);
  }
  {
    // Refused before any slot is taken, whether one is free or not.
    WsClient c(http_, "/api/chat?seed=1&text_topk=5&seed=2");
    ASSERT_TRUE(c.connected);
    auto error = c.Read();
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->data[0], 5);
    EXPECT_NE(error->data.find("query parameter seed is given more than once"), std::string::npos)
        << error->data;
    EXPECT_FALSE(c.Read().has_value());
    EXPECT_TRUE(c.closed);
  }
}

}  // namespace
}  // namespace monologue::service_test
