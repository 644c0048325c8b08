#include <chrono>
#include <memory>
#include <string>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/generic/async_generic_service.h>
#include <gtest/gtest.h>

#include "tests/link/torch_part.h"

namespace {

TEST(GrpcTorchLinkTest, ProtobufAndTorchWorkInOneProcess) {
  google::protobuf::Struct message;
  (*message.mutable_fields())["frames"].set_number_value(12.5);
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(message, &json).ok());
  EXPECT_NE(json.find("12.5"), std::string::npos);
  EXPECT_FLOAT_EQ(monologue::link_test::TorchArangeSum(6), 15.0f);
}

TEST(GrpcTorchLinkTest, InProcessServerAcceptsConnectionsNextToTorch) {
  grpc::CallbackGenericService service;  // answers UNIMPLEMENTED to everything; enough to serve
  grpc::ServerBuilder builder;
  builder.RegisterCallbackGenericService(&service);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  EXPECT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)));
  EXPECT_FLOAT_EQ(monologue::link_test::TorchArangeSum(4), 6.0f);
  server->Shutdown();
}

}  // namespace
