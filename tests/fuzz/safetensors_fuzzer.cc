// Fuzz target: a safetensors file's header and layout (core/io/safetensors). The bytes are written to a
// file (the loader maps files), opened, and every tensor it lists is loaded: any input must give a status,
// never a crash, a hang or an out-of-bounds read.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/monologue_fuzz_" + std::to_string(getpid()) + ".safetensors";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  if (size > 0) std::fwrite(data, 1, size, f);
  std::fclose(f);
  auto file = monologue::SafeTensorsFile::Open(path);
  if (file.ok()) {
    volatile uint8_t acc = 0;
    for (const auto& t : (*file)->tensors()) {
      auto tensor = (*file)->Load(t.name);
      if (!tensor.ok() || tensor->numel() == 0) continue;
      // Read every byte the tensor claims (an out-of-bounds view would show here under ASan).
      const auto* p = static_cast<const uint8_t*>(tensor->data_ptr());
      for (size_t i = 0; i < tensor->nbytes(); ++i) acc = acc ^ p[i];
    }
  }
  return 0;
}
