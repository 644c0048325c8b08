// Forwards to libmonologue_spm_shim.so, loaded privately (see sentencepiece_api.h for why).
#include "core/text/sentencepiece_backend.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include "core/text/sentencepiece_api.h"

namespace monologue::text_internal {

namespace {

struct LoadedApi {
  const SpmApi* api = nullptr;
  std::string error;
};

std::string ExecutableDir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

const LoadedApi& Api() {
  static const LoadedApi loaded = [] {
    LoadedApi r;
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("MONOLOGUE_SPM_SHIM"); env != nullptr && *env != '\0') {
      candidates.push_back(env);
    }
    const std::string exe_dir = ExecutableDir();
    if (!exe_dir.empty()) {
      candidates.push_back(exe_dir + "/libmonologue_spm_shim.so");
      candidates.push_back(exe_dir + "/../lib/libmonologue_spm_shim.so");
    }
#ifdef MONOLOGUE_SPM_SHIM_PATH
    candidates.push_back(MONOLOGUE_SPM_SHIM_PATH);
#endif
    candidates.push_back("libmonologue_spm_shim.so");
    std::string errors;
    for (const std::string& path : candidates) {
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (handle == nullptr) {
        const char* e = dlerror();
        errors += "; " + (e ? std::string(e) : path);
        continue;
      }
      using Entry = const SpmApi* (*)();
      auto entry = reinterpret_cast<Entry>(dlsym(handle, kSpmApiSymbol));
      if (entry == nullptr || entry()->version != kSpmApiVersion) {
        errors += "; " + path + ": not a compatible monologue sentencepiece shim";
        continue;
      }
      r.api = entry();
      return r;
    }
    r.error = "cannot load the sentencepiece shim libmonologue_spm_shim.so (set MONOLOGUE_SPM_SHIM to its path)" +
              errors;
    return r;
  }();
  return loaded;
}

}  // namespace

struct SentencePieceBackend::Impl {
  void* handle = nullptr;
};

SentencePieceBackend::SentencePieceBackend() : impl_(std::make_unique<Impl>()) {
  if (Api().api != nullptr) impl_->handle = Api().api->create();
}
SentencePieceBackend::~SentencePieceBackend() {
  if (impl_->handle != nullptr) Api().api->destroy(impl_->handle);
}

std::string SentencePieceBackend::LoadFromSerializedProto(std::string_view bytes) {
  if (impl_->handle == nullptr) return Api().error;
  return Api().api->load_serialized(impl_->handle, bytes);
}

// The methods below are only reachable after a successful load (TextTokenizer checks it).
int SentencePieceBackend::GetPieceSize() const { return Api().api->piece_size(impl_->handle); }
std::string SentencePieceBackend::IdToPiece(int id) const { return Api().api->id_to_piece(impl_->handle, id); }
int SentencePieceBackend::PieceToId(std::string_view piece) const {
  return Api().api->piece_to_id(impl_->handle, piece);
}
bool SentencePieceBackend::IsControl(int id) const { return Api().api->is_control(impl_->handle, id); }
bool SentencePieceBackend::IsUnknown(int id) const { return Api().api->is_unknown(impl_->handle, id); }
int SentencePieceBackend::unk_id() const { return Api().api->special_id(impl_->handle, 0); }
int SentencePieceBackend::bos_id() const { return Api().api->special_id(impl_->handle, 1); }
int SentencePieceBackend::eos_id() const { return Api().api->special_id(impl_->handle, 2); }
int SentencePieceBackend::pad_id() const { return Api().api->special_id(impl_->handle, 3); }

std::string SentencePieceBackend::Encode(std::string_view text, std::vector<int>* ids) const {
  return Api().api->encode(impl_->handle, text, ids);
}

std::string SentencePieceBackend::EncodeAsPieces(std::string_view text,
                                                 std::vector<std::string>* pieces) const {
  return Api().api->encode_pieces(impl_->handle, text, pieces);
}

std::string SentencePieceBackend::Decode(const std::vector<int>& ids, std::string* text) const {
  return Api().api->decode(impl_->handle, ids, text);
}

}  // namespace monologue::text_internal
