#include "service/http/msgpack_messages.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace monologue {

absl::StatusOr<TaggedMessage> TaggedMessage::Parse(std::string_view bytes) {
  TaggedMessage m;
  try {
    std::size_t offset = 0;
    // Every entry takes at least a byte: a header claiming more entries than the message has bytes is
    // malformed (msgpack-c would first try to allocate them all: 4e9 entries, std::bad_alloc).
    const std::size_t n = bytes.size();
    m.handle_ = msgpack::unpack(bytes.data(), n, offset, nullptr, nullptr,
                                msgpack::unpack_limit(n, n / 2, n, n, n, /*depth=*/64));
    if (offset != bytes.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed message: ", bytes.size() - offset, " bytes after the MessagePack value"));
    }
  } catch (const msgpack::size_overflow& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed MessagePack message: ", e.what(),
                                                   " (an array, map or string longer than the ", bytes.size(),
                                                   "-byte message, or nested more than 64 deep)"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed MessagePack message: ", e.what()));
  }
  const msgpack::object& root = m.handle_.get();
  if (root.type != msgpack::type::MAP) {
    return absl::InvalidArgumentError("malformed message: expected a MessagePack map with a \"type\" field");
  }
  const msgpack::object* type = m.Field("type");
  if (type == nullptr || type->type != msgpack::type::STR) {
    return absl::InvalidArgumentError("malformed message: no \"type\" string field");
  }
  m.type_ = std::string(type->via.str.ptr, type->via.str.size);
  return m;
}

const msgpack::object* TaggedMessage::Field(std::string_view key) const {
  const msgpack::object& root = handle_.get();
  if (root.type != msgpack::type::MAP) return nullptr;
  for (uint32_t i = 0; i < root.via.map.size; ++i) {
    const msgpack::object_kv& kv = root.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key) {
      return &kv.val;
    }
  }
  return nullptr;
}

absl::StatusOr<std::vector<float>> TaggedMessage::Floats(std::string_view key) const {
  const msgpack::object* f = Field(key);
  if (f == nullptr || f->type != msgpack::type::ARRAY) {
    return absl::InvalidArgumentError(absl::StrCat(type_, " message: \"", std::string(key), "\" must be an array of numbers"));
  }
  std::vector<float> out(f->via.array.size);
  for (uint32_t i = 0; i < f->via.array.size; ++i) {
    const msgpack::object& v = f->via.array.ptr[i];
    double x = 0;
    switch (v.type) {
      case msgpack::type::FLOAT32:
      case msgpack::type::FLOAT64:
        x = v.via.f64;
        break;
      case msgpack::type::POSITIVE_INTEGER:
        x = static_cast<double>(v.via.u64);
        break;
      case msgpack::type::NEGATIVE_INTEGER:
        x = static_cast<double>(v.via.i64);
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat(type_, " message: \"", std::string(key), "\"[", i, "] is not a number"));
    }
    if (!std::isfinite(x)) {
      return absl::InvalidArgumentError(absl::StrCat(type_, " message: \"", std::string(key), "\"[", i, "] is not finite"));
    }
    out[i] = static_cast<float>(x);
  }
  return out;
}

absl::StatusOr<int64_t> TaggedMessage::Int(std::string_view key) const {
  const msgpack::object* f = Field(key);
  if (f != nullptr && f->type == msgpack::type::NEGATIVE_INTEGER) return f->via.i64;
  if (f != nullptr && f->type == msgpack::type::POSITIVE_INTEGER &&
      f->via.u64 <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(f->via.u64);
  }
  return absl::InvalidArgumentError(absl::StrCat(type_, " message: \"", std::string(key), "\" must be an integer"));
}

absl::StatusOr<std::string> TaggedMessage::String(std::string_view key) const {
  const msgpack::object* f = Field(key);
  if (f == nullptr || f->type != msgpack::type::STR) {
    return absl::InvalidArgumentError(absl::StrCat(type_, " message: \"", std::string(key), "\" must be a string"));
  }
  return std::string(f->via.str.ptr, f->via.str.size);
}

absl::StatusOr<std::string> TaggedMessage::Binary(std::string_view key) const {
  const msgpack::object* f = Field(key);
  if (f != nullptr && f->type == msgpack::type::BIN) return std::string(f->via.bin.ptr, f->via.bin.size);
  // rmp_serde writes a Vec<u8> as an array of integers.
  if (f != nullptr && f->type == msgpack::type::ARRAY) {
    std::string out;
    for (uint32_t i = 0; i < f->via.array.size; ++i) {
      const msgpack::object& v = f->via.array.ptr[i];
      if (v.type != msgpack::type::POSITIVE_INTEGER || v.via.u64 > 255) {
        return absl::InvalidArgumentError(absl::StrCat(type_, " message: \"", std::string(key), "\"[", i, "] is not a byte"));
      }
      out.push_back(static_cast<char>(v.via.u64));
    }
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat(type_, " message: \"", std::string(key), "\" must be binary data"));
}

TaggedWriter::TaggedWriter(std::string_view type, uint32_t fields) : packer_(buffer_) {
  packer_.pack_map(fields + 1);
  Key("type");
  packer_.pack_str(static_cast<uint32_t>(type.size()));
  packer_.pack_str_body(type.data(), static_cast<uint32_t>(type.size()));
}

void TaggedWriter::Key(std::string_view key) {
  packer_.pack_str(static_cast<uint32_t>(key.size()));
  packer_.pack_str_body(key.data(), static_cast<uint32_t>(key.size()));
}

TaggedWriter& TaggedWriter::Str(std::string_view key, std::string_view value) {
  Key(key);
  packer_.pack_str(static_cast<uint32_t>(value.size()));
  packer_.pack_str_body(value.data(), static_cast<uint32_t>(value.size()));
  return *this;
}

// msgpack-cxx packs a float holding a whole number as an integer; the Rust server always writes the float
// type of the field (f64 / f32), so the bytes are written here.
void TaggedWriter::RawF64(double value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, 8);
  char bytes[9] = {static_cast<char>(0xcb)};
  for (int i = 0; i < 8; ++i) bytes[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
  buffer_.write(bytes, 9);
}

void TaggedWriter::RawF32(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, 4);
  char bytes[5] = {static_cast<char>(0xca)};
  for (int i = 0; i < 4; ++i) bytes[1 + i] = static_cast<char>(bits >> (24 - 8 * i));
  buffer_.write(bytes, 5);
}

TaggedWriter& TaggedWriter::F64(std::string_view key, double value) {
  Key(key);
  RawF64(value);
  return *this;
}

TaggedWriter& TaggedWriter::U64(std::string_view key, uint64_t value) {
  Key(key);
  packer_.pack_uint64(value);
  return *this;
}

TaggedWriter& TaggedWriter::I64(std::string_view key, int64_t value) {
  Key(key);
  packer_.pack_int64(value);
  return *this;
}

TaggedWriter& TaggedWriter::F32Array(std::string_view key, const std::vector<float>& values) {
  Key(key);
  packer_.pack_array(static_cast<uint32_t>(values.size()));
  for (float v : values) RawF32(v);
  return *this;
}

TaggedWriter& TaggedWriter::Bin(std::string_view key, std::string_view bytes) {
  Key(key);
  packer_.pack_bin(static_cast<uint32_t>(bytes.size()));
  packer_.pack_bin_body(bytes.data(), static_cast<uint32_t>(bytes.size()));
  return *this;
}

std::string MsgpackError(const std::string& text) { return TaggedWriter("Error", 1).Str("message", text).bytes(); }

}  // namespace monologue
