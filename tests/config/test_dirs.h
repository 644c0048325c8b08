// Scratch directories for the config tests. std::filesystem::remove_all is not used: libtorch.so exports
// its own copy of it, which crashes (null call) on non-empty directories when the test links libtorch.
#pragma once

#include <ftw.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace monologue::testing_dirs {

inline int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

inline void RemoveTree(const std::filesystem::path& dir) {
  ::nftw(dir.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

// A fresh, empty directory below $MONOLOGUE_TEST_TMP (or the working directory).
inline std::filesystem::path FreshDir(const std::string& suite, const std::string& name) {
  const char* base = std::getenv("MONOLOGUE_TEST_TMP");
  std::filesystem::path dir = std::filesystem::path(base != nullptr ? base : ".") / suite / name;
  RemoveTree(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace monologue::testing_dirs
