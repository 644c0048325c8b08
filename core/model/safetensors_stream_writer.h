// Writes a safetensors file tensor by tensor without holding the whole model in memory: the header (and
// so every offset) is fixed up front from the declared names, dtypes and shapes, then each tensor's bytes
// are appended in the declared order. `path` is replaced as an OutputFile replaces it (a temporary renamed
// over it on Finish(), removed otherwise, also on SIGINT/SIGTERM), so a failed or abandoned write never
// leaves a half-written file under the final name. Used by the random-weight model generator for multi-GB
// checkpoints (Moshi 7B is 15 GB in bf16).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/output_file.h"

namespace monologue {

class SafeTensorsStreamWriter {
 public:
  struct Entry {
    std::string name;
    at::ScalarType dtype;
    std::vector<int64_t> shape;
  };

  static absl::StatusOr<std::unique_ptr<SafeTensorsStreamWriter>> Create(
      const std::string& path, std::vector<Entry> entries,
      const std::map<std::string, std::string>& metadata = {});
  ~SafeTensorsStreamWriter();  // leaves `path` as it was unless Finish() succeeded

  // Appends the next tensor; it must match the next entry's dtype and shape (it is converted to CPU and
  // made contiguous, not cast).
  absl::Status Write(const at::Tensor& tensor);
  // Name of the next entry to write ("" when all are written).
  const std::string& next_name() const;
  // Checks that every entry was written, closes and renames into place.
  absl::Status Finish();
  // Total file size.
  uint64_t file_size() const { return file_size_; }

 private:
  SafeTensorsStreamWriter() = default;
  std::string path_;
  std::optional<OutputFile> output_;
  std::vector<Entry> entries_;
  size_t next_ = 0;
  std::FILE* file_ = nullptr;
  uint64_t file_size_ = 0;
};

// "F32", "BF16", "F16", ... for the float types the generator writes.
std::string SafeTensorsDtypeName(at::ScalarType dtype);

}  // namespace monologue
