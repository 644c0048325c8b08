// The MessagePack messages of Kyutai's Rust moshi-server (rust/moshi-server: asr.rs, tts.rs, py_module.rs):
// maps tagged by a "type" string, as rmp_serde writes an internally tagged serde enum with struct maps
// ({"type": "Word", "text": ..., "start_time": ...}). Reading checks the shape and names what is wrong;
// writing keeps the Rust types (f64 times as float64, f32 samples/probabilities as float32, usize/i64 as
// the shortest integer).
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace monologue {

class TaggedMessage {
 public:
  // INVALID_ARGUMENT for bytes that are not one MessagePack map with a string "type".
  static absl::StatusOr<TaggedMessage> Parse(std::string_view bytes);
  const std::string& type() const { return type_; }
  // The value of `key` (nullptr when absent).
  const msgpack::object* Field(std::string_view key) const;
  // A field holding an array of numbers (e.g. "pcm"): finite floats; INVALID_ARGUMENT naming the field.
  absl::StatusOr<std::vector<float>> Floats(std::string_view key) const;
  absl::StatusOr<int64_t> Int(std::string_view key) const;
  absl::StatusOr<std::string> String(std::string_view key) const;
  absl::StatusOr<std::string> Binary(std::string_view key) const;

 private:
  msgpack::object_handle handle_;
  std::string type_;
};

// {"type": TYPE, ...fields}: call the field setters, exactly `fields` of them, then bytes().
class TaggedWriter {
 public:
  TaggedWriter(std::string_view type, uint32_t fields);
  TaggedWriter& Str(std::string_view key, std::string_view value);
  TaggedWriter& F64(std::string_view key, double value);
  TaggedWriter& U64(std::string_view key, uint64_t value);
  TaggedWriter& I64(std::string_view key, int64_t value);
  TaggedWriter& F32Array(std::string_view key, const std::vector<float>& values);
  TaggedWriter& Bin(std::string_view key, std::string_view bytes);
  std::string bytes() const { return std::string(buffer_.data(), buffer_.size()); }

 private:
  void Key(std::string_view key);
  void RawF64(double value);
  void RawF32(float value);
  msgpack::sbuffer buffer_;
  msgpack::packer<msgpack::sbuffer> packer_;
};

// {"type": "Error", "message": text}.
std::string MsgpackError(const std::string& text);

}  // namespace monologue
