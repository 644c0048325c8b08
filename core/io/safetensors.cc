#include "core/io/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/io/output_file.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; big-endian hosts would need byte swapping");

namespace monologue {
namespace {

// The reference implementation refuses headers above 100 MB; so do we.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeEntry {
  const char* name;
  size_t itemsize;  // 0: sub-byte kind, recognised but not supported
  std::optional<at::ScalarType> torch;
};

const std::vector<DtypeEntry>& Dtypes() {
  static const std::vector<DtypeEntry> kDtypes = {
      {"BOOL", 1, at::kBool},
      {"U8", 1, at::kByte},
      {"I8", 1, at::kChar},
      {"I16", 2, at::kShort},
      {"U16", 2, at::kUInt16},
      {"I32", 4, at::kInt},
      {"U32", 4, at::kUInt32},
      {"I64", 8, at::kLong},
      {"U64", 8, at::kUInt64},
      {"F16", 2, at::kHalf},
      {"BF16", 2, at::kBFloat16},
      {"F32", 4, at::kFloat},
      {"F64", 8, at::kDouble},
      {"C64", 8, at::kComplexFloat},
      {"F8_E4M3", 1, at::kFloat8_e4m3fn},
      {"F8_E5M2", 1, at::kFloat8_e5m2},
      {"F8_E8M0", 1, at::kFloat8_e8m0fnu},
      {"F4", 0, std::nullopt},
      {"F6_E2M3", 0, std::nullopt},
      {"F6_E3M2", 0, std::nullopt},
  };
  return kDtypes;
}

const DtypeEntry* FindDtype(std::string_view name) {
  for (const DtypeEntry& e : Dtypes()) {
    if (name == e.name) return &e;
  }
  return nullptr;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Debian's Abseil has its own absl::string_view: std::string_view needs converting for StrCat.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status FileError(const std::string& path, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", Sv(what)));
}

absl::Status TensorError(const std::string& path, std::string_view tensor, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": tensor \"", Sv(tensor), "\": ", Sv(what)));
}

absl::Status ErrnoError(int err, std::string_view what, const std::string& path) {
  return absl::ErrnoToStatus(err, absl::StrCat(Sv(what), " ", path));
}

// A JSON value for an error message; nested values are not dumped (dumping recurses, and a hostile header
// may nest deeply).
std::string Snippet(const nlohmann::json& value) {
  if (value.is_structured()) return absl::StrCat("a JSON ", value.type_name());
  std::string text = value.dump();
  if (text.size() > 80) text = absl::StrCat(text.substr(0, 77), "...");
  return text;
}

// Closes a descriptor on scope exit.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

int64_t SafeTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::optional<at::ScalarType> SafeTensorsDtypeToTorch(std::string_view dtype) {
  const DtypeEntry* e = FindDtype(dtype);
  return e == nullptr ? std::nullopt : e->torch;
}

std::optional<std::string> TorchDtypeToSafeTensors(at::ScalarType dtype) {
  for (const DtypeEntry& e : Dtypes()) {
    if (e.torch == dtype) return std::string(e.name);
  }
  return std::nullopt;
}

