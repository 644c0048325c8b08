// Starts tests/hub/fake_hub.py (python3, loopback only, bounded lifetime) for one test and stops it (by its
// pid) afterwards. Tests skip with a message when python3 is missing.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace monologue::testing_hub {

inline std::string FakeHubScript() { return std::string(MONOLOGUE_TEST_DATA_DIR) + "/../hub/fake_hub.py"; }

inline bool HavePython() { return std::system("python3 -c 'import http.server' >/dev/null 2>&1") == 0; }

inline std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class FakeHub {
 public:
  // Serves the repos under `root` (root/OWNER/NAME/...); state files go to `dir`.
  FakeHub(const std::filesystem::path& root, const std::filesystem::path& dir) : dir_(dir) {
    std::filesystem::create_directories(dir);
    const std::string port_file = (dir / "port").string(), log = (dir / "requests.log").string();
    std::filesystem::remove(port_file);
    std::vector<std::string> args = {"python3", FakeHubScript(), "--root", root.string(), "--port-file",
                                     port_file, "--log",         log,      "--lifetime",  "90"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, "python3", nullptr, nullptr, argv.data(), environ) != 0) {
      pid_ = -1;
      return;
    }
    for (int i = 0; i < 200 && !std::filesystem::exists(port_file); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    port_ = std::atoi(ReadAll(port_file).c_str());
  }
  ~FakeHub() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  bool ok() const { return pid_ > 0 && port_ > 0; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> Requests() const {
    std::vector<std::string> out;
    std::istringstream in(ReadAll(dir_ / "requests.log"));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace monologue::testing_hub
