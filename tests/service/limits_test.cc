// Server paths that only hostile or broken clients take: server reflection, a client that stops reading,
// a client that goes quiet, a stream longer than the server allows. Each must end that stream with its
// status, free its slot, and leave the other streams as they were.
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <future>
#include <string>

#include "tests/service/service_test_util.h"

namespace monologue::service_test {
namespace {

// The service names a server lists through grpc.reflection.v1alpha (a generic call: the reflection protos
// are not installed with Debian's gRPC). Request: {list_services: ""} (field 7); the raw response bytes
// hold every name.
std::string ReflectionListing(grpc::Channel* channel) {
  grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  auto next = [&](intptr_t want) { return cq.Next(&tag, &ok) && reinterpret_cast<intptr_t>(tag) == want && ok; };
  call->StartCall(reinterpret_cast<void*>(1));
  if (!next(1)) return "start failed";
  const std::string request("\x3a\x00", 2);
  grpc::Slice slice(request);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  if (!next(2)) return "write failed";
  call->WritesDone(reinterpret_cast<void*>(3));
  if (!next(3)) return "writes-done failed";
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(4));
  std::string bytes;
  if (next(4)) {
    std::vector<grpc::Slice> slices;
    in.Dump(&slices);
    for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  next(5);
  return status.ok() ? bytes : "status " + std::to_string(status.error_code()) + ": " + status.error_message();
}

class LimitsTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    en_ = new std::vector<float>(Clip("speech_en"));
    fr_ = new std::vector<float>(Clip("speech_fr"));
    fr_words_ = new std::vector<Word>(EngineWords(*fr_));
  }
  static void TearDownTestSuite() {
    delete en_;
    delete fr_;
    delete fr_words_;
  }
  static std::vector<float>* en_;
  static std::vector<float>* fr_;
  static std::vector<Word>* fr_words_;
};
std::vector<float>* LimitsTest::en_ = nullptr;
std::vector<float>* LimitsTest::fr_ = nullptr;
std::vector<Word>* LimitsTest::fr_words_ = nullptr;

TEST_F(LimitsTest, ReflectionListsTheServedServices) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok());
  auto channel = server.Channel();
  const std::string listing = ReflectionListing(channel.get());
  EXPECT_NE(listing.find("monologue.v1.Transcription"), std::string::npos) << listing;
  EXPECT_NE(listing.find("grpc.health.v1.Health"), std::string::npos) << listing;
  EXPECT_EQ(listing.find("monologue.v1.Synthesis"), std::string::npos) << "not served here: " << listing;
}

// A client that sends and never reads: once its responses back up the server stops taking its audio (what
// HTTP/2 already buffered aside) and holds at most --max-pending-responses for it; the stream then ends
// (idle timeout, or the response bound), its slot is freed, and a stream beside it is unaffected.
TEST_F(LimitsTest, AClientThatStopsReadingIsPausedThenEndedAndOthersAreUnaffected) {
  const int metrics_port = FreePort();
  ServerProcess server({"--max-streams", "2", "--idle-timeout", "2", "--max-pending-responses", "8",
                        "--max-ahead-seconds", "0.5", "--metrics-listen",
                        "127.0.0.1:" + std::to_string(metrics_port)});
  ASSERT_TRUE(server.ok());
  // A small receive window so that unread responses fill it quickly.
  grpc::ChannelArguments args;
  args.SetInt("grpc.http2.lookahead_bytes", 1024);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto channel = grpc::CreateCustomChannel(server.address(), grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Transcription::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub->Transcribe(&ctx);
  ASSERT_TRUE(stream->Write(ConfigRequest(v1::LINEAR_PCM_S16LE, 24000, /*vad=*/true)));
  std::string long_audio;
  for (int i = 0; i < 12; ++i) long_audio += Pcm16Bytes(*en_);  // ~55 s
  std::thread writer([&] {
    for (size_t pos = 0; pos < long_audio.size(); pos += 3840) {
      v1::TranscribeRequest r;
      r.set_audio(long_audio.substr(pos, 3840));
      if (!stream->Write(r)) return;  // the server ended the stream
    }
  });
  // Meanwhile another stream runs normally.
  auto other = std::async(std::launch::async, [&] { return RunStream(channel.get(), Pcm16Bytes(*fr_)); });
  StreamResult normal = other.get();
  EXPECT_TRUE(normal.status.ok()) << normal.status.error_message();
  EXPECT_EQ(normal.words, *fr_words_);
  // Only now read the stalled stream: the server ended it before it was through its audio.
  v1::TranscribeResponse response;
  int vad_events = 0;
  while (stream->Read(&response)) vad_events += response.has_vad() ? 1 : 0;
  writer.join();
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.error_code() == grpc::StatusCode::OUT_OF_RANGE ||
              status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_code() << ": " << status.error_message();
  EXPECT_LT(vad_events, static_cast<int>(long_audio.size() / 3840)) << "the stream ran to its end";
  EXPECT_TRUE(WaitForMetric(metrics_port, "monologue_streams_open", 0));
}

TEST_F(LimitsTest, AQuietClientEndsOnTheIdleTimeoutAndFreesItsSlot) {
  ServerProcess server({"--max-streams", "1", "--idle-timeout", "0.5"});
  ASSERT_TRUE(server.ok());
  auto channel = server.Channel();
  StreamOptions quiet;
  quiet.half_close = false;  // sends its audio, then neither more audio nor the end
  StreamResult r = RunStream(channel.get(), Pcm16Bytes(std::vector<float>(en_->begin(), en_->begin() + 24000)), quiet);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << r.status.error_message();
  EXPECT_NE(r.status.error_message().find("no request for 0.5"), std::string::npos) << r.status.error_message();
  // The only slot is free again (the server frees it as it ends the stream, before the client hears).
  StreamResult after;
  for (int attempt = 0; attempt < 40; ++attempt) {
    after = RunStream(channel.get(), Pcm16Bytes(*fr_));
    if (after.status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.words, *fr_words_);
}

TEST_F(LimitsTest, AStreamPastTheMaximumDurationEndsWithOutOfRangeKeepingItsWords) {
  ServerProcess server({"--max-streams", "1", "--max-stream-seconds", "2"});
  ASSERT_TRUE(server.ok());
  auto channel = server.Channel();
  StreamResult r = RunStream(channel.get(), Pcm16Bytes(*fr_));  // ~4.5 s of audio
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << r.status.error_message();
  EXPECT_NE(r.status.error_message().find("2 s of audio"), std::string::npos) << r.status.error_message();
  // The words decided before the limit were delivered, and they are the start of the full transcript.
  ASSERT_LE(r.words.size(), fr_words_->size());
  for (size_t i = 0; i < r.words.size(); ++i) EXPECT_EQ(r.words[i], (*fr_words_)[i]) << i;
  // A following stream within the limit works.
  StreamResult ok = RunStream(channel.get(), Pcm16Bytes(std::vector<float>(fr_->begin(), fr_->begin() + 36000)));
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
}

}  // namespace
}  // namespace monologue::service_test