// Parses and validates the header; fills `file` (everything but the mapping).
struct SafeTensorsFileAccess {
  static absl::Status ParseHeader(SafeTensorsFile& file, std::string_view header, uint64_t data_size) {
    const std::string& path = file.path_;
    // Duplicate keys are legal JSON and nlohmann keeps only one of them, so they are caught while parsing.
    std::string duplicate;
    std::set<std::string> seen;
    nlohmann::json::parser_callback_t callback = [&](int depth, nlohmann::json::parse_event_t event,
                                                     nlohmann::json& parsed) {
      if (event == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string()) {
        if (!seen.insert(parsed.get<std::string>()).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
      }
      return true;
    };
    nlohmann::json root = nlohmann::json::parse(header.begin(), header.end(), callback,
                                                /*allow_exceptions=*/false);
    if (root.is_discarded()) return FileError(path, "header is not valid JSON");
    if (!root.is_object()) return FileError(path, "header is not a JSON object");
    if (!duplicate.empty()) {
      return TensorError(path, duplicate, "name appears more than once in the header");
    }

    std::vector<SafeTensorInfo> tensors;
    for (const auto& [name, entry] : root.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) return FileError(path, "\"__metadata__\" is not a JSON object");
        for (const auto& [key, value] : entry.items()) {
          if (!value.is_string()) {
            return FileError(path, absl::StrCat("\"__metadata__\" value for \"", key, "\" is not a string (",
                                                value.type_name(), ")"));
          }
          file.metadata_[key] = value.get<std::string>();
        }
        continue;
      }
      if (!entry.is_object()) return TensorError(path, name, "header entry is not a JSON object");
      SafeTensorInfo info;
      info.name = name;
      for (const char* field : {"dtype", "shape", "data_offsets"}) {
        if (!entry.contains(field)) return TensorError(path, name, absl::StrCat("missing \"", field, "\""));
      }
      const nlohmann::json& dtype = entry["dtype"];
      if (!dtype.is_string()) return TensorError(path, name, "\"dtype\" is not a string");
      info.dtype = dtype.get<std::string>();
      const DtypeEntry* dtype_entry = FindDtype(info.dtype);
      if (dtype_entry == nullptr)
        return TensorError(path, name, absl::StrCat("unknown dtype \"", info.dtype, "\""));
      if (dtype_entry->itemsize == 0) {
        return TensorError(path, name, absl::StrCat("unsupported sub-byte dtype \"", info.dtype, "\""));
      }

      const nlohmann::json& shape = entry["shape"];
      if (!shape.is_array()) return TensorError(path, name, "\"shape\" is not an array");
      uint64_t nbytes = dtype_entry->itemsize;
      bool overflow = false;
      for (const nlohmann::json& dim : shape) {
        if (dim.is_number_integer() && !dim.is_number_unsigned()) {
          return TensorError(path, name,
                             absl::StrCat("negative dimension ", dim.get<int64_t>(), " in \"shape\""));
        }
        if (!dim.is_number_unsigned()) {
          return TensorError(path, name, absl::StrCat("\"shape\" holds a non-integer: ", Snippet(dim)));
        }
        uint64_t d = dim.get<uint64_t>();
        if (d > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(nbytes, d, &nbytes))
          overflow = true;
        info.shape.push_back(static_cast<int64_t>(std::min<uint64_t>(d, INT64_MAX)));
      }
      if (overflow)
        return TensorError(path, name, absl::StrCat("shape ", ShapeString(info.shape), " is too large"));

      const nlohmann::json& offsets = entry["data_offsets"];
      if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
          !offsets[1].is_number_unsigned()) {
        return TensorError(
            path, name,
            absl::StrCat("\"data_offsets\" must be two non-negative integers, got ",
                         offsets.is_array() && offsets.size() == 2
                             ? absl::StrCat("[", Snippet(offsets[0]), ", ", Snippet(offsets[1]), "]")
                             : Snippet(offsets)));
      }
      info.data_begin = offsets[0].get<uint64_t>();
      info.data_end = offsets[1].get<uint64_t>();
      if (info.data_end < info.data_begin) {
        return TensorError(
            path, name,
            absl::StrCat("data_offsets [", info.data_begin, ", ", info.data_end, "] end before they begin"));
      }
      if (info.data_end - info.data_begin != nbytes) {
        return TensorError(path, name,
                           absl::StrCat("data_offsets [", info.data_begin, ", ", info.data_end, "] span ",
                                        info.data_end - info.data_begin, " bytes but ", info.dtype, " ",
                                        ShapeString(info.shape), " needs ", nbytes));
      }
      if (info.data_end > data_size) {
        return TensorError(
            path, name,
            absl::StrCat("data_offsets [", info.data_begin, ", ", info.data_end,
                         "] run past the end of the data section (", data_size, " bytes): truncated file?"));
      }
      tensors.push_back(std::move(info));
    }

    // Like the reference, the tensors must tile the data section: sorted by offset, each begins where the
    // previous one ends, and the last one ends at the end of the file.
    std::vector<const SafeTensorInfo*> by_offset;
    for (const SafeTensorInfo& t : tensors) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](const SafeTensorInfo* a, const SafeTensorInfo* b) {
      return std::tie(a->data_begin, a->data_end, a->name) < std::tie(b->data_begin, b->data_end, b->name);
    });
    uint64_t expected_begin = 0;
    std::string previous;
    for (const SafeTensorInfo* t : by_offset) {
      if (t->data_begin < expected_begin) {
        return TensorError(
            path, t->name,
            absl::StrCat("data_offsets [", t->data_begin, ", ", t->data_end, "] overlap tensor \"", previous,
                         "\" (which ends at ", expected_begin, ")"));
      }
      if (t->data_begin > expected_begin) {
        return TensorError(
            path, t->name,
            absl::StrCat("data_offsets [", t->data_begin, ", ", t->data_end, "] leave a gap of ",
                         t->data_begin - expected_begin, " unused bytes before them"));
      }
      expected_begin = t->data_end;
      previous = t->name;
    }
    if (expected_begin != data_size) {
      return FileError(
          path, absl::StrCat("the tensors cover ", expected_begin, " bytes of the data section but it has ",
                             data_size, " (", data_size - expected_begin, " trailing bytes)"));
    }

    std::sort(tensors.begin(), tensors.end(),
              [](const SafeTensorInfo& a, const SafeTensorInfo& b) { return a.name < b.name; });
    file.tensors_ = std::move(tensors);
    return absl::OkStatus();
  }

  static absl::StatusOr<std::shared_ptr<const SafeTensorsFile>> Open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, "cannot open safetensors file", path);
    FdCloser closer{fd};
    struct stat st;
    if (::fstat(fd, &st) != 0) return ErrnoError(errno, "cannot stat safetensors file", path);
    if (!S_ISREG(st.st_mode)) return FileError(path, "not a regular file");
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);
    if (file_size < 8) {
      return FileError(path,
                       absl::StrCat("file is ", file_size,
                                    " bytes, shorter than the 8-byte header length: not a safetensors file"));
    }

    // Not make_shared: the constructor is private.
    std::shared_ptr<SafeTensorsFile> file(new SafeTensorsFile());
    file->path_ = path;
    // PROT_WRITE on a MAP_PRIVATE mapping gives copy-on-write pages: a caller that writes into a loaded
    // tensor changes only its private copy instead of crashing on a read-only page. MAP_NORESERVE: a
    // multi-GB checkpoint must not be charged against swap/commit as if every page were to be copied.
    void* map = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (map == MAP_FAILED) return ErrnoError(errno, "cannot memory-map safetensors file", path);
    file->mapping_ = static_cast<const uint8_t*>(map);
    file->mapping_size_ = file_size;

    uint64_t header_size = 0;
    std::memcpy(&header_size, file->mapping_, 8);
    // torch.save writes a zip archive (before PyTorch 1.6 a bare pickle, protocol 2-5), whose first bytes
    // read as an impossible header length. The reference's loader falls back to torch.load for such files:
    // say what the file is and how to convert it.
    const bool impossible_length = header_size > kMaxHeaderBytes || header_size > file_size - 8;
    if (impossible_length &&
        (std::memcmp(file->mapping_, "PK\x03\x04", 4) == 0 ||
         (file->mapping_[0] == 0x80 && file->mapping_[1] >= 2 && file->mapping_[1] <= 5))) {
      return FileError(
          path,
          "a PyTorch pickle (torch.save), not a safetensors file: monologue reads safetensors only; "
          "convert it with safetensors.torch.save_file(state_dict, 'model.safetensors'), the state "
          "dict being what the reference's loader takes from torch.load: pkg[\"fsdp_best_state\"]"
          "[\"model\"] for an LM, pkg[\"model\"] for Mimi");
    }
    if (header_size > kMaxHeaderBytes) {
      return FileError(path,
                       absl::StrCat("oversized header: the length field says ", header_size, " bytes (limit ",
                                    kMaxHeaderBytes, "): corrupt or not a safetensors file"));
    }
    if (header_size > file_size - 8) {
      return FileError(path, absl::StrCat("header length ", header_size, " runs past the end of the file (",
                                          file_size, " bytes): truncated or not a safetensors file"));
    }
    file->data_start_ = 8 + header_size;
    std::string_view header(reinterpret_cast<const char*>(file->mapping_) + 8, header_size);
    RETURN_IF_ERROR(ParseHeader(*file, header, file_size - file->data_start_));
    file->self_ = file;
    return std::shared_ptr<const SafeTensorsFile>(std::move(file));
  }
};

