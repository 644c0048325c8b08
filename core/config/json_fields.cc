#include "core/config/json_fields.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace monologue::internal {

std::string JsonTypeName(const nlohmann::json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "boolean";
  if (value.is_number_integer()) return "integer";
  if (value.is_number()) return "number";
  if (value.is_string()) return "string";
  if (value.is_array()) return "list";
  return "object";
}

JsonFields::JsonFields(const nlohmann::json& object, std::string source, std::string prefix)
    : object_(object), source_(std::move(source)), prefix_(std::move(prefix)) {
  if (!object_.is_object()) {
    std::string what = prefix_.empty() ? "the top-level value"
                                       : absl::StrCat("key '", prefix_.substr(0, prefix_.size() - 1), "'");
    status_ = absl::InvalidArgumentError(
        absl::StrCat(source_, ": ", what, " must be a JSON object, got ", JsonTypeName(object_)));
  }
}

bool JsonFields::Has(const std::string& key) const { return object_.is_object() && object_.contains(key); }

void JsonFields::Skip(const std::string& key) { consumed_.insert(key); }

const nlohmann::json* JsonFields::Get(const std::string& key) {
  consumed_.insert(key);
  if (!object_.is_object()) return nullptr;
  auto it = object_.find(key);
  if (it == object_.end()) return nullptr;
  return &*it;
}

void JsonFields::Fail(const std::string& key, const std::string& message) {
  if (!status_.ok()) return;
  status_ = absl::InvalidArgumentError(absl::StrCat(source_, ": key '", KeyName(key), "' ", message));
}

void JsonFields::TypeError(const std::string& key, const char* expected, const nlohmann::json& value) {
  Fail(key, absl::StrCat("must be ", expected, ", got ", JsonTypeName(value), " ", value.dump()));
}

void JsonFields::Require(const std::string& key) {
  if (!Has(key)) Fail(key, "is required but missing");
}

void JsonFields::Int(const std::string& key, int64_t* out) {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return;
  if (!v->is_number_integer()) return TypeError(key, "an integer", *v);
  *out = v->get<int64_t>();
}

void JsonFields::Double(const std::string& key, double* out) {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return;
  if (!v->is_number()) return TypeError(key, "a number", *v);
  *out = v->get<double>();
}

void JsonFields::Bool(const std::string& key, bool* out) {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return;
  if (!v->is_boolean()) return TypeError(key, "a boolean", *v);
  *out = v->get<bool>();
}

void JsonFields::String(const std::string& key, std::string* out) {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return;
  if (!v->is_string()) return TypeError(key, "a string", *v);
  *out = v->get<std::string>();
}

void JsonFields::IntList(const std::string& key, std::vector<int64_t>* out) {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return;
  if (!v->is_array()) return TypeError(key, "a list of integers", *v);
  std::vector<int64_t> values;
  for (const auto& item : *v) {
    if (!item.is_number_integer()) return TypeError(key, "a list of integers", *v);
    values.push_back(item.get<int64_t>());
  }
  *out = std::move(values);
}

void JsonFields::StringList(const std::string& key, std::vector<std::string>* out) {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return;
  if (!v->is_array()) return TypeError(key, "a list of strings", *v);
  std::vector<std::string> values;
  for (const auto& item : *v) {
    if (!item.is_string()) return TypeError(key, "a list of strings", *v);
    values.push_back(item.get<std::string>());
  }
  *out = std::move(values);
}

void JsonFields::OptionalInt(const std::string& key, std::optional<int64_t>* out) {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return;
  if (v->is_null()) {
    *out = std::nullopt;
    return;
  }
  if (!v->is_number_integer()) return TypeError(key, "an integer or null", *v);
  *out = v->get<int64_t>();
}

void JsonFields::OptionalDouble(const std::string& key, std::optional<double>* out) {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return;
  if (v->is_null()) {
    *out = std::nullopt;
    return;
  }
  if (!v->is_number()) return TypeError(key, "a number or null", *v);
  *out = v->get<double>();
}

void JsonFields::OptionalString(const std::string& key, std::optional<std::string>* out) {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return;
  if (v->is_null()) {
    *out = std::nullopt;
    return;
  }
  if (!v->is_string()) return TypeError(key, "a string or null", *v);
  *out = v->get<std::string>();
}

void JsonFields::OptionalIntList(const std::string& key, std::vector<int64_t>* out) {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return;
  if (v->is_null()) {
    out->clear();
    return;
  }
  consumed_.erase(key);
  IntList(key, out);
}

void JsonFields::Object(const std::string& key, nlohmann::json* out) {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return;
  if (v->is_null()) {
    *out = nlohmann::json::object();
    return;
  }
  if (!v->is_object()) return TypeError(key, "an object", *v);
  *out = *v;
}

absl::Status JsonFields::Finish() {
  if (!status_.ok()) return status_;
  std::vector<std::string> unknown;
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (!consumed_.count(it.key())) unknown.push_back(absl::StrCat("'", prefix_, it.key(), "'"));
  }
  if (!unknown.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": unknown key", unknown.size() > 1 ? "s " : " ",
                                                   absl::StrJoin(unknown, ", "),
                                                   " (not an argument of the reference model)"));
  }
  return absl::OkStatus();
}

}  // namespace monologue::internal
