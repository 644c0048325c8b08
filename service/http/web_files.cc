#include "service/http/web_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace monologue {
namespace {

std::string ContentType(std::string_view path) {
  auto ends = [&](std::string_view s) { return path.size() >= s.size() && path.substr(path.size() - s.size()) == s; };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".json")) return "application/json";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".ico")) return "image/x-icon";
  if (ends(".wasm")) return "application/wasm";
  if (ends(".wav")) return "audio/wav";
  return "application/octet-stream";
}

}  // namespace

std::optional<WebFile> FindWebFile(const std::string& web_root, std::string_view target_path) {
  std::string path(target_path.substr(0, target_path.find('?')));
  if (path.empty() || path == "/") path = "/index.html";
  if (path.front() != '/') return std::nullopt;
  path.erase(0, 1);
  // No way out of the root: reject any ".." segment, backslashes, NUL, and an empty segment ("//etc/shadow"
  // left "/etc/shadow" here, an absolute path that replaced the root when joined to it).
  if (path.find("..") != std::string::npos || path.find('\\') != std::string::npos ||
      path.find('\0') != std::string::npos || path.find("//") != std::string::npos || path.empty() ||
      path.front() == '/') {
    return std::nullopt;
  }
  if (!web_root.empty()) {
    const std::filesystem::path root = std::filesystem::path(web_root).lexically_normal();
    const std::filesystem::path file = (root / path).lexically_normal();
    // And whatever the checks above miss: the joined path must still lie under the root.
    const auto [root_end, file_it] = std::mismatch(root.begin(), root.end(), file.begin(), file.end());
    if (root_end != root.end() && !(root_end->empty() && std::next(root_end) == root.end()))
      return std::nullopt;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) return std::nullopt;
    std::ifstream in(file, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return WebFile{s.str(), ContentType(path)};
  }
  for (const EmbeddedWebFile& f : EmbeddedWebFiles()) {
    if (f.path == path) return WebFile{std::string(f.bytes), ContentType(path)};
  }
  return std::nullopt;
}

}  // namespace monologue
