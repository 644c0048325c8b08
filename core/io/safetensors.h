// Reading and writing the safetensors format (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
// then the raw little-endian tensor bytes.
//
// Reading memory-maps the file; tensors are returned as zero-copy CPU views whose storage keeps the
// mapping alive, for every dtype libtorch has (BOOL, U8, I8, I16, I32, I64, U16, U32, U64, F16, BF16, F32,
// F64, C64, F8_E4M3, F8_E5M2, F8_E8M0). The sub-byte kinds (F4, F6_E2M3, F6_E3M2) are refused on Open.
// Every header field, offset and size is validated on Open with the same rules as the reference `safetensors`
// package (tensors tile the data section exactly: no gaps, no overlaps, no trailing bytes), so a truncated,
// corrupt or oversized file fails there with a status naming the file (and the tensor where one is at fault).
//
// A SafeTensorsFile is immutable once opened: Find/Load may be called from several threads at once.
//
// Status codes: a file that cannot be opened or mapped gets the errno's code (NOT_FOUND, PERMISSION_DENIED,
// ...); every problem with the file's contents is INVALID_ARGUMENT; Load of an absent tensor is NOT_FOUND.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// The libtorch dtype for a safetensors dtype name, or nullopt when there is none (unknown name or a
// sub-byte kind). And back: nullopt for torch dtypes safetensors cannot hold (complex128, quantized, ...).
std::optional<at::ScalarType> SafeTensorsDtypeToTorch(std::string_view dtype);
std::optional<std::string> TorchDtypeToSafeTensors(at::ScalarType dtype);

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

  // A CPU tensor viewing the mapped bytes. The view keeps this file mapped for as long as it (or any
  // tensor sharing its storage) lives, so it may outlive this object. The mapping is private
  // copy-on-write: writing through the view never touches the file (and never faults), but the write IS
  // seen by later Loads of the same tensor from this object, so treat the result as read-only and clone
  // before modifying in place. Data that is not aligned to its element size (possible only in files not
  // written by a safetensors writer) is copied instead. NOT_FOUND names the file and tensor.
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

// Load() plus checks: the tensor must have `dtype` (when given) and `shape` (when given; -1 matches any
// size in that dimension). Mismatches are INVALID_ARGUMENT naming the file, the tensor, what it has and
// what was expected. No conversion is done.
absl::StatusOr<at::Tensor> LoadTensor(const SafeTensorsFile& file, std::string_view name,
                                      std::optional<at::ScalarType> dtype = std::nullopt,
                                      std::optional<std::vector<int64_t>> shape = std::nullopt);

// Writes `tensors` (any device, contiguous or not; written in order) and string metadata to `path`
// atomically (temporary file in the same folder, then rename). Names must be unique, non-empty and not
// "__metadata__"; dtypes must have a safetensors name. The header is padded with spaces to a multiple of
// 8 bytes, so the data section is 8-byte aligned; a tensor is element-aligned (zero-copy on Load) unless
// an earlier tensor's byte size breaks that (the format allows no padding between tensors: put the
// tensors with wider elements first to avoid it).
absl::Status WriteSafeTensors(const std::string& path,
                              const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace monologue
