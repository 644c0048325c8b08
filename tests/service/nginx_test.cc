// Scale-out: two `monologue serve` replicas behind nginx's grpc_pass on loopback (docs/deployment.md).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/service/service_test_util.h"

namespace monologue::service_test {
namespace {

constexpr const char* kNginx = "/usr/sbin/nginx";

bool CanConnect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

double StartedStreams(int metrics_port) {
  return MetricValue(HttpGet(metrics_port, "/metrics"), "monologue_streams_started_total");
}

TEST(NginxTest, TwoReplicasBehindGrpcPassBothServeStreams) {
  if (access(kNginx, X_OK) != 0) {
    GTEST_SKIP() << kNginx
                 << " is absent: install Debian's nginx-light (scripts/setup.sh does) to run this test";
  }
  const char* tmp = std::getenv("MONOLOGUE_TEST_TMP");
  const std::string dir = std::string(tmp != nullptr ? tmp : ".") + "/nginx";
  std::filesystem::create_directories(dir + "/logs");
  std::filesystem::create_directories(dir + "/tmp");

  const int metrics1 = FreePort(), metrics2 = FreePort();
  ServerProcess a({"--max-streams", "2", "--metrics-listen", "127.0.0.1:" + std::to_string(metrics1)});
  ServerProcess b({"--max-streams", "2", "--metrics-listen", "127.0.0.1:" + std::to_string(metrics2)});
  ASSERT_TRUE(a.ok() && b.ok());

  const int port = FreePort();
  {
    std::ofstream conf(dir + "/nginx.conf");
    conf << "daemon off;\nmaster_process off;\nworker_processes 1;\npid " << dir << "/nginx.pid;\n"
         << "error_log " << dir << "/logs/error.log warn;\nevents { worker_connections 64; }\n"
         << "http {\n  access_log off;\n"
         << "  client_body_temp_path " << dir << "/tmp/body;\n  proxy_temp_path " << dir << "/tmp/proxy;\n"
         << "  fastcgi_temp_path " << dir << "/tmp/fcgi;\n  uwsgi_temp_path " << dir << "/tmp/uwsgi;\n"
         << "  scgi_temp_path " << dir << "/tmp/scgi;\n"
         << "  upstream monologue {\n    server " << a.address() << ";\n    server " << b.address()
         << ";\n    keepalive 8;\n  }\n"
         << "  server {\n    listen 127.0.0.1:" << port << " http2;\n"
         << "    client_max_body_size 0;\n    client_body_timeout 1h;\n"
         << "    grpc_read_timeout 1h;\n    grpc_send_timeout 1h;\n"
         << "    location / { grpc_pass grpc://monologue; }\n  }\n}\n";
  }
  test_process::ChildProcess nginx({kNginx, "-p", dir, "-e", dir + "/logs/error.log", "-c", dir + "/nginx.conf"});
  ASSERT_TRUE(nginx.started());
  bool up = false;
  for (int i = 0; i < 200 && !up; ++i) {
    up = CanConnect(port);
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  if (!up) {
    std::ifstream log(dir + "/logs/error.log");
    FAIL() << "nginx did not start; its log:\n" << std::string(std::istreambuf_iterator<char>(log), {});
  }

  const std::vector<float> fr = Clip("speech_fr");
  const std::vector<Word> want = EngineWords(fr);
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  for (int i = 0; i < 4; ++i) {
    StreamResult r = RunStream(channel.get(), Pcm16Bytes(fr));
    EXPECT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.words, want) << "stream " << i;
  }
  const double on_a = StartedStreams(metrics1);
  const double on_b = StartedStreams(metrics2);
  EXPECT_EQ(on_a + on_b, 4);
  EXPECT_GE(on_a, 1) << "replica A served no stream";
  EXPECT_GE(on_b, 1) << "replica B served no stream";

  nginx.Signal(SIGTERM);
  EXPECT_NE(nginx.Wait(10), -1) << "nginx did not stop on SIGTERM";
}

}  // namespace
}  // namespace monologue::service_test
