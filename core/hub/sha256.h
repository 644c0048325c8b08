// SHA-256 (FIPS 180-4), to check downloaded LFS files against their etag. Torch-free, no dependencies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace monologue::hub {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  // Lower-case hex digest; the object must not be updated afterwards.
  std::string HexDigest();

 private:
  void Block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

// Hex SHA-256 of a whole file.
absl::StatusOr<std::string> Sha256File(const std::filesystem::path& path);

}  // namespace monologue::hub
