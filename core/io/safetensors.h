// Reading and writing the safetensors format (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
// then the raw little-endian tensor bytes.
//
// Reading memory-maps the file; tensors are returned as zero-copy CPU views whose storage keeps the
// mapping alive, for every dtype libtorch has (BOOL, U8, I8, I16, I32, I64, F16, BF16, F32, F64, and the
// F8 kinds). Every header field, offset and size is validated on Open, so a truncated, corrupt or
// oversized file fails there with a status naming the file (and the tensor where one is at fault).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace monologue {

// Dtype names as they appear in the header ("F32", "BF16", ...).
struct SafeTensorInfo {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t data_begin = 0;  // offsets relative to the start of the data section
  uint64_t data_end = 0;
  int64_t numel() const;
};

class SafeTensorsFile {
 public:
  // Maps and validates `path`.
  static absl::StatusOr<std::shared_ptr<const SafeTensorsFile>> Open(const std::string& path);
  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile&) = delete;
  SafeTensorsFile& operator=(const SafeTensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // All tensors, sorted by name.
  const std::vector<SafeTensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const SafeTensorInfo* Find(std::string_view name) const;
  bool Contains(std::string_view name) const { return Find(name) != nullptr; }
  // The "__metadata__" string map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // A CPU tensor viewing the mapped bytes (read-only in spirit: do not write through it). The view
  // keeps this file mapped for as long as it lives. NOT_FOUND names the file and tensor.
  absl::StatusOr<at::Tensor> Load(std::string_view name) const;

 private:
  SafeTensorsFile() = default;
  friend struct SafeTensorsFileAccess;
  std::string path_;
  std::vector<SafeTensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  const uint8_t* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  size_t data_start_ = 0;
  std::weak_ptr<const SafeTensorsFile> self_;
};

// Writes `tensors` (any device, contiguous or not; written in order) and string metadata to `path`
// atomically (temporary file, then rename).
absl::Status WriteSafeTensors(const std::string& path,
                              const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace monologue
