// main() for every GoogleTest binary of the project. CTest runs each test case as its own process, two at a
// time (or more), so every process gets a scratch folder of its own: MONOLOGUE_TEST_TMP (set per suite by
// CMake) becomes <that>/<pid>, and the process works inside it. Tests that write fixed file names
// ("stderr.txt", "bad.safetensors") then never see each other's files. Without MONOLOGUE_TEST_TMP (a binary
// run by hand) the base is the system's temporary folder, never the source tree. A passing process removes
// its folder; a failing one leaves it for inspection.
#include <ftw.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace {

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  const char* base_env = std::getenv("MONOLOGUE_TEST_TMP");
  const std::filesystem::path base =
      base_env != nullptr && *base_env != '\0' ? std::filesystem::path(base_env)
                                               : std::filesystem::temp_directory_path() / "monologue-tests";
  const std::filesystem::path dir = base / std::to_string(::getpid());
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    std::fprintf(stderr, "test main: cannot create %s: %s\n", dir.c_str(), error.message().c_str());
    return 2;
  }
  ::setenv("MONOLOGUE_TEST_TMP", dir.c_str(), 1);
  // Tests never use the network: a model missing from a test's cache must fail, not be fetched from the Hub
  // (the Hub tests pass their options explicitly, against a fake Hub on 127.0.0.1).
  ::setenv("HF_HUB_OFFLINE", "1", 1);
  if (::chdir(dir.c_str()) != 0) {
    std::perror("test main: chdir");
    return 2;
  }
  const int result = RUN_ALL_TESTS();
  if (result == 0) {
    // nftw rather than std::filesystem::remove_all: libtorch exports a broken copy of the latter.
    ::chdir(base.c_str());
    ::nftw(dir.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
  }
  return result;
}
