// Strict, typed reading of a JSON object's fields for the config parsers: every key must be consumed
// (unknown keys are an error, like an unknown keyword argument in the reference), and every value must
// have the expected type. Errors name the source file and the key path ("config.json: key 'fuser.sum'").
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace monologue::internal {

class JsonFields {
 public:
  // `object` must outlive the reader. `prefix` is the key path of the object ("" at top level,
  // "seanet." inside a sub-object).
  JsonFields(const nlohmann::json& object, std::string source, std::string prefix = "");

  // The status of the object itself (not an object -> error).
  absl::Status status() const { return status_; }

  bool Has(const std::string& key) const;
  // Marks a key consumed without reading it.
  void Skip(const std::string& key);

  // Each reader leaves `out` untouched when the key is absent (or, for Optional*, sets nullopt on null).
  // A type mismatch records an error (the first one is reported by Finish()).
  void Int(const std::string& key, int64_t* out);
  void Double(const std::string& key, double* out);
  void Bool(const std::string& key, bool* out);
  void String(const std::string& key, std::string* out);
  void IntList(const std::string& key, std::vector<int64_t>* out);
  void StringList(const std::string& key, std::vector<std::string>* out);
  void OptionalInt(const std::string& key, std::optional<int64_t>* out);
  void OptionalDouble(const std::string& key, std::optional<double>* out);
  void OptionalString(const std::string& key, std::optional<std::string>* out);
  // Null-or-list: null -> empty.
  void OptionalIntList(const std::string& key, std::vector<int64_t>* out);
  // Any JSON object (null -> {} unless `keep_null`).
  void Object(const std::string& key, nlohmann::json* out);
  // Marks a required key: records an error when absent.
  void Require(const std::string& key);

  // Records an error about `key` with a custom message ("must be ..."), for semantic checks.
  void Fail(const std::string& key, const std::string& message);

  // The first error, or an error listing unconsumed (unknown) keys, or OK.
  absl::Status Finish();

  std::string KeyName(const std::string& key) const { return prefix_ + key; }
  const std::string& source() const { return source_; }

 private:
  const nlohmann::json* Get(const std::string& key);
  void TypeError(const std::string& key, const char* expected, const nlohmann::json& value);

  const nlohmann::json& object_;
  std::string source_;
  std::string prefix_;
  std::set<std::string> consumed_;
  absl::Status status_;
};

// "string", "integer", ... for messages.
std::string JsonTypeName(const nlohmann::json& value);

}  // namespace monologue::internal