absl::StatusOr<std::shared_ptr<const SafeTensorsFile>> SafeTensorsFile::Open(const std::string& path) {
  return SafeTensorsFileAccess::Open(path);
}

SafeTensorsFile::~SafeTensorsFile() {
  if (mapping_ != nullptr) ::munmap(const_cast<uint8_t*>(mapping_), mapping_size_);
}

const SafeTensorInfo* SafeTensorsFile::Find(std::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const SafeTensorInfo& t, std::string_view n) { return t.name < n; });
  if (it == tensors_.end() || it->name != name) return nullptr;
  return &*it;
}

absl::StatusOr<at::Tensor> SafeTensorsFile::Load(std::string_view name) const {
  const SafeTensorInfo* info = Find(name);
  if (info == nullptr) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor named \"", Sv(name), "\""));
  }
  std::optional<at::ScalarType> dtype = SafeTensorsDtypeToTorch(info->dtype);
  if (!dtype) {  // Open refuses these already; kept for safety.
    return absl::UnimplementedError(absl::StrCat(path_, ": tensor \"", Sv(name), "\": dtype ", info->dtype,
                                                 " has no libtorch equivalent"));
  }
  std::shared_ptr<const SafeTensorsFile> self = self_.lock();
  if (!self) return absl::InternalError(absl::StrCat(path_, ": file object not owned by a shared_ptr"));
  uint8_t* data = const_cast<uint8_t*>(mapping_) + data_start_ + info->data_begin;
  const size_t nbytes = info->data_end - info->data_begin;
  const size_t itemsize = at::elementSize(*dtype);
  return GuardTorch(absl::StrCat(path_, ": tensor \"", Sv(name), "\""), [&]() -> at::Tensor {
    at::TensorOptions options = at::TensorOptions().dtype(*dtype).device(at::kCPU);
    if (reinterpret_cast<uintptr_t>(data) % itemsize != 0) {
      // ATen's kernels read elements through typed (and vectorised) pointers, which must be aligned to
      // the element size; a misaligned view would be undefined behaviour, so such data is copied.
      at::Tensor copy = at::empty(info->shape, options);
      if (nbytes > 0) std::memcpy(copy.data_ptr(), data, nbytes);
      return copy;
    }
    // The deleter owns a reference to the file, so the mapping lives as long as the tensor's storage.
    return at::from_blob(
        data, info->shape, [self](void*) {}, options);
  });
}

