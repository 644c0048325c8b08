// Fuzz target: config.json parsing (core/config): any bytes give a parsed config or a status.
#include <cstddef>
#include <cstdint>

#include "core/config/model_config.h"
#include "nlohmann/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json json = nlohmann::json::parse(data, data + size, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  auto config = monologue::ParseModelConfigJson(json, "fuzz/config.json");
  if (config.ok()) (void)monologue::ModelConfigToJson(*config).dump();
  return 0;
}
