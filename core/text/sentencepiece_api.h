// The function table through which core/text talks to sentencepiece (internal to core/text/).
//
// Why a table and a separate shared library: Debian's libsentencepiece.so bundles (and exports) its own copy
// of protobuf-lite 3.14, while gRPC links Debian's libprotobuf 3.21. Loaded side by side in one global
// symbol scope, each calls into the other's protobuf and the process crashes at start-up (or fails the
// protobuf version check). So sentencepiece is never linked into our binaries: the small shim
// libmonologue_spm_shim.so (core/spm_shim/) links it and is loaded with dlopen(RTLD_LOCAL | RTLD_DEEPBIND),
// which keeps sentencepiece's protobuf private to it. Plain C++ types only (no Abseil, no sentencepiece).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace monologue::text_internal {

struct SpmApi {
  int version;  // kSpmApiVersion
  void* (*create)();
  void (*destroy)(void* handle);
  // Error text, empty on success.
  std::string (*load_serialized)(void* handle, std::string_view bytes);
  int (*piece_size)(const void* handle);
  std::string (*id_to_piece)(const void* handle, int id);
  int (*piece_to_id)(const void* handle, std::string_view piece);
  bool (*is_control)(const void* handle, int id);
  bool (*is_unknown)(const void* handle, int id);
  int (*special_id)(const void* handle, int which);  // 0 unk, 1 bos, 2 eos, 3 pad
  std::string (*encode)(const void* handle, std::string_view text, std::vector<int>* ids);
  std::string (*encode_pieces)(const void* handle, std::string_view text, std::vector<std::string>* pieces);
  std::string (*decode)(const void* handle, const std::vector<int>& ids, std::string* text);
};

constexpr int kSpmApiVersion = 1;
constexpr const char* kSpmApiSymbol = "monologue_spm_api_v1";

}  // namespace monologue::text_internal