absl::StatusOr<at::Tensor> LoadTensor(const SafeTensorsFile& file, std::string_view name,
                                      std::optional<at::ScalarType> dtype,
                                      std::optional<std::vector<int64_t>> shape) {
  ASSIGN_OR_RETURN(at::Tensor tensor, file.Load(name));
  const SafeTensorInfo* info = file.Find(name);
  if (dtype && tensor.scalar_type() != *dtype) {
    std::optional<std::string> want = TorchDtypeToSafeTensors(*dtype);
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor \"", Sv(name), "\" has dtype ",
                                                   info->dtype, ", expected ",
                                                   want ? *want : c10::toString(*dtype)));
  }
  if (shape) {
    bool match = shape->size() == info->shape.size();
    for (size_t i = 0; match && i < shape->size(); ++i) {
      match = (*shape)[i] == -1 || (*shape)[i] == info->shape[i];
    }
    if (!match) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor \"", Sv(name), "\" has shape ",
                                                     ShapeString(info->shape), ", expected ",
                                                     ShapeString(*shape)));
    }
  }
  return tensor;
}

namespace {

absl::Status WriteAll(int fd, const void* data, size_t size, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "cannot write", path);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteSafeTensors(const std::string& path,
                              const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  // Header first (it fixes every offset), then the bytes in the given order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  std::vector<at::Tensor> cpu;
  cpu.reserve(tensors.size());
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const std::string where = absl::StrCat("writing ", path, ": tensor \"", name, "\"");
    if (name.empty() || name == "__metadata__") {
      return absl::InvalidArgumentError(absl::StrCat(where, ": reserved or empty name"));
    }
    if (!names.insert(name).second)
      return absl::InvalidArgumentError(absl::StrCat(where, ": duplicate name"));
    if (!tensor.defined()) return absl::InvalidArgumentError(absl::StrCat(where, ": undefined tensor"));
    std::optional<std::string> dtype = TorchDtypeToSafeTensors(tensor.scalar_type());
    if (!dtype) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": dtype ", c10::toString(tensor.scalar_type()),
                                                     " has no safetensors equivalent"));
    }
    // (a named capture: clang before 16 cannot capture a structured binding)
    ASSIGN_OR_RETURN(at::Tensor t, GuardTorch(where, [&source = tensor] {
                       return source.to(at::kCPU).resolve_conj().resolve_neg().contiguous();
                     }));
    const uint64_t nbytes = t.nbytes();
    header[name] = {
        {"dtype", *dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu.push_back(std::move(t));
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const uint64_t header_size = header_text.size();

  // Written next to `path` and renamed over it when complete (OutputFile); errors name `path`, the file the
  // caller asked for (the temporary name would only puzzle).
  ASSIGN_OR_RETURN(OutputFile output, OutputFile::Prepare(path));
  int fd = ::open(output.write_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "cannot create", path);
  FdCloser closer{fd};
  RETURN_IF_ERROR(WriteAll(fd, &header_size, 8, path));
  RETURN_IF_ERROR(WriteAll(fd, header_text.data(), header_text.size(), path));
  for (const at::Tensor& t : cpu) RETURN_IF_ERROR(WriteAll(fd, t.data_ptr(), t.nbytes(), path));
  // A device or pipe written in place cannot be flushed to a disk (EINVAL); a file can.
  if (::fsync(fd) != 0 && errno != EINVAL && errno != EROFS) return ErrnoError(errno, "cannot flush", path);
  closer.fd = -1;
  if (::close(fd) != 0) return ErrnoError(errno, "cannot close", path);
  return output.Commit();
}

}  // namespace monologue
