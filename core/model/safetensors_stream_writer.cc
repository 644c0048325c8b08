#include "core/model/safetensors_stream_writer.h"

#include <ATen/ATen.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/model/checkpoint_schema.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace monologue {
namespace {

size_t ItemSize(at::ScalarType dtype) { return c10::elementSize(dtype); }

}  // namespace

std::string SafeTensorsDtypeName(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return "F32";
    case at::kBFloat16:
      return "BF16";
    case at::kHalf:
      return "F16";
    case at::kDouble:
      return "F64";
    case at::kLong:
      return "I64";
    case at::kInt:
      return "I32";
    case at::kByte:
      return "U8";
    case at::kChar:
      return "I8";
    case at::kBool:
      return "BOOL";
    default:
      return "";
  }
}

absl::StatusOr<std::unique_ptr<SafeTensorsStreamWriter>> SafeTensorsStreamWriter::Create(
    const std::string& path, std::vector<Entry> entries, const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const Entry& e : entries) {
    if (e.name.empty() || e.name == "__metadata__" || !names.insert(e.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("writing ", path, ": empty, reserved or duplicate tensor name '", e.name, "'"));
    }
    const std::string dtype = SafeTensorsDtypeName(e.dtype);
    if (dtype.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("writing ", path, ": unsupported dtype for ", e.name));
    }
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      if (d < 0)
        return absl::InvalidArgumentError(absl::StrCat("writing ", path, ": negative dim in ", e.name));
      numel *= static_cast<uint64_t>(d);
    }
    const uint64_t nbytes = numel * ItemSize(e.dtype);
    header[e.name] = {{"dtype", dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_size = text.size();

  std::unique_ptr<SafeTensorsStreamWriter> w(new SafeTensorsStreamWriter());
  w->path_ = path;
  ASSIGN_OR_RETURN(OutputFile output, OutputFile::Prepare(path));
  w->output_.emplace(std::move(output));
  w->entries_ = std::move(entries);
  w->file_ = std::fopen(w->output_->write_path().c_str(), "wb");
  if (w->file_ == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", w->output_->write_path(), " (for ",
                                                    path, "): ", std::strerror(errno)));
  }
  if (std::fwrite(&header_size, 8, 1, w->file_) != 1 ||
      std::fwrite(text.data(), 1, text.size(), w->file_) != text.size()) {
    return absl::DataLossError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  w->file_size_ = 8 + header_size + offset;
  return w;
}

SafeTensorsStreamWriter::~SafeTensorsStreamWriter() {
  if (file_ != nullptr) std::fclose(file_);
  // output_'s own destructor removes an uncommitted temporary.
}

const std::string& SafeTensorsStreamWriter::next_name() const {
  static const std::string kEmpty;
  return next_ < entries_.size() ? entries_[next_].name : kEmpty;
}

absl::Status SafeTensorsStreamWriter::Write(const at::Tensor& tensor) {
  if (file_ == nullptr || next_ >= entries_.size()) {
    return absl::FailedPreconditionError(absl::StrCat("writing ", path_, ": no tensor left to write"));
  }
  const Entry& e = entries_[next_];
  if (tensor.scalar_type() != e.dtype || tensor.sizes().vec() != e.shape) {
    return absl::InvalidArgumentError(absl::StrCat("writing ", path_, ": tensor ", e.name, " is ",
                                                   SafeTensorsDtypeName(tensor.scalar_type()), " ",
                                                   ShapeString(tensor.sizes().vec()), ", declared ",
                                                   SafeTensorsDtypeName(e.dtype), " ", ShapeString(e.shape)));
  }
  ASSIGN_OR_RETURN(at::Tensor t, GuardTorch(absl::StrCat("writing ", e.name),
                                            [&] { return tensor.to(at::kCPU).contiguous(); }));
  const size_t nbytes = t.nbytes();
  if (nbytes > 0 && std::fwrite(t.data_ptr(), 1, nbytes, file_) != nbytes) {
    return absl::DataLossError(absl::StrCat("cannot write ", path_, ": ", std::strerror(errno)));
  }
  ++next_;
  return absl::OkStatus();
}

absl::Status SafeTensorsStreamWriter::Finish() {
  if (next_ != entries_.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("writing ", path_, ": only ", next_, " of ", entries_.size(), " tensors written"));
  }
  if (file_ == nullptr)
    return absl::FailedPreconditionError(absl::StrCat("writing ", path_, ": already finished"));
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) return absl::DataLossError(absl::StrCat("cannot close ", path_, ": ", std::strerror(errno)));
  return output_->Commit();
}

}  // namespace monologue
